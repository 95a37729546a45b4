# %% [markdown]
# # zero_init: ConstNet trains from (almost) all-zero weights
# Blumenfeld, Gilboa & Soudry (ICML 2020). ConstNet (stem and shortcuts average channels,
# residual convs and classifier zero) has perfect signal propagation at init, and with a
# symmetry breaker it trains to accuracy close to the He-initialized WRN of the same shape.
# The ConstNet arm trains on channel-uniform CPU kernels (`uniform_conv2d`, oneDNN off), so its
# breaker is the only source of channel asymmetry on every CPU. Thresholds are fixed in the
# conf before the run: `accuracy_margin` (non-inferiority margin of the paired comparison over
# seeds; smoke 5 points, looser than the paper profile's 2 points), `max_norm_ratio` (no
# vanishing/exploding: one order of magnitude across depth); He is the positive control.

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
breaker = "dropout"
seeds = [0, 1, 2, 3, 4, 5]
epochs = 20
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
probe_batch = 256
max_norm_ratio = 10.0
accuracy_margin = 0.05
paper_precision = ""
replot = False  # True: redraw the figures from the committed measurements (`make figures`)

# %%
import torch

from initrepro.core.claims import Check, StageRecord
from initrepro.core.plotting import scheme_color, subplots
from initrepro.core.seeding import shift
from initrepro.core.stats import mean_ci
from initrepro.core.verdicts import compare, positive_control
from initrepro.data import load_dataset
from initrepro.models.wrn import probe_init, wrn
from initrepro.studies.constnet import train_arms
from initrepro.training import TrainConfig

torch.set_num_threads(threads)
seed, seeds = shift(seed, seed_set), shift(seeds, seed_set)
record = StageRecord("zero_init", profile, seed=seed, output_root=output_root, seed_set=seed_set, replot=replot)

# %% tags=["compute"]
train_set, test_set = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test)
chance = 1.0 / train_set.num_classes
shape = dict(depth=depth, widen_factor=widen_factor, num_classes=train_set.num_classes,
             in_channels=train_set.input_shape[0])

# %% [markdown]
# ## Signal propagation at init (one batch, train-mode BatchNorm)

# %% tags=["compute"]
x, y = train_set.x[:probe_batch], train_set.y[:probe_batch]
probes = {init: probe_init(wrn(**shape, init=init, generator=torch.Generator().manual_seed(seed)), x, y, lr=lr)
          for init in ("constnet", "he")}
const = probes["constnet"]
norm_ratio = max(const.layer_rms) / min(const.layer_rms)
grad_ratio = max(const.grad_norms) / min(const.grad_norms)
record.measure("signal", {init: {"layer_rms": p.layer_rms, "grad_norms": p.grad_norms} for init, p in probes.items()})

record.claim(
    "constnet.signal_propagation",
    checks=[Check("max |logit| at init", const.max_abs_logit, "==", 0.0),
            Check("max distinct channels in any layer output", max(const.distinct_channels), "==", 1),
            Check("max/min RMS of layer outputs", norm_ratio, "<=", max_norm_ratio),
            Check("max/min residual-conv gradient norm", grad_ratio, "<=", max_norm_ratio)],
    reason=f"Measured on one batch of {len(x)}: layer-output RMS from {min(const.layer_rms):.3g} to "
           f"{max(const.layer_rms):.3g}; residual-conv gradient norms after one SGD step (at init the zero "
           f"classifier blocks every gradient below it) from {min(const.grad_norms):.3g} to {max(const.grad_norms):.3g}.",
    measured={"layer_rms": const.layer_rms, "grad_norms": const.grad_norms,
              "distinct_channels": const.distinct_channels, "he_layer_rms": probes["he"].layer_rms})

# %% [markdown]
# ## Training: ConstNet with a symmetry breaker vs the He-initialized WRN, several seeds

