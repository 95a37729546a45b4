# %% [markdown]
# # RISOTTO vs Fixup and SkipInit: exact isometry for ReLU ResNets, training without batch norm
# Gadhikar & Burkholz 2022 (RISOTTO) against Fixup (Zhang et al. 2019) and SkipInit (De & Smith
# 2020). Claims: (1) the input-output Jacobian of a RISOTTO ResNet has all singular values 1,
# for type B and type C blocks, fully connected and convolutional; (2) its residual branches
# are of the same order as the skips, while Fixup and SkipInit start with zero branches;
# (3) without batch norm it "outperforms" Fixup and SkipInit (superiority); (4) with batch
# norm it "often achieves the overall best result" (RISOTTO + BN at least as good as every
# other arm, with or without BN, within a margin). Every scheme initializes the same
# `initrepro.models.resnet` family, so the arms differ in the initialization alone.

# %% tags=["parameters"]
profile = "smoke"
output_root = "."
seed_set = 0
seed = 0  # isometry nets and the data split
threads = 1
# Isometry and balance at init (float64), claims 1 and 2
iso_blocks = 16
iso_width = 16  # stream width, two mirrored halves of 8
iso_in = 4  # conv input channels, at most half the width: isometric stem (fc nets take half the width)
iso_size = 6  # conv input is iso_in x iso_size x iso_size
iso_batch = 64  # inputs for the branch/skip ratios
isometry_tol = 1e-6  # max |s - 1|: float64 round-off over the net is ~ blocks * width * 2.2e-16 < 1e-12
he_min_spread = 100.0  # He negative control: s_max / s_min spans at least two orders of magnitude
balance_band = [0.1, 10.0]  # "of order one": within one order of magnitude of 1 (theory: sqrt(2) B, sqrt(3) C)
# Training, claims 3 and 4 (every value is set by the conf of the profile)
dataset = "digits"
n_train = None
n_test = None
widths = [8, 16]
blocks = [3, 3]
block_type = "C"
epochs = 20
warmup_epochs = 1.0  # linear per-step warmup, the same for every arm
batch_size = 64
lrs = [0.003, 0.01, 0.03, 0.1]  # the same ascending grid for every arm; select_lr extends an end
max_extensions = 3
scalar_lr_factor = 0.1  # Fixup's cifar_train.py: scalar biases and multipliers at lr / 10
momentum = 0.9
weight_decay = 1e-4
milestones = [10, 15]  # lr / 10 at 50% and 75% of training, as in the Fixup schedule
augment = False
val_fraction = 0.2  # held out of the training set to pick each arm's lr
search_seeds = [0, 1, 2]  # lr selection (verdicts.select_lr over these seeds, on held-out data)
seeds = [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]  # evaluation at the selected lr; disjoint from search_seeds
chance = 0.1  # 10 classes
superiority_margin = 0.0  # "outperforms": RISOTTO - X > this (accuracy)
overall_best_margin = 0.01  # "overall best": X - RISOTTO + BN < this for every other arm X
paper_precision = "the paper's tables were not available to us"
device = "cpu"  # models and batches move here ("cuda" on a GPU)
replot = False  # True: redraw the figures from the committed measurements (`make figures`)

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

from initrepro.core.claims import Check, StageRecord
from initrepro.core.plotting import scheme_color, subplots
from initrepro.core.seeding import shift
from initrepro.core.stats import mean_ci
from initrepro.core.verdicts import COLLAPSE_TOLERANCE, collapsed, compare, positive_control, select_lr
from initrepro.data import TensorData, load_dataset
from initrepro.measures.isometry import jacobian_singular_values
from initrepro.models.resnet import branch_skip_ratios, resnet
from initrepro.studies.risotto import train_arms
from initrepro.training import TrainConfig

if threads:
    torch.set_num_threads(threads)
