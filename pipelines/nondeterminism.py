# %% [markdown]
# # nondeterminism: what breaks ConstNet's symmetry
# Blumenfeld, Gilboa & Soudry (ICML 2020). Without a symmetry breaker ConstNet's filters stay
# identical and it trains like a width-1 network; GPU non-determinism (here also its CPU
# emulation `reduction_order`), one-ulp gradient jitter, or dropout 0.01 break the symmetry.
#
# ConstNet arms train on channel-uniform CPU kernels (`uniform_conv2d`: NHWC im2col + one GEMM
# each way, every channel through the same arithmetic; oneDNN off), so the breaker is the only
# source of channel asymmetry on every CPU. Deterministic arithmetic alone is not enough: how
# oneDNN's own (deterministic) kernels break the symmetry on some instruction sets is measured
# apart, in fresh interpreters, as a CPU-kernel finding.
# Each "comes close to He" claim is a paired comparison over seeds with He trained for the same
# number of steps (`initrepro.core.verdicts.compare`, margin `accuracy_margin` from the conf), He
# being a positive control. All thresholds and margins are fixed in the conf before the run.

# %% tags=["parameters"]
profile = "smoke"
output_root = "."
seed_set = 0
seed = 0
dataset = "digits"
n_train = None
n_test = None
depth = 10
widen_factor = 1
breakers = ["reduction_order", "ulp_jitter", "dropout", "cuda"]
seeds = [0, 1, 2, 3, 4, 5]
arm_epochs = {"none": 20, "reduction_order": 40, "ulp_jitter": 40, "dropout": 20, "cuda": 40}
max_steps = None
batch_size = 64
lr = 0.1
momentum = 0.9
weight_decay = 5e-4
milestones = []
gamma = 0.2
augment = False
device = "cpu"
threads = 1
workers = 2
track_every = 20
benchmark_steps = 20
probe_envs = {"this run": {}, "AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}
probe_kernel_sets = ["uniform", "onednn"]
probe_steps = 30
probe_widen_factor = 2
spread_threshold = 1e-3
width1_margin = 0.10
accuracy_margin = 0.05
paper_precision = ""
replot = False  # True: redraw the figures from the committed measurements (`make figures`)

# %%
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator

from initrepro.core.claims import Check, StageRecord
from initrepro.core.plotting import deciding_checks, scheme_color, subplots
from initrepro.core.seeding import shift
from initrepro.core.verdicts import compare, positive_control
from initrepro.data import load_dataset
from initrepro.studies.constnet import probe_kernels, seconds_per_step, train_arms
from initrepro.training import TrainConfig

torch.set_num_threads(threads)
seed, seeds = shift(seed, seed_set), shift(seeds, seed_set)
record = StageRecord("nondeterminism", profile, seed=seed, output_root=output_root, seed_set=seed_set, replot=replot)


def arm_name(init, breaker):
    return "He init" if init == "he" else f"ConstNet, {breaker}"


def arm_color(arm):
    """He and ConstNet without breaker in their scheme colours, each breaker in its own."""
    return scheme_color("He" if arm == "He init" else "ConstNet" if arm == "ConstNet, none" else arm.split(", ")[-1])


def arm_style(arm):
    """Line style per breaker, so that pale breaker colours stay apart."""
    return {"reduction_order": "--", "ulp_jitter": "-.", "dropout": ":", "cuda": (0, (8, 2, 1, 2))}.get(
        arm.split(", ")[-1], "-")


# %% tags=["compute"]
train_set, test_set = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test)
chance = 1.0 / train_set.num_classes

# %% [markdown]
# ## The CPU-kernel effect: does oneDNN alone break ConstNet's symmetry?
# A ConstNet without breaker, `probe_steps` steps, on the channel-uniform kernels the arms use
# and on oneDNN's, under this CPU's kernel path and under instruction sets capped by
# `ONEDNN_MAX_CPU_ISA` / `ATEN_CPU_CAPABILITY` (read once per process, so each runs in a fresh
# interpreter).

# %% tags=["compute"]
probe = probe_kernels(probe_envs, dataset=dataset, seed=seed, steps=probe_steps, depth=depth,
                      widen_factor=probe_widen_factor, batch_size=batch_size, lr=lr, kernels=probe_kernel_sets)
print(pd.DataFrame(probe).T)

# %% [markdown]
# ## Cost of the CPU emulation of GPU non-determinism (ratios of times from this run)