# %% tags=["compute"]
jobs = [dict(breaker=arm, init=init, train_set=train_set, test_set=test_set, depth=depth, widen_factor=widen_factor,
             track_every=None, device=device,
             cfg=TrainConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr, momentum=momentum,
                             weight_decay=weight_decay, milestones=tuple(milestones), gamma=gamma,
                             augment=augment, seed=s))
        for init, arm in (("constnet", breaker), ("he", "none")) for s in seeds]
runs = {(j["init"], j["cfg"].seed): r for j, r in zip(jobs, train_arms(jobs, workers))}
skipped = runs["constnet", seeds[0]].skipped
label = {"constnet": f"ConstNet + {breaker}", "he": "He"}
record.curve("test_accuracy", {f"{label[init]} seed {s}": (run.history.step, run.history.test_acc)
                               for (init, s), run in runs.items() if run.history is not None}, y="test_accuracy")

# %% tags=["compute"]
acc = {init: [runs[init, s].final_test_acc for s in seeds] for init in ("constnet", "he")}
if skipped:
    record.claim("constnet.trains_close_to_random", skip_reason=f"breaker {breaker!r} cannot run here: {skipped}")
else:
    const_mean, const_lo, const_hi = mean_ci(acc["constnet"])
    he_mean, he_lo, he_hi = mean_ci(acc["he"])
    steps = runs["he", seeds[0]].history.step[-1]
    record.claim(
        "constnet.trains_close_to_random",
        [positive_control("He", acc["he"], chance),
         compare(label["constnet"], acc["constnet"], "He", acc["he"], margin=accuracy_margin, chance=chance,
                 n_test=len(test_set), bounds=(0, 1), paper_precision=paper_precision)],
        reason=f"WRN-{depth}-{widen_factor} on {dataset}, {steps} SGD steps, same data order per seed: "
               f"ConstNet + {breaker} {const_mean:.3f} (95% CI {const_lo:.3f} to {const_hi:.3f}), "
               f"He {he_mean:.3f} ({he_lo:.3f} to {he_hi:.3f}).",
        measured={"constnet_acc": acc["constnet"], "he_acc": acc["he"],
                  "constnet_mean_ci": [const_mean, const_lo, const_hi], "he_mean_ci": [he_mean, he_lo, he_hi],
                  "breaker": breaker, "steps": steps,
                  "kernels": sorted({r.kernels for r in runs.values() if r.kernels})})

# %% [markdown]
# ## Figures, drawn from the measurements alone (`make figures` redraws them)

# %%
fig, axes = subplots(1, 2, figsize=(10, 3.8))
for init, probe in record.measurements["signal"].items():
    name = "ConstNet" if init == "constnet" else "He"
    axes[0].plot(probe["layer_rms"], marker="o", color=scheme_color(name), label=name)
    axes[1].plot(probe["grad_norms"], marker="o", color=scheme_color(name), label=name)
axes[0].axhline(0, color="grey", lw=0.5)
axes[0].set(xlabel="layer (0 = stem, then blocks)", ylabel="RMS of layer output", title="forward signal at init")
axes[1].set(xlabel="residual block", ylabel="||dL/dW|| of its conv", yscale="log",
            title=f"gradients after one step (max/min must stay <= {max_norm_ratio:g})")
for ax in axes:
    ax.legend()
record.figure(fig, "signal_at_init.png", claims=["constnet.signal_propagation"])

# %%
fig, ax = subplots(figsize=(6.5, 4.2))
shown = set()
for series, (steps_, accs) in record.curves.get("test_accuracy", {"series": {}})["series"].items():
    name = series.rsplit(" seed ", 1)[0]
    ax.plot(steps_, accs, marker=".", color=scheme_color(name), alpha=0.8, label=None if name in shown else name)
    shown.add(name)
ax.set(xlabel="SGD step", ylabel="test accuracy", title=f"WRN-{depth}-{widen_factor} on {dataset}, one line per seed")
ax.legend()
record.figure(fig, "accuracy.png", claims=["constnet.trains_close_to_random"])

# %%
record.verdicts_figure()

# %% tags=["compute"]
record.write()
print(record.summary())
