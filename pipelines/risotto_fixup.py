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
# Training, claims 3 and 4
dataset = "digits"
n_train = None
n_test = None
widths = [16, 32]
blocks = [3, 3]
block_type = "C"
epochs = 8
batch_size = 64
lrs = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]  # the same ascending grid for every scheme
momentum = 0.9
weight_decay = 1e-4
milestones = [4, 6]  # lr divided by 10 at 50% and 75% of training, as in the Fixup schedule
augment = False
val_fraction = 0.2  # held out of the training set to pick each scheme's lr
search_seeds = [0, 1, 2]  # lr selection (verdicts.select_lr over these seeds, on held-out data)
seeds = [10, 11, 12, 13, 14, 15, 16, 17]  # evaluation at the selected lr; disjoint from search_seeds
chance = 0.1  # 10 classes
margin = 0.02  # non-inferiority margin (accuracy), fixed before the run: see the conf

# %%
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from tqdm import tqdm

from initrepro.arms import train_arms
from initrepro.claims import Check, StageRecord
from initrepro.data import TensorData, load_dataset
from initrepro.isometry import jacobian_singular_values
from initrepro.models.resnet import branch_skip_ratios, resnet
from initrepro.plotting import subplots
from initrepro.seeding import shift
from initrepro.training import TrainConfig
from initrepro.verdicts import collapsed, compare, positive_control, select_lr

if threads:
    torch.set_num_threads(threads)
seed, search_seeds, seeds = shift(seed, seed_set), shift(search_seeds, seed_set), shift(seeds, seed_set)
torch.manual_seed(seed)
record = StageRecord("risotto_fixup", profile, seed=seed, output_root=output_root, seed_set=seed_set)

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
    + [Check(f"RISOTTO {c}: max |s - 1|", v, "<=", isometry_tol) for c, v in risotto_dev.items()]
    + [Check(f"He {c}: s_max / s_min", v, ">=", he_min_spread, note="negative control")
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
axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
ratio_path = record.figure(fig, "branch_skip_ratio.png")

# %%
risotto_ratios = np.concatenate([ratios[c + ("risotto",)] for c in configs])
identity_max = {name: float(max(ratios[c + (name,)].max() for c in configs)) for name in ("fixup", "skipinit")}
record.claim(
    "risotto.balanced_branches",
    checks=[Check("RISOTTO min branch/skip ratio", risotto_ratios.min(), ">=", balance_band[0]),
            Check("RISOTTO max branch/skip ratio", risotto_ratios.max(), "<=", balance_band[1]),
            Check("Fixup max branch/skip ratio", identity_max["fixup"], "<=", 0.0),
            Check("SkipInit max branch/skip ratio", identity_max["skipinit"], "<=", 0.0)],
    figures=[ratio_path],
    reason=(f"RISOTTO (alpha = beta = 1) ratios {risotto_ratios.min():.2f}..{risotto_ratios.max():.2f} over "
            f"every block of fc/conv, type B/C nets (theory for independent orthogonal V: sqrt(2) for B, "
            f"sqrt(3) for C); Fixup max {identity_max['fixup']:.3g}, SkipInit max {identity_max['skipinit']:.3g}."),
    measured={"risotto_ratio_min": risotto_ratios.min(), "risotto_ratio_max": risotto_ratios.max(),
              "risotto_ratio_mean": {f"{k}/{b}": ratios[k, b, "risotto"].mean() for k, b in configs},
              "fixup_max": identity_max["fixup"], "skipinit_max": identity_max["skipinit"]},
)

# %% [markdown]
# ## Claims 3 and 4: training with and without batch norm
# Every scheme gets the same lr grid. `verdicts.select_lr` picks, per scheme, the best mean
# validation accuracy over `search_seeds` (on a part of the training set held out), at least one
# grid step below the collapse edge: the smallest lr, above the lowest one at which every search
# seed trained, at which any search seed collapsed (to chance, or diverged). The evaluation seeds
# (disjoint from the search seeds) then train on the full training set at that lr. All arms and
# seeds of one architecture and lr train as one vectorized ensemble (`initrepro.arms.train_arms`):
# arms are paired by seed and share the data order. Each claim is decided by the 95% CI of the
# paired accuracy difference against the non-inferiority `margin` of the conf, with collapsed
# runs counted apart (`verdicts.compare`) and the reference as a positive control.

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


def build(arm, run_seed):
    init, batch_norm = SCHEMES[arm]
    return resnet("conv", train_set.input_shape, train_set.num_classes, widths=widths, blocks=blocks,
                  block_type=block_type, batch_norm=batch_norm, init=init, seed=run_seed)


def config(lr):
    return TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                       milestones=tuple(milestones), augment=augment, seed=seed)


def by_architecture(arms_lr):
    """{(batch norm, lr): arms} -> one ensemble each."""
    groups = {}
    for arm, lr in arms_lr:
        groups.setdefault((SCHEMES[arm][1], lr), []).append(arm)
    return groups


search = {}  # (arm, lr) -> validation accuracy (search seeds, epochs)
for (bn, lr), arms in tqdm(by_architecture([(a, lr) for lr in lrs for a in SCHEMES]).items(), desc="lr search"):
    for arm, acc in train_arms(build, arms, search_seeds, search_train, search_val, config(lr)).items():
        search[arm, lr] = acc
chosen = {arm: select_lr(lrs, np.array([search[arm, lr][:, -1] for lr in lrs]), chance) for arm in SCHEMES}
best_lr = {arm: lr for arm, (lr, _) in chosen.items()}
print("chosen lr:", {arm: (lr, info["edge_lr"], bool(info["margin_from_edge"])) for arm, (lr, info) in chosen.items()})