# %% tags=["compute"]
x, y = train_set.x[:batch_size], train_set.y[:batch_size]
bench = dict(depth=depth, widen_factor=widen_factor, num_classes=train_set.num_classes, steps=benchmark_steps)
step_s = {arm: seconds_per_step(arm, x, y, **bench) for arm in ("none", "reduction_order", "ulp_jitter")}
step_s["none, oneDNN on"] = seconds_per_step("none", x, y, kernels="onednn", **bench)
step_s["none, oneDNN off (PyTorch im2col)"] = seconds_per_step("none", x, y, kernels="onednn_off", **bench)
cost_vs_none = {arm: t / step_s["none"] for arm, t in step_s.items()}
print({arm: f"{r:.2f}x" for arm, r in cost_vs_none.items()})
record.measure("step_cost_vs_none", cost_vs_none)

# %% [markdown]
# ## Training every arm on the same seeds (He for the longest budget, compared at each arm's)

# %% tags=["compute"]
he_epochs = max(arm_epochs.values())
arms = [("he", "none", he_epochs), ("constnet", "none", arm_epochs["none"])] + [
    ("constnet", b, arm_epochs[b]) for b in breakers]
jobs = [dict(breaker=b, init=init, train_set=train_set, test_set=test_set, depth=depth, widen_factor=widen_factor,
             track_every=track_every, device=device,
             cfg=TrainConfig(epochs=ep, max_steps=max_steps, batch_size=batch_size, lr=lr, momentum=momentum,
                             weight_decay=weight_decay, milestones=tuple(milestones), gamma=gamma,
                             augment=augment, seed=s))
        for init, b, ep in arms for s in seeds]
jobs.sort(key=lambda j: -j["cfg"].epochs * cost_vs_none.get(j["breaker"], 1.0))  # longest first
runs = {(j["init"], j["breaker"], j["cfg"].seed): r for j, r in zip(jobs, train_arms(jobs, workers))}

# Every arm and seed as a curve, in the order of `arms` (not the training order, which follows timings).
ran = [(init, b, s) for init, b, _ in arms for s in seeds if not runs[init, b, s].skipped]
record.curve("test_accuracy", {f"{arm_name(i, b)} seed {s}": (runs[i, b, s].history.step, runs[i, b, s].history.test_acc)
                               for i, b, s in ran}, y="test accuracy")
for name, field in (("diversity", "diversity"), ("distinct_filter_fraction", "distinct_fraction"),
                    ("median_filter_spread", "median_spread")):
    record.curve(name, {f"{arm_name(i, b)} seed {s}": (runs[i, b, s].tracker.step, getattr(runs[i, b, s].tracker, field))
                        for i, b, s in ran}, y=name.replace("_", " "))


# %% tags=["compute"]
def acc_of(init, breaker, epoch):
    return [runs[init, breaker, s].test_acc_at(epoch) for s in seeds]


def he_at(epoch):
    return acc_of("he", "none", epoch)


steps_per_epoch = runs["he", "none", seeds[0]].history.step[0]
none_runs = [runs["constnet", "none", s] for s in seeds]
none_acc, he_none = acc_of("constnet", "none", arm_epochs["none"]), he_at(arm_epochs["none"])
n_test = len(test_set)
uniform_broken = [name for name, p in probe.items() if p["uniform"] is not None]
onednn_broken = {name: p["onednn"] for name, p in probe.items() if p.get("onednn") is not None}
oneDNN_broke = [f"step {s} under {name}" for name, s in onednn_broken.items()]
oneDNN_kept = [name for name, p in probe.items() if "onednn" in p and name not in onednn_broken]
kernel_finding = (
    f"CPU-kernel finding (not the paper's claim), WRN-{depth}-{probe_widen_factor} without breaker for "
    f"{probe_steps} steps: with oneDNN convolutions on, filters became distinct at "
    + (", ".join(oneDNN_broke) if oneDNN_broke else "no step under any probed kernel path")
    + (f" and stayed bitwise identical under {', '.join(oneDNN_kept)}" if oneDNN_broke and oneDNN_kept else "")
    + f"; on the channel-uniform kernels (the ones this arm trains with) they stayed identical under "
    + f"{len(probe) - len(uniform_broken)} of {len(probe)} probed kernel paths. Deterministic arithmetic "
    + "is not enough: the condition is arithmetic that treats every channel alike.")
record.claim(
    "constnet.deterministic_stays_symmetric",
    [positive_control("He", he_none, chance),
     Check("probed kernel paths where the channel-uniform kernels broke the symmetry", len(uniform_broken), "==", 0,
           precondition=True, note="the deterministic arm must be channel-uniform on every CPU"),
     Check("max distinct output filters in any 3x3 conv, any recorded step, any seed",
           max(max(r.tracker.max_distinct) for r in none_runs), "==", 1),
     Check("max distinct input channels in any 3x3 conv, any recorded step, any seed",
           max(max(r.tracker.max_distinct_inputs) for r in none_runs), "==", 1),
     compare("He", he_none, "ConstNet without breaker", none_acc, margin=width1_margin, superior=True,
             chance=chance, n_test=n_test, bounds=(0, 1), collapse_alternative="less",
             paper_precision="the paper's tables were not available to us; its deterministic arm 'behaves like a "
                             "width-1 network'")],
    reason=f"After {arm_epochs['none'] * steps_per_epoch} steps ConstNet without breaker reached "
           f"{sum(none_acc) / len(none_acc):.3f} test accuracy (He {sum(he_none) / len(he_none):.3f}). "
           + kernel_finding,
    measured={"constnet_none_acc": none_acc, "he_acc": he_none, "kernel_probe": probe,
              "steps": arm_epochs["none"] * steps_per_epoch, "kernels": sorted({r.kernels for r in none_runs}),
              "step_cost_vs_channel_uniform": cost_vs_none})
