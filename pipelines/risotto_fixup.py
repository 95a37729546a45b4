# %% [markdown]
# # RISOTTO vs Fixup and SkipInit: exact isometry for ReLU ResNets, training without batch norm
# Gadhikar & Burkholz 2022 (RISOTTO) against Fixup (Zhang et al. 2019) and SkipInit (De & Smith
# 2020). Claims: (1) the input-output Jacobian of a RISOTTO ResNet has all singular values 1,
# for type B and type C blocks, fully connected and convolutional; (2) its residual branches
# are of the same order as the skips, while Fixup and SkipInit start with zero branches;
# (3) without batch norm it trains at least as well as Fixup and SkipInit; (4) with batch norm
# at least as well as the He-initialized BN-ResNet. Every scheme initializes the same
# `initrepro.models.resnet` family, so the arms differ in the initialization alone.

# %% tags=["parameters"]
profile = "smoke"
output_root = "."
seed = 0
threads = 1  # the smoke CPU is shared, and one thread per process is faster than two there
# Isometry and balance at init (float64), claims 1 and 2
iso_blocks = 16
iso_width = 16  # stream width, two mirrored halves of 8
iso_in = 4  # conv input channels, at most half the width: isometric stem (fc nets take half the width)
iso_size = 6  # conv input is iso_in x iso_size x iso_size
iso_batch = 64  # inputs for the branch/skip ratios
# Training, claims 3 and 4
dataset = "digits"
n_train = None
n_test = None
widths = [16, 32]
blocks = [3, 3]
block_type = "C"
epochs = 8
batch_size = 64
lrs = [0.001, 0.003, 0.01, 0.03, 0.1]  # the same grid for every scheme
momentum = 0.9
weight_decay = 1e-4
milestones = [4, 6]  # lr divided by 10 at 50% and 75% of training, as in the Fixup schedule
augment = False
val_fraction = 0.2  # held out of the training set to pick each scheme's lr
seeds = [0, 1, 2]

# %%
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from tqdm import tqdm

from initrepro.claims import Check, StageRecord
from initrepro.data import TensorData, load_dataset
from initrepro.isometry import jacobian_singular_values
from initrepro.models.resnet import branch_skip_ratios, resnet
from initrepro.plotting import subplots
from initrepro.stats import mean_ci
from initrepro.training import TrainConfig, train

if threads:
    torch.set_num_threads(threads)
torch.manual_seed(seed)
record = StageRecord("risotto_fixup", profile, seed=seed, output_root=output_root)

# Thresholds, fixed from the claims before any run.
ISOMETRY_TOL = 1e-6  # claim 1: every singular value within 1e-6 of 1 (float64)
HE_MIN_SPREAD = 100.0  # claim 1, negative control: He's s_max / s_min spans >= 2 orders of magnitude
BALANCE_BAND = (0.1, 10.0)  # claim 2: "of order one" = within one order of magnitude of 1
LEARNED_ACC = 0.5  # precondition: the best arm learned (chance is 0.1 on 10 classes)

# %% [markdown]
# ## Claims 1 and 2: Jacobian spectra and branch/skip balance at initialization

# %%
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

# %%
fig, axes = subplots(1, len(configs), figsize=(4 * len(configs), 3.4), sharey=True)
for ax, (kind, btype) in zip(axes, configs):
    for init, label in (("risotto", "RISOTTO"), ("he", "He")):
        s = spectra[kind, btype, init]
        ax.plot(np.arange(1, len(s) + 1), s, marker=".", label=label)
    ax.set(yscale="log", title=f"{kind}, type {btype}, {iso_blocks} blocks", xlabel="index (descending)")
    ax.xaxis.get_major_locator().set_params(integer=True)
axes[0].set_ylabel("singular value of d output / d input")
axes[0].legend()
spectra_path = record.figure(fig, "jacobian_spectra.png")

# %%
record.claim(
    "risotto.exact_isometry",
    checks=[Check("blocks per net", iso_blocks, ">=", 16, precondition=True,
                  note="the claim is about deep nets")]
    + [Check(f"RISOTTO {c}: max |s - 1|", v, "<=", ISOMETRY_TOL) for c, v in risotto_dev.items()]
    + [Check(f"He {c}: s_max / s_min", v, ">=", HE_MIN_SPREAD, note="negative control")
       for c, v in he_spread.items()],
    figures=[spectra_path],
    reason=(f"RISOTTO Jacobians at {iso_blocks} blocks, width {iso_width}, float64: largest deviation "
            f"{max(risotto_dev.values()):.1e} from 1; He nets of the same shape span s_max/s_min "
            f"{min(he_spread.values()):.3g} to {max(he_spread.values()):.3g}."),
    measured={"risotto_max_abs_dev": risotto_dev, "he_spread": he_spread},
)