seed, search_seeds, seeds = shift(seed, seed_set), shift(search_seeds, seed_set), shift(seeds, seed_set)
torch.manual_seed(seed)
record = StageRecord("risotto_fixup", profile, seed=seed, output_root=output_root, seed_set=seed_set, replot=replot)
SCHEME_NAMES = {"risotto": "RISOTTO", "he": "He (no BN)", "fixup": "Fixup", "skipinit": "SkipInit"}
BN_STYLE = {False: "-", True: "--"}  # line style: without / with batch norm (RISOTTO + BN shares RISOTTO's colour)

# %% [markdown]
# ## Claims 1 and 2: Jacobian spectra and branch/skip balance at initialization

# %% tags=["compute"]
ISO_SHAPES = {"fc": (iso_width // 2,), "conv": (iso_in, iso_size, iso_size)}


def iso_net(kind, btype, init):
    # pool=False and num_classes = half the width: the output keeps the decoded stream, so the
    # Jacobian is square up to the stem's (isometric) embedding.
    return resnet(kind, ISO_SHAPES[kind], iso_width // 2, widths=iso_width, blocks=iso_blocks,
                  block_type=btype, pool=kind == "fc", init=init, seed=seed, dtype=torch.float64)


gen = torch.Generator().manual_seed(seed)
spectra, ratios = {}, {}
for kind in tqdm(ISO_SHAPES, desc="isometry"):
    x = torch.randn(iso_batch, *ISO_SHAPES[kind], generator=gen, dtype=torch.float64)
    for btype in ("B", "C"):
        for init in ("risotto", "he"):
            spectra[kind, btype, init] = jacobian_singular_values(iso_net(kind, btype, init), x[0]).numpy()
        for init in ("risotto", "fixup", "skipinit", "he"):
            ratios[kind, btype, init] = branch_skip_ratios(iso_net(kind, btype, init), x).numpy()

configs = [(k, b) for k in ISO_SHAPES for b in ("B", "C")]
risotto_dev = {f"{k}/{b}": float(np.abs(spectra[k, b, "risotto"] - 1).max()) for k, b in configs}
he_spread = {f"{k}/{b}": float(spectra[k, b, "he"].max() / spectra[k, b, "he"].min()) for k, b in configs}
print("RISOTTO max |s - 1|:", risotto_dev)
print("He s_max / s_min:", he_spread)
record.measure("jacobian_spectra", {f"{k}/{b}": {init: spectra[k, b, init] for init in ("risotto", "he")}
                                    for k, b in configs})
record.measure("branch_skip_ratios", {f"{k}/{b}": {init: ratios[k, b, init] for init in SCHEME_NAMES}
                                      for k, b in configs})

# %% tags=["compute"]
record.claim(
    "risotto.exact_isometry",
    checks=[Check("blocks per net", iso_blocks, ">=", 16, precondition=True,
                  note="the claim is about deep nets")]
    + [Check(f"RISOTTO {c}: max |s - 1|", v, "<=", isometry_tol) for c, v in risotto_dev.items()]
    + [Check(f"He {c}: s_max / s_min", v, ">=", he_min_spread, note="negative control")
       for c, v in he_spread.items()],
    reason=(f"RISOTTO Jacobians at {iso_blocks} blocks, width {iso_width}, float64: largest deviation "
            f"{max(risotto_dev.values()):.1e} from 1; He nets of the same shape span s_max/s_min "
            f"{min(he_spread.values()):.3g} to {max(he_spread.values()):.3g}."),
    measured={"risotto_max_abs_dev": risotto_dev, "he_spread": he_spread},
)

# %% tags=["compute"]
risotto_ratios = np.concatenate([ratios[c + ("risotto",)] for c in configs])
identity_max = {name: float(max(ratios[c + (name,)].max() for c in configs)) for name in ("fixup", "skipinit")}
record.claim(
    "risotto.balanced_branches",
    checks=[Check("RISOTTO min branch/skip ratio", risotto_ratios.min(), ">=", balance_band[0]),
            Check("RISOTTO max branch/skip ratio", risotto_ratios.max(), "<=", balance_band[1]),
            # the contrast the claim draws (the baselines' branches start at zero, by construction):
            # sanity checks of how they were built, not evidence for RISOTTO
            Check("Fixup max branch/skip ratio", identity_max["fixup"], "<=", 0.0, precondition=True,
                  note="by construction: Fixup's last branch layer starts at zero"),
            Check("SkipInit max branch/skip ratio", identity_max["skipinit"], "<=", 0.0, precondition=True,
                  note="by construction: SkipInit's gate starts at zero")],
    reason=(f"RISOTTO (alpha = beta = 1) ratios {risotto_ratios.min():.2f}..{risotto_ratios.max():.2f} over "
            f"every block of fc/conv, type B/C nets (theory for independent orthogonal V: sqrt(2) for B, "
            f"sqrt(3) for C); Fixup max {identity_max['fixup']:.3g}, SkipInit max {identity_max['skipinit']:.3g}."),
    measured={"risotto_ratio_min": risotto_ratios.min(), "risotto_ratio_max": risotto_ratios.max(),
              "risotto_ratio_mean": {f"{k}/{b}": ratios[k, b, "risotto"].mean() for k, b in configs},
              "fixup_max": identity_max["fixup"], "skipinit_max": identity_max["skipinit"]},
)

# %% [markdown]
# ## Claims 3 and 4: training with and without batch norm
# Every arm gets the same lr grid, the same search seeds and the same budget. `verdicts.select_lr`
# picks, per arm, the best mean validation accuracy (on a part of the training set held out)
# among the lrs at which no search seed collapsed; where that is an end of the grid, the grid is
# extended past it (`extend`). The evaluation seeds (disjoint from the search seeds) then train
# on the full training set at that lr. Every run warms the lr up linearly over `warmup_epochs`
# and trains the scalar parameters at `scalar_lr_factor` x lr, as the Fixup reference code does.
# All arms and seeds of one architecture and lr train as one vectorized ensemble
# (`initrepro.studies.risotto.train_arms`): arms are paired by seed and share the data order.
# "Outperforms" is tested as superiority by `superiority_margin`; "often the overall best"
# as RISOTTO + BN at least as good as every other arm, with or without BN, within
# `overall_best_margin` (non-inferiority against each). Every run counts (`verdicts.compare`).

# %% tags=["compute"]
SCHEMES = {  # arm -> (initializer, batch norm)
    "RISOTTO": ("risotto", False),
    "Fixup": ("fixup", False),
    "SkipInit": ("skipinit", False),
    "RISOTTO + BN": ("risotto", True),
    "BN-ResNet (He)": ("he", True),
}
train_set, test_set = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test)
order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))
n_val = int(len(train_set) * val_fraction)
search_val, search_train = (TensorData(train_set.x[i], train_set.y[i], train_set.num_classes, train_set.name)
                            for i in (order[:n_val], order[n_val:]))