record.measure("max_distinct_filters", {f"seed {s}": {"step": r.tracker.step, "outputs": r.tracker.max_distinct,
                                                      "inputs": r.tracker.max_distinct_inputs}
                                        for s, r in zip(seeds, none_runs)})

# %% tags=["compute"]
for breaker in breakers:
    claim_id = f"constnet.{breaker}_breaks_symmetry"
    arm_runs = [runs["constnet", breaker, s] for s in seeds]
    if arm_runs[0].skipped:
        record.claim(claim_id, skip_reason=arm_runs[0].skipped)
        continue
    epochs = arm_epochs[breaker]
    arm_acc, he_acc = acc_of("constnet", breaker, epochs), he_at(epochs)
    steps_to_spread = [r.tracker.first_step_spread_above(spread_threshold) for r in arm_runs]
    final_spread = min(r.tracker.median_spread[-1] for r in arm_runs)
    diversity_gain = min(r.tracker.diversity[-1] - r.tracker.diversity[0] for r in arm_runs)
    total = epochs * steps_per_epoch
    measured = {"acc": arm_acc, "he_acc_same_steps": he_acc, "total_steps": total,
                "steps_to_spread_above_threshold": steps_to_spread,
                "final_median_spread": [r.tracker.median_spread[-1] for r in arm_runs],
                "final_min_distinct_filters": [r.tracker.min_distinct[-1] for r in arm_runs],
                "final_distinct_fraction": [r.tracker.distinct_fraction[-1] for r in arm_runs],
                "diversity_init_final": [[r.tracker.diversity[0], r.tracker.diversity[-1]] for r in arm_runs],
                "test_acc_last_5_epochs": [r.history.test_acc[-5:] for r in arm_runs],
                "kernels": sorted({r.kernels for r in arm_runs})}
    if breaker in cost_vs_none:
        measured["step_cost_vs_none"] = cost_vs_none[breaker]
    broke = [s for s in steps_to_spread if s is not None]
    record.claim(
        claim_id,
        [positive_control("He", he_acc, chance),
         Check("min over seeds of final median filter spread", final_spread, ">", spread_threshold),
         Check("min over seeds of diversity gain (final - init)", diversity_gain, ">", 0.0),
         compare(f"ConstNet + {breaker}", arm_acc, "He", he_acc, margin=accuracy_margin, chance=chance, n_test=n_test,
                 bounds=(0, 1), paper_precision=paper_precision)],
        reason=f"The median filter spread passed {spread_threshold:g} in {len(broke)} of {len(seeds)} seeds, at steps "
               f"{broke} of {total}"
               + (f"; a step costs {cost_vs_none[breaker]:.2f}x a step without breaker" if breaker in cost_vs_none
                  else "") + ".",
        measured=measured)

# %% [markdown]
# ## Figures, drawn from the measurements alone (`make figures` redraws them)

# %%
decided = [c["id"] for c in record.claims if c["verdict"] != "skipped"]
fig, axes = subplots(2, 2, figsize=(13, 8.5))
panels = [("diversity", "authors' diversity: sum over layers of log sqrt(1 - corr^2)\n(corr: of two filters' backward signals)",
           "diversity of the filters (higher: more different)", None),
          ("distinct_filter_fraction", "fraction of bitwise-distinct 3x3-conv filters\n(mean over layers)",
           "distinct filters (1 / channels: all identical)", None),
          ("median_filter_spread", "relative spread of the filters\n(median over 3x3 convs; 0 drawn at 1e-12)",
           f"filter spread: a breaker's final spread must exceed {spread_threshold:g}", "log")]