# %%
SCHEME_STYLES = {"risotto": ("RISOTTO", "o", "-"), "he": ("He (no BN)", "s", "-"),
                 "fixup": ("Fixup", "x", "--"), "skipinit": ("SkipInit", "+", ":")}
fig, axes = subplots(1, len(configs), figsize=(4 * len(configs), 3.4), sharey=True)
for ax, (kind, btype) in zip(axes, configs):
    for init, (label, marker, style) in SCHEME_STYLES.items():
        r = ratios[kind, btype, init]
        ax.plot(np.arange(1, len(r) + 1), r, marker=marker, ls=style, ms=5, label=label)
    ax.set(title=f"{kind}, type {btype}, at init", xlabel="block")
    ax.xaxis.get_major_locator().set_params(integer=True)
axes[0].set_ylabel("||residual branch|| / ||skip||")
axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), title="Fixup, SkipInit: exactly 0")
ratio_path = record.figure(fig, "branch_skip_ratio.png")

# %%
risotto_ratios = np.concatenate([ratios[c + ("risotto",)] for c in configs])
identity_max = {name: float(max(ratios[c + (name,)].max() for c in configs)) for name in ("fixup", "skipinit")}
record.claim(
    "risotto.balanced_branches",
    checks=[Check("RISOTTO min branch/skip ratio", risotto_ratios.min(), ">=", BALANCE_BAND[0]),
            Check("RISOTTO max branch/skip ratio", risotto_ratios.max(), "<=", BALANCE_BAND[1]),
            Check("Fixup max branch/skip ratio", identity_max["fixup"], "<=", 0.0),
            Check("SkipInit max branch/skip ratio", identity_max["skipinit"], "<=", 0.0)],
    figures=[ratio_path],
    reason=(f"RISOTTO (alpha = beta = 1) ratios {risotto_ratios.min():.2f}..{risotto_ratios.max():.2f} over "
            f"every block of fc/conv, type B/C nets (theory for independent orthogonal V: sqrt(2) for B, "
            f"sqrt(3) for C); Fixup and SkipInit exactly 0."),
    measured={"risotto_ratio_min": risotto_ratios.min(), "risotto_ratio_max": risotto_ratios.max(),
              "risotto_ratio_mean": {f"{k}/{b}": ratios[k, b, "risotto"].mean() for k, b in configs},
              "fixup_max": identity_max["fixup"], "skipinit_max": identity_max["skipinit"]},
)

# %% [markdown]
# ## Claims 3 and 4: training with and without batch norm
# Each scheme gets the same lr grid, searched on a held-out part of the training set with the
# first seed; the chosen lr is then trained on the full training set for every seed.

# %%
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


def fit(arm, lr, run_seed, fit_set, eval_set):
    init, batch_norm = SCHEMES[arm]
    model = resnet("conv", fit_set.input_shape, fit_set.num_classes, widths=widths, blocks=blocks,
                   block_type=block_type, batch_norm=batch_norm, init=init, seed=run_seed)
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                      weight_decay=weight_decay, milestones=tuple(milestones), augment=augment, seed=run_seed)
    return train(model, fit_set, eval_set, cfg, progress=False)


runs = [(arm, lr) for arm in SCHEMES for lr in lrs]
search = {(arm, lr): fit(arm, lr, seeds[0], search_train, search_val).final_test_acc
          for arm, lr in tqdm(runs, desc="lr search")}
best_lr = {arm: max(lrs, key=lambda lr: search[arm, lr]) for arm in SCHEMES}
print("validation accuracy:", search, "\nchosen lr:", best_lr)
histories = {(arm, s): fit(arm, best_lr[arm], s, train_set, test_set)
             for arm, s in tqdm([(a, s) for a in SCHEMES for s in seeds], desc="seeds")}
final = {arm: [histories[arm, s].final_test_acc for s in seeds] for arm in SCHEMES}
summary = {arm: dict(zip(("mean", "ci_low", "ci_high"), mean_ci(acc))) for arm, acc in final.items()}
print(pd.DataFrame(summary).T)

# %%
curves = pd.DataFrame([{"arm": arm, "seed": s, "epoch": e, "test accuracy": a}
                       for (arm, s), h in histories.items() for e, a in zip(h.epoch, h.test_acc)])