def build(arm, run_seed):
    init, batch_norm = SCHEMES[arm]
    return resnet("conv", train_set.input_shape, train_set.num_classes, widths=widths, blocks=blocks,
                  block_type=block_type, batch_norm=batch_norm, init=init, seed=run_seed)


def config(lr):
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                       milestones=tuple(milestones), augment=augment, warmup_epochs=warmup_epochs, seed=seed)


def run(arms, lr, run_seeds, train_data, eval_data):
    return train_arms(build, arms, run_seeds, train_data, eval_data, config(lr), scalar_lr_factor=scalar_lr_factor,
                      device=device)


def by_architecture(arms_lr):
    """{(batch norm, lr): arms} -> one ensemble each."""
    groups = {}
    for arm, lr in arms_lr:
        groups.setdefault((SCHEMES[arm][1], lr), []).append(arm)
    return groups


search = {}  # (arm, lr) -> validation accuracy (search seeds, epochs)
for (bn, lr), arms in tqdm(by_architecture([(a, lr) for lr in lrs for a in SCHEMES]).items(), desc="lr search"):
    search.update({(arm, lr): acc for arm, acc in run(arms, lr, search_seeds, search_train, search_val).items()})


def extender(arm):
    def extend(lr):
        search[arm, lr] = run([arm], lr, search_seeds, search_train, search_val)[arm]
        return search[arm, lr][:, -1]
    return extend