for ax, (name, ylabel, title, scale) in zip(axes.flat, panels):
    shown = set()
    for series, (steps_, values) in record.curves[name]["series"].items():
        arm = series.rsplit(" seed ", 1)[0]
        values = [max(v, 1e-12) for v in values] if scale == "log" else values
        ax.plot(steps_, values, marker=".", ms=4, color=arm_color(arm), ls=arm_style(arm), lw=1.8, alpha=0.85,
                label=None if arm in shown else arm)
        shown.add(arm)
    if scale == "log":
        ax.set_yscale("log")
        ax.axhline(spread_threshold, color="black", ls="--", lw=1, label=f"threshold {spread_threshold:g}")
    ax.set(xlabel="SGD step", ylabel=ylabel, title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.legend(fontsize="small")
ax = axes[1, 1]
for series, data in record.measurements["max_distinct_filters"].items():
    ax.plot(data["step"], data["outputs"], marker="o", ms=4, color=arm_color("ConstNet, none"), alpha=0.8,
            label=f"output filters, {series}")
    ax.plot(data["step"], data["inputs"], marker="x", ls=":", color=arm_color("ConstNet, none"), alpha=0.8,
            label=f"input channels, {series}")
ax.axhline(1, color="black", ls="--", lw=1, label="must stay 1 (all identical)")
ax.set(xlabel="SGD step", ylabel="most distinct filters in any 3x3 conv",
       title="ConstNet without breaker: distinct filters (claim: stays 1)")
ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
ax.legend(fontsize="x-small")
record.figure(fig, "symmetry_vs_step.png", claims=decided)

# %%
comparisons = [(c, check, interval) for c in record.claims if c["id"] in decided
               for check, interval in deciding_checks(c) if interval is not None]
fig, (ax_c, ax_d) = subplots(1, 2, figsize=(14, 4.8), width_ratios=[1.1, 1])
shown = set()
for series, (steps_, accs) in record.curves["test_accuracy"]["series"].items():
    arm = series.rsplit(" seed ", 1)[0]
    ax_c.plot(steps_, accs, marker=".", color=arm_color(arm), ls=arm_style(arm), lw=1.8, alpha=0.8,
              label=None if arm in shown else arm)
    shown.add(arm)
ax_c.set(xlabel="SGD step", ylabel="test accuracy", ylim=(0, 1),
         title=f"WRN-{depth}-{widen_factor} on {dataset}, one line per seed ({len(seeds)} seeds)")
ax_c.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
ax_c.legend(fontsize="small")
for row, (claim, check, interval) in enumerate(comparisons):
    m = claim["measured"]
    if "constnet_none_acc" in m:  # He - ConstNet without breaker: superiority
        arm, pairs = "ConstNet, none", zip(m["he_acc"], m["constnet_none_acc"])
    else:  # ConstNet + breaker - He at the same steps: non-inferiority
        arm, pairs = f"ConstNet, {claim['id'].split('.')[1].rsplit('_breaks', 1)[0]}", zip(m["acc"], m["he_acc_same_steps"])
    diffs = [a - b for a, b in pairs if a is not None and b is not None]
    ax_d.plot(diffs, [row] * len(diffs), "o", ms=4, color=arm_color(arm), alpha=0.6, mec="grey",
              label="paired seeds" if row == 0 else None)
    if all(v is not None and np.isfinite(v) for v in interval.values()):
        ax_d.errorbar([interval["mean_diff"]], [row], xerr=[[interval["mean_diff"] - interval["ci_low"]],
                                                           [interval["ci_high"] - interval["mean_diff"]]],
                      fmt="D", color="black", capsize=5, label="mean and 95% CI" if row == 0 else None)
    ax_d.vlines(check["threshold"], row - 0.4, row + 0.4, color="black", ls="--", lw=1.5,
                label="margin: the CI's low end must be right of it" if row == 0 else None)
ax_d.axvline(0, color="grey", lw=0.6)
ax_d.set_yticks(range(len(comparisons)),
                [f"{c['id'].split('.')[1]}\n{check['name'].split(' of ', 1)[-1]}\n({c['verdict'].replace('_', ' ')})"
                 for c, check, _ in comparisons], fontsize="small")
ax_d.invert_yaxis()
ax_d.set(xlabel="paired difference of test accuracy at the same number of steps",
         title=f"what decided: He - no breaker > {width1_margin:g}; breaker - He > -{accuracy_margin:g}")
ax_d.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, frameon=False)
record.figure(fig, "test_accuracy_vs_step.png", claims=decided)

# %%
costs = record.measurements["step_cost_vs_none"]
fig, ax = subplots(figsize=(7, 3.2))
names = list(costs)
ax.barh(names, [costs[n] for n in names],
        color=[arm_color(f"ConstNet, {n}") if n in breakers else arm_color("ConstNet, none") for n in names])
ax.axvline(1, color="black", lw=1, ls="--", label="a step without breaker, channel-uniform kernels")
ax.invert_yaxis()
ax.set(xlabel="time of one SGD step / time of a step without breaker (least of the timed steps)",
       title=f"cost of each symmetry breaker on this CPU (WRN-{depth}-{widen_factor}, batch {batch_size})")
ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
record.figure(fig, "step_cost.png", claims=[c for c in decided if c.split(".")[1].rsplit("_breaks", 1)[0]
                                            in costs])

# %%
record.verdicts_figure()

# %% tags=["compute"]
record.write()
print(record.summary())