curves = {}  # arm -> test accuracy (seeds, epochs) at the chosen lr
for (bn, lr), arms in tqdm(by_architecture(best_lr.items()).items(), desc="evaluation seeds"):
    curves.update(train_arms(build, arms, seeds, train_set, test_set, config(lr)))
final = {arm: curves[arm][:, -1] for arm in SCHEMES}
print(pd.DataFrame({arm: {"mean": np.nanmean(a), "min": np.nanmin(a), "collapsed": int(collapsed(a, chance).sum())}
                    for arm, a in final.items()}).T)

# %%
COMPARISONS = {"risotto.beats_fixup_skipinit": [("RISOTTO", "Fixup"), ("RISOTTO", "SkipInit")],
               "risotto.with_batch_norm": [("RISOTTO + BN", "BN-ResNet (He)")]}
evidence = {(a, b): compare(a, final[a], b, final[b], margin=margin, chance=chance)
            for pairs in COMPARISONS.values() for a, b in pairs}

fig, axes = subplots(1, 3, figsize=(15, 3.8))
for ax, bn in zip(axes[:2], (False, True)):
    for arm in (a for a in SCHEMES if SCHEMES[a][1] == bn):
        acc = np.nan_to_num(np.array([search[arm, lr][:, -1] for lr in lrs]))  # diverged: 0
        line, = ax.plot(lrs, acc.mean(axis=1), marker="o", label=f"{arm} (lr {best_lr[arm]:g})")
        ax.plot(np.repeat(lrs, acc.shape[1]), acc.ravel(), ".", color=line.get_color(), alpha=0.4)
        ax.plot([best_lr[arm]], [acc[lrs.index(best_lr[arm])].mean()], "*", ms=14, color=line.get_color())
    ax.axhline(chance + 0.05, color="gray", ls=":", lw=1)
    ax.set(xscale="log", ylim=(0, 1), xlabel="learning rate", ylabel=f"validation accuracy ({len(search_seeds)} seeds; diverged = 0)",
           title=f"lr search {'with' if bn else 'without'} batch norm (star: selected)")
    ax.legend(fontsize=8)
pairs = list(evidence)
for i, pair in enumerate(pairs):
    d = final[pair[0]] - final[pair[1]]
    ax = axes[2]
    ax.plot(np.full(len(d), i), d, ".", alpha=0.6, color="gray")
    m = evidence[pair].measured
    if "mean_diff" not in m:  # decided by the collapse counts alone
        continue
    ax.errorbar([i], [m["mean_diff"]], yerr=[[m["mean_diff"] - m["ci_low"]], [m["ci_high"] - m["mean_diff"]]],
                fmt="o", capsize=5, color="C0" if i < 2 else "C3")
axes[2].axhline(-margin, color="k", ls="--", lw=1, label=f"non-inferiority margin -{margin:g}")
axes[2].axhline(0, color="gray", lw=0.5)
axes[2].set_xticks(range(len(pairs)), [f"{a}\n- {b}" for a, b in pairs], fontsize=8)
axes[2].set(ylabel="paired test accuracy difference", title=f"{len(seeds)} seeds per arm at the selected lr (95% CI)")
axes[2].legend(fontsize=8)
accuracy_path = record.figure(fig, "accuracy.png")

# %%
setup = (f"{dataset}, conv ResNet widths {widths} x blocks {blocks} (type {block_type}), {epochs} epochs, "
         f"lr grid {lrs} per scheme searched with {len(search_seeds)} seeds on {n_val} held-out images, "
         f"{len(seeds)} evaluation seeds per arm")


def context(claim_id):
    arms = sorted({a for pair in COMPARISONS[claim_id] for a in pair}, key=list(SCHEMES).index)
    text = f"{setup}. " + "; ".join(
        f"{a}: lr {best_lr[a]:g} (collapse edge {chosen[a][1]['edge_lr']}), test accuracy "
        f"{np.nanmean(final[a]):.3f} mean over seeds, {int(collapsed(final[a], chance).sum())} collapsed" for a in arms)
    need = [evidence[p].measured.get("seeds_needed", 0) for p in COMPARISONS[claim_id]]
    if max(need) > len(seeds):
        text += (f". This CPU budget runs {len(seeds)} seeds; about {max(need)} at this spread, or the paper's "
                 f"scale (conf paper.yaml), would decide")
    return text + "."


def lr_checks(arms):
    return [Check(f"{a}: selected lr {best_lr[a]:g} a grid step below the collapse edge (1 yes, 0 no)",
                  int(chosen[a][1]["margin_from_edge"]), ">=", 1, precondition=True,
                  note=f"edge {chosen[a][1]['edge_lr']}; else no lr of the grid trains every search seed stably")
            for a in arms]


for claim_id, pairs in COMPARISONS.items():
    references = sorted({b for _, b in pairs}, key=list(SCHEMES).index)
    arms = sorted({a for pair in pairs for a in pair}, key=list(SCHEMES).index)
    record.claim(
        claim_id,
        lr_checks(arms) + [positive_control(b, final[b], chance) for b in references] + [evidence[p] for p in pairs],
        figures=[accuracy_path],
        reason=context(claim_id),
        measured={"final_test_acc": {a: final[a] for a in arms}, "best_lr": {a: best_lr[a] for a in arms},
                  "lr_search_val_acc": {f"{a} lr={lr:g}": search[a, lr][:, -1] for a in arms for lr in lrs},
                  "comparisons": {f"{a} - {b}": evidence[a, b].measured for a, b in pairs}},
    )

# %%
record.write()
print(record.summary())