chosen = {arm: select_lr(lrs, [search[arm, lr][:, -1] for lr in lrs], chance, name=arm, extend=extender(arm),
                         max_extensions=max_extensions) for arm in SCHEMES}
best_lr = {arm: c.lr for arm, c in chosen.items()}
print({arm: c.evidence.summary for arm, c in chosen.items()})
# The lr search as curves: validation accuracy at the end of training against the lr (NaN: diverged).
record.curve("lr_search", {f"{arm} seed {s}": (chosen[arm].lrs, [search[arm, lr][j, -1] for lr in chosen[arm].lrs])
                           for arm in SCHEMES for j, s in enumerate(search_seeds)},
             x="learning rate", y="validation accuracy")
record.measure("lr_search", {arm: {"batch_norm": SCHEMES[arm][1], "chosen_lr": best_lr[arm]} for arm in SCHEMES})

curves = {}  # arm -> test accuracy (seeds, epochs) at the chosen lr
for (bn, lr), arms in tqdm(by_architecture([(a, lr) for a, lr in best_lr.items() if lr is not None]).items(),
                           desc="evaluation seeds"):
    curves.update(run(arms, lr, seeds, train_set, test_set))
final = {arm: curves[arm][:, -1] if arm in curves else np.full(len(seeds), np.nan) for arm in SCHEMES}
print(pd.DataFrame({arm: {"lr": best_lr[arm], "mean": np.nanmean(a) if np.isfinite(a).any() else np.nan,
                          "collapsed": int(collapsed(a, chance).sum())} for arm, a in final.items()}).T)
record.curve("test_accuracy", {f"{arm} seed {s}": (list(range(1, acc.shape[1] + 1)), acc[j])
                               for arm, acc in curves.items() for j, s in enumerate(seeds)},
             x="epoch", y="test accuracy")
record.measure("final_test_acc", final)

# %% tags=["compute"]
NO_BN = ["Fixup", "SkipInit"]
OTHERS = [a for a in SCHEMES if a != "RISOTTO + BN"]
COMPARISONS = {  # claim -> [(a, b, superior, margin, collapse_alternative)]
    "risotto.beats_fixup_skipinit": [("RISOTTO", b, True, superiority_margin, "less") for b in NO_BN],
    "risotto.with_batch_norm": [("RISOTTO + BN", b, False, overall_best_margin, None) for b in OTHERS],
}
evidence = {(a, b): compare(a, final[a], b, final[b], margin=m, superior=sup, chance=chance, n_test=len(test_set),
                            bounds=(0, 1), paper_precision=paper_precision, collapse_alternative=alt)
            for pairs in COMPARISONS.values() for a, b, sup, m, alt in pairs}

setup = (f"{dataset}, conv ResNet widths {widths} x blocks {blocks} (type {block_type}), {epochs} epochs "
         f"({warmup_epochs:g} of linear warmup, lr / 10 at {milestones}), scalars at {scalar_lr_factor:g} x lr, "
         f"lr grid {lrs} per arm (extended at an end) searched with {len(search_seeds)} seeds on {n_val} held-out "
         f"images, {len(seeds)} evaluation seeds per arm on {len(test_set)} test images")


def context(claim_id):
    arms = list(dict.fromkeys(x for a, b, *_ in COMPARISONS[claim_id] for x in (a, b)))
    text = f"{setup}. " + "; ".join(
        f"{a}: lr {best_lr[a]} (grid {chosen[a].lrs}), test accuracy "
        f"{np.nanmean(np.nan_to_num(final[a], nan=chance)):.3f} mean over seeds, "
        f"{int(collapsed(final[a], chance).sum())} collapsed" for a in arms)
    need = [evidence[a, b].measured.get("seeds_needed", 0) for a, b, *_ in COMPARISONS[claim_id]]
    if max(need) > len(seeds):
        text += (f". This CPU budget runs {len(seeds)} seeds; about {max(need)} at this spread and difference, or the "
                 f"paper's scale (conf paper.yaml), would decide")
    elif min(need) < 0:
        text += ". A mean difference on the margin: no number of seeds decides it"
    return text + "."