fig, axes = subplots(1, 3, figsize=(14, 3.8))
for ax, arms, title in ((axes[0], ["RISOTTO", "Fixup", "SkipInit"], "without batch norm"),
                        (axes[1], ["RISOTTO + BN", "BN-ResNet (He)"], "with batch norm")):
    sns.lineplot(curves[curves.arm.isin(arms)], x="epoch", y="test accuracy", hue="arm", units="seed",
                 estimator=None, ax=ax, alpha=0.8)
    ax.set(title=f"{dataset}, {title} (one line per seed)", ylim=(0, 1))
means = [summary[a]["mean"] for a in SCHEMES]
errors = np.array([[summary[a]["mean"] - summary[a]["ci_low"], summary[a]["ci_high"] - summary[a]["mean"]]
                   for a in SCHEMES]).T
axes[2].bar(range(len(SCHEMES)), means, yerr=np.nan_to_num(errors), capsize=4,
            color=sns.color_palette(n_colors=len(SCHEMES)))
axes[2].set_xticks(range(len(SCHEMES)), [f"{a}\nlr {best_lr[a]:g}".replace(" + ", "\n+ ").replace(" (", "\n(")
                                         for a in SCHEMES], fontsize=8)
axes[2].set(ylabel="final test accuracy (mean, 95% CI)", title=f"{len(seeds)} seeds per arm", ylim=(0, 1))
accuracy_path = record.figure(fig, "accuracy.png")

# %%
def mean_of(arm):
    return summary[arm]["mean"]


def ci_text(arm):
    seeds_text = ", ".join(f"{a:.2f}" for a in final[arm])
    return (f"{arm} {mean_of(arm):.3f} [{summary[arm]['ci_low']:.3f}, {summary[arm]['ci_high']:.3f}] "
            f"(seeds {seeds_text}; lr {best_lr[arm]:g})")


def strength(arm, others):
    # The checks compare means, as the claim does; say how much the seeds' spread supports them.
    overlap = [o for o in others if summary[o]["ci_low"] <= summary[arm]["ci_high"]
               and summary[arm]["ci_low"] <= summary[o]["ci_high"]]
    return (f" The 95% CIs of {arm} and {', '.join(overlap)} overlap: at {len(seeds)} seeds the ordering of "
            "the means is weak evidence either way." if overlap else f" The 95% CI of {arm} is separated from the others.")


measured = {"final_test_acc": final, "mean_ci": summary, "best_lr": best_lr, "lr_search_val_acc":
            {f"{arm} lr={lr:g}": acc for (arm, lr), acc in search.items()}}
setup = (f"{dataset}, conv ResNet widths {widths} x blocks {blocks} (type {block_type}), {epochs} epochs, "
         f"lr grid {lrs} per scheme, {len(seeds)} seeds")
no_bn = ["RISOTTO", "Fixup", "SkipInit"]
record.claim(
    "risotto.beats_fixup_skipinit",
    checks=[Check("best no-BN arm mean test accuracy", max(mean_of(a) for a in no_bn), ">=", LEARNED_ACC,
                  precondition=True, note="the setup trains at all"),
            Check("RISOTTO - Fixup mean test accuracy", mean_of("RISOTTO") - mean_of("Fixup"), ">=", 0.0),
            Check("RISOTTO - SkipInit mean test accuracy", mean_of("RISOTTO") - mean_of("SkipInit"), ">=", 0.0)],
    figures=[accuracy_path],
    reason=f"{setup}: " + "; ".join(ci_text(a) for a in no_bn) + "." + strength("RISOTTO", no_bn[1:]),
    measured=measured,
)
record.claim(
    "risotto.with_batch_norm",
    checks=[Check("BN-ResNet mean test accuracy", mean_of("BN-ResNet (He)"), ">=", LEARNED_ACC,
                  precondition=True, note="the baseline learned"),
            Check("RISOTTO+BN - BN-ResNet mean test accuracy",
                  mean_of("RISOTTO + BN") - mean_of("BN-ResNet (He)"), ">=", 0.0)],
    figures=[accuracy_path],
    reason=(f"{setup}: " + "; ".join(ci_text(a) for a in ("RISOTTO + BN", "BN-ResNet (He)")) + "."
            + strength("RISOTTO + BN", ["BN-ResNet (He)"])),
    measured={"mean_ci": {a: summary[a] for a in ("RISOTTO + BN", "BN-ResNet (He)")}},
)

# %%
record.write()
print(record.summary())