for claim_id, pairs in COMPARISONS.items():
    arms = list(dict.fromkeys(x for a, b, *_ in pairs for x in (a, b)))
    # The references that must train: Fixup and SkipInit; the BN-ResNet for the BN claim (an
    # arm without BN that did not train makes "overall best" easier, not undecidable).
    references = NO_BN if claim_id == "risotto.beats_fixup_skipinit" else ["BN-ResNet (He)"]
    record.claim(
        claim_id,
        [chosen[a].evidence for a in arms] + [positive_control(b, final[b], chance) for b in references]
        + [evidence[a, b] for a, b, *_ in pairs],
        reason=context(claim_id),
        measured={"final_test_acc": {a: final[a] for a in arms}, "best_lr": {a: best_lr[a] for a in arms},
                  "lr_grid": {a: chosen[a].lrs for a in arms},
                  "lr_search_val_acc": {f"{a} lr={lr:g}": search[a, lr][:, -1] for a in arms for lr in chosen[a].lrs},
                  "comparisons": {f"{a} - {b}": evidence[a, b].measured for a, b, *_ in pairs}},
    )

# %% [markdown]
# ## Figures, drawn from the measurements alone (`make figures` redraws them)

# %%
spectra_m = record.measurements["jacobian_spectra"]
exact = next(c for c in record.claims if c["id"] == "risotto.exact_isometry")["measured"]
names = list(spectra_m)
fig = plt.figure(figsize=(4 * len(names), 7.4), layout="constrained")
axd = fig.subplot_mosaic([names, ["dev"] * (len(names) // 2) + ["spread"] * (len(names) - len(names) // 2)])
for i, name in enumerate(names):
    ax = axd[name]
    for init in ("risotto", "he"):
        s = spectra_m[name][init]
        ax.plot(np.arange(1, len(s) + 1), s, marker=".", color=scheme_color(init), label=SCHEME_NAMES[init])
    kind, btype = name.split("/")
    ax.set(yscale="log", title=f"{'fully connected' if kind == 'fc' else 'convolutional'}, type {btype} blocks",
           xlabel="singular value number (largest first)")
    ax.set_ylabel("singular value of the input-output\nJacobian at init" if i == 0 else "")
    ax.axhline(1, color="black", lw=0.8, ls=":", label="1 (isometry)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize="small")
ax = axd["dev"]
dev = exact["risotto_max_abs_dev"]
ax.bar(list(dev), [max(v, 1e-18) for v in dev.values()], color=scheme_color("RISOTTO"), label="RISOTTO")
ax.axhline(isometry_tol, color="black", ls="--", lw=1, label=f"tolerance {isometry_tol:g} (must be below)")
ax.set(yscale="log", ylabel="largest |singular value - 1|", xlabel="net (layer type / block type)",
       title=f"RISOTTO: distance from an exact isometry ({iso_blocks} blocks, float64)")
ax.legend(fontsize="small")
ax = axd["spread"]
spread_ = exact["he_spread"]
ax.bar(list(spread_), list(spread_.values()), color=scheme_color("He"), label="He (negative control)")
ax.axhline(he_min_spread, color="black", ls="--", lw=1, label=f"{he_min_spread:g} (must reach it)")
ax.set(yscale="log", ylabel="largest / smallest singular value", xlabel="net (layer type / block type)",
       title="He: the spectrum spreads (negative control)")
ax.legend(fontsize="small")
record.figure(fig, "jacobian_spectra.png", claims=["risotto.exact_isometry"])

# %%
ratio_m = record.measurements["branch_skip_ratios"]
fig, axes = subplots(1, len(ratio_m), figsize=(4 * len(ratio_m), 3.8), sharey=True)
markers = {"risotto": "o", "he": "s", "fixup": "x", "skipinit": "+"}
top = max(max(r) for by_init in ratio_m.values() for r in by_init.values())
for ax, (name, by_init) in zip(np.atleast_1d(axes), ratio_m.items()):
    ax.axhspan(balance_band[0], balance_band[1], color=scheme_color("RISOTTO"), alpha=0.08,
               label=f"band RISOTTO must stay in ({balance_band[0]:g} to {balance_band[1]:g})")
    for init, r in by_init.items():
        ax.plot(np.arange(1, len(r) + 1), r, marker=markers[init], ms=6, color=scheme_color(init),
                label=SCHEME_NAMES[init] + (" (must be 0)" if init in ("fixup", "skipinit") else ""))
    kind, btype = name.split("/")
    ax.set(title=f"{'fully connected' if kind == 'fc' else 'convolutional'}, type {btype}, at init", xlabel="block",
           ylim=(-0.05 * top, 1.25 * top))
    ax.xaxis.get_major_locator().set_params(integer=True)
np.atleast_1d(axes)[0].set_ylabel("size of residual branch / size of skip\n(output norms on a batch)")
np.atleast_1d(axes)[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize="small")
record.figure(fig, "branch_skip_ratio.png", claims=["risotto.balanced_branches"])

# %%
search_c = record.curves["lr_search"]["series"]
lr_info = record.measurements["lr_search"]
fig, axes = subplots(1, 2, figsize=(13, 4.6), sharey=True)
for ax, bn in zip(axes, (False, True)):
    for arm, info in lr_info.items():
        if info["batch_norm"] != bn:
            continue
        per_seed = [v for k, v in search_c.items() if k.rsplit(" seed ", 1)[0] == arm]
        grid = per_seed[0][0]
        acc = np.nan_to_num(np.array([ys for _, ys in per_seed], dtype=float))  # (seeds, lrs); diverged: 0
        color, chosen_lr = scheme_color(arm), info["chosen_lr"]
        ax.plot(grid, acc.mean(axis=0), marker="o", color=color, ls=BN_STYLE[bn],
                label=f"{arm}: chosen lr {chosen_lr:g}" if chosen_lr is not None else f"{arm}: no lr chosen "
                      "(a search seed collapsed at every lr)")
        ax.plot(np.tile(grid, acc.shape[0]), acc.ravel(), ".", color=color, alpha=0.45)
        if chosen_lr is not None:
            ax.plot([chosen_lr], [acc[:, grid.index(chosen_lr)].mean()], "*", ms=18, color=color, mec="black")
    ax.axhline(chance + COLLAPSE_TOLERANCE, color="grey", ls=":", lw=1.2,
               label=f"collapse line, chance + {COLLAPSE_TOLERANCE:g}: an lr is eligible only if every seed is above")
    grid_all = sorted({lr for k, (xs, _) in search_c.items() for lr in xs})
    ax.set(xscale="log", ylim=(0, 1), xlabel="learning rate",
           title=f"lr search {'with' if bn else 'without'} batch norm (star: the chosen lr)")
    ax.set_xticks(grid_all, [f"{lr:g}" for lr in grid_all])
    ax.minorticks_off()
    ax.legend(fontsize="x-small", loc="upper left")
axes[0].set_ylabel(f"validation accuracy at the end of training\n(line: mean of {len(search_seeds)} search seeds, "
                   "dots: seeds; diverged = 0)")
record.figure(fig, "lr_search.png", claims=["risotto.beats_fixup_skipinit", "risotto.with_batch_norm"])

# %%
final_m = record.measurements["final_test_acc"]
arms_ = list(final_m)
rows = [(c["id"], pair, m) for c in record.claims if c["id"] in ("risotto.beats_fixup_skipinit", "risotto.with_batch_norm")
        for pair, m in c["measured"]["comparisons"].items()]
fig, (ax_c, ax_a, ax_d) = subplots(1, 3, figsize=(18, 5), width_ratios=[1, 0.9, 1.1])
shown = set()
for series, (epochs_, accs) in record.curves["test_accuracy"]["series"].items():
    arm = series.rsplit(" seed ", 1)[0]
    ax_c.plot(epochs_, accs, marker=".", color=scheme_color(arm), ls=BN_STYLE[lr_info[arm]["batch_norm"]], alpha=0.6,
              label=None if arm in shown else f"{arm} (lr {lr_info[arm]['chosen_lr']:g})")
    shown.add(arm)
for arm in arms_:
    if arm not in shown:
        ax_c.plot([], [], color=scheme_color(arm), ls=BN_STYLE[lr_info[arm]["batch_norm"]], label=f"{arm}: not trained "
                  "(no lr chosen)")
ax_c.axhline(chance, color="grey", ls=":", lw=1, label=f"chance {chance:g}")
if not record.curves["test_accuracy"]["series"]:
    ax_c.text(0.5, 0.5, "no arm trained: no lr was chosen for any", transform=ax_c.transAxes, ha="center")
ax_c.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
ax_c.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1), xlim=(0.5, epochs + 0.5),
         title=f"test accuracy at the chosen lr, {len(seeds)} evaluation seeds each")
ax_c.legend(fontsize="x-small")
for i, arm in enumerate(arms_):
    vals = np.array([np.nan if v is None else v for v in final_m[arm]], dtype=float)
    ok = np.isfinite(vals)
    color = scheme_color(arm)
    ax_a.plot(np.full(ok.sum(), i), vals[ok], "o", color=color, alpha=0.5)
    ax_a.plot(np.full((~ok).sum(), i), np.full((~ok).sum(), chance), "x", color=color, ms=8,
              label="diverged or not trained (counted at chance)" if (~ok).any() and not ax_a.get_legend_handles_labels()[1]
              else None)
    mean, lo, hi = mean_ci(np.where(ok, vals, chance))
    ax_a.errorbar([i], [mean], yerr=[[mean - lo], [hi - mean]] if np.isfinite(lo) else None, fmt="D", ms=7,
                  color=color, mec="black", capsize=6)
ax_a.axhline(chance, color="grey", ls=":", lw=1, label=f"chance {chance:g}")
ax_a.set_xticks(range(len(arms_)), arms_, rotation=20, fontsize="small")
ax_a.set(ylabel="final test accuracy (diamond: mean, 95% CI)", ylim=(0, 1), title="final test accuracy per arm")
ax_a.legend(fontsize="x-small")
claim_color = {"risotto.beats_fixup_skipinit": scheme_color("RISOTTO"), "risotto.with_batch_norm": "black"}
for row, (cid, pair, m) in enumerate(rows):
    a, b = pair.split(" - ", 1)
    fa = np.array([chance if v is None else v for v in final_m[a]], dtype=float)
    fb = np.array([chance if v is None else v for v in final_m[b]], dtype=float)
    ax_d.plot(fa - fb, np.full(len(fa), row), ".", color="grey", alpha=0.6, label="paired seeds" if row == 0 else None)
    if all(m.get(k) is not None for k in ("mean_diff", "ci_low", "ci_high")):
        ax_d.errorbar([m["mean_diff"]], [row], xerr=[[m["mean_diff"] - m["ci_low"]], [m["ci_high"] - m["mean_diff"]]],
                      fmt="D", color=claim_color[cid], capsize=5, label=f"mean and 95% CI ({cid})"
                      if row == [r[0] for r in rows].index(cid) else None)
    ax_d.vlines(m["threshold"], row - 0.4, row + 0.4, color=claim_color[cid], ls="--", lw=1.5,
                label=("superiority margin: the CI must lie right of it" if cid == "risotto.beats_fixup_skipinit"
                       else "non-inferiority margin: the CI must lie right of it")
                if row == [r[0] for r in rows].index(cid) else None)
ax_d.axvline(0, color="grey", lw=0.6)
ax_d.set_yticks(range(len(rows)), [pair for _, pair, _ in rows], fontsize="small")
ax_d.invert_yaxis()
ax_d.set(xlabel="paired difference of final test accuracy (diverged runs at chance)",
         title=f"what decided: margins +{superiority_margin:g} (outperforms), -{overall_best_margin:g} (overall best)")
ax_d.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2, frameon=False)
record.figure(fig, "accuracy.png", claims=["risotto.beats_fixup_skipinit", "risotto.with_batch_norm"])

# %%
record.verdicts_figure()

# %% tags=["compute"]
record.write()
print(record.summary())
