# %% [markdown]
# # IDInit: padded identity, the epsilon dead-neuron fix, momentum, rank, accuracy
# Pan et al. 2025, "IDInit: A Universal and Stable Initialization Method for Neural Network
# Training" (ICLR 2025). Claims: (1) exact zeros leave parameters that never train where
# features are zero-filled, and IDIZ's +-eps entries revive them (Sec. 3.2, Fig. 5, Table 4);
# (2) a 3-layer linear net started at the identity on the target -I stalls under plain
# gradient descent and converges with momentum (Sec. 3.1, Table 1); (3) padded identity lets
# rank(W - W_init) exceed the input dimension, unlike zero padding (Thm 3.1, Fig. 4b);
# (4) without batch norm an IDInit ResNet trains as well as Fixup, ZerO and Kaiming (Table 2).

# %% tags=["parameters"]
profile = "smoke"
output_root = "."
seed_set = 0
seed = 0
threads = 1  # the smoke CPU is shared
# Claim 2: deep linear net from the identity, target y = -x (Table 1)
lin_dim = 10
lin_samples = 2000
lin_sets = 3  # independent data sets (one net each)
lin_steps = 1500
lin_lr = 0.01
lin_momentum = 0.9
lin_batch = 200  # the reviewers' momentum-free minibatch SGD arm (context only)
stall_loss_min = 1.0  # theory: the zero-product saddle has loss d/2, i.e. 5; a run above 1 has not left it
converged_loss_max = 1e-6  # converged: below 1e-6 (the initial loss is about 2d, i.e. 20)
# Claim 3: rank of the weight change in an MLP 64-64-128-128-10 on digits (Fig. 4b)
rank_hidden = [64, 128, 128]
rank_layer = 2  # W3, the square layer after the widening one
rank_steps = 2000
rank_lr = 0.01
rank_batch = 64
rank_seeds = [0]
rank_loose_std = 1e-6
rank_rtol = 1e-8  # float64 numerical rank: singular values above 1e-8 s_max
# Claims 1 and 4: a ResNet without batch norm
dataset = "digits"
kind = "fc"  # fully connected ResNet on CPU ("conv" exercises the patch-maintain IDIC at paper scale)
n_train = None
n_test = None
widths = [64, 128]  # the width change 64 -> 128: padded identity or zero padding on the projection
blocks = [2, 2]
block_type = "C"  # identity skips; the projection at the width change is IDInit's "main stem"
epochs = 10
batch_size = 32
lrs = [0.01, 0.03, 0.1, 0.3]  # ascending; the same grid for every scheme
momentum = 0.9
weight_decay = 0.0001
val_fraction = 0.2
search_seeds = [0, 1]
seeds = [0, 1, 2, 3, 4]
acc_margin = 0.02  # comparable: IDInit at most 2 points below each baseline (paper gaps are at most 0.2 points)
dead_seeds = [0, 1, 2]
dead_conv_widths = [8, 16]  # claim 1 is decided on a conv ResNet (Table 4 ablates the conv IDIC / IDIZC)
dead_margin = 0.05  # IDIZ removes at least 5 points of untrained parameters vs exact zeros
dead_zero_min = 0.10  # exact zeros with zero padding leave at least 10 percent untrained (Fig. 5 reports over half)
dead_idiz_max = 0.01  # full IDInit: at most 1% untrained (Fig. 5: "nearly none")

# %%
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn as nn
from tqdm import tqdm

from initrepro.claims import Check, StageRecord
from initrepro.data import TensorData, load_dataset
from initrepro.init.idinit import channel_identity_, idinit_
from initrepro.models.ensemble import Ensemble
from initrepro.models.resnet import resnet
from initrepro.plotting import subplots
from initrepro.seeding import shift
from initrepro.training import TrainConfig, train
from initrepro.training_dynamics import deep_linear_descent, unchanged_fraction, update_rank
from initrepro.verdicts import compare, positive_control, select_lr

if threads:
    torch.set_num_threads(threads)
seed, rank_seeds, search_seeds, seeds, dead_seeds = (shift(s, seed_set) for s in
                                                      (seed, rank_seeds, search_seeds, seeds, dead_seeds))
torch.manual_seed(seed)
record = StageRecord("idinit", profile, seed=seed, output_root=output_root, seed_set=seed_set)
CHANCE = 0.1  # 10 classes

# %% [markdown]
# ## Claim 2: momentum and the identity start of a deep linear net

# %%
gen = torch.Generator().manual_seed(seed)
x_lin = torch.randn(lin_sets, lin_samples, lin_dim, generator=gen, dtype=torch.float64)
LIN_ARMS = {"GD": dict(momentum=0.0), f"GD + momentum {lin_momentum:g}": dict(momentum=lin_momentum),
            f"SGD batch {lin_batch}": dict(momentum=0.0, batch_size=lin_batch, generator=gen)}
lin_losses = {arm: deep_linear_descent(x_lin, -x_lin, lin_steps, lin_lr, **kw).numpy()
              for arm, kw in tqdm(LIN_ARMS.items(), desc="deep linear")}
lin_final = {arm: l[:, -1] for arm, l in lin_losses.items()}
print({a: v.tolist() for a, v in lin_final.items()})

# %%
fig, ax = subplots(1, 1, figsize=(6, 3.8))
for arm, l in lin_losses.items():
    for i, row in enumerate(l):
        ax.plot(np.maximum(row, 1e-20), color=sns.color_palette()[list(LIN_ARMS).index(arm)], alpha=0.8,
                label=arm if i == 0 else None)
ax.set(yscale="log", xlabel="step", ylabel="full-data loss 0.5 E||Wx - y||^2",
       title=f"3-layer linear net from I, target -I (d={lin_dim}, lr {lin_lr:g})")
ax.legend()
lin_path = record.figure(fig, "linear_momentum.png")

# %%
gd, gdm, sgd = (lin_final[a] for a in LIN_ARMS)
record.claim(
    "idinit.momentum_converges",
    checks=[Check("GD (no momentum): smallest final loss over data sets", gd.min(), ">=", stall_loss_min,
                  note="stalled at the zero-product saddle (loss d/2)"),
            Check("GD with momentum: largest final loss over data sets", gdm.max(), "<=", converged_loss_max)],
    figures=[lin_path],
    reason=(f"{lin_sets} data sets of {lin_samples} Gaussian samples, {lin_steps} steps at lr {lin_lr:g}: "
            f"GD ends at {gd.min():.3g}..{gd.max():.3g} (saddle loss {lin_dim / 2:g}), GD + momentum at "
            f"{gdm.max():.2g} or less; momentum-free SGD with batch {lin_batch} (context) ends at "
            f"{sgd.min():.3g}..{sgd.max():.3g}."),
    measured={"final_loss": {a: v for a, v in lin_final.items()}},
)

# %% [markdown]
# ## Claim 3: rank of the weight change behind a widening layer

# %%
train_set, test_set = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test)
flat64 = TensorData(train_set.x.flatten(1).double(), train_set.y, train_set.num_classes, train_set.name)
test64 = TensorData(test_set.x.flatten(1).double(), test_set.y, test_set.num_classes, test_set.name)
d0 = flat64.x.shape[1]
data_rank = int(torch.linalg.matrix_rank(flat64.x))
RANK_ARMS = {"padded identity (IDI)": lambda w, g: idinit_(w),
             f"loose IDI (std {rank_loose_std:g})": lambda w, g: idinit_(w, loose_std=rank_loose_std, generator=g),
             "zero-padded identity": lambda w, g: channel_identity_(w)}


def rank_mlp(fill, run_seed):
    sizes = [d0] + list(rank_hidden) + [flat64.num_classes]
    layers = [nn.Linear(a, b, dtype=torch.float64) for a, b in zip(sizes[:-1], sizes[1:])]
    g = torch.Generator().manual_seed(run_seed)
    for layer in layers:
        fill(layer.weight, g)
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*[m for layer in layers for m in (layer, nn.ReLU())][:-1])


ranks, rank_acc, rank_sv = {arm: [] for arm in RANK_ARMS}, {arm: [] for arm in RANK_ARMS}, {}
key = f"{2 * rank_layer}.weight"
for s in tqdm(rank_seeds, desc="rank"):
    ens = Ensemble([rank_mlp(fill, s) for fill in RANK_ARMS.values()])
    w0 = ens.stacked[ens.names.index(key)].detach().clone()
    steps_per_epoch = -(-len(flat64) // rank_batch)
    cfg = TrainConfig(epochs=-(-rank_steps // steps_per_epoch), batch_size=rank_batch, lr=rank_lr,
                      momentum=momentum, max_steps=rank_steps, seed=s)
    hist = train(ens, flat64, test64, cfg, progress=False)
    w = ens.stacked[ens.names.index(key)].detach()
    for i, arm in enumerate(RANK_ARMS):
        ranks[arm].append(update_rank(w[i], w0[i], rank_rtol))
        rank_acc[arm].append(hist.final_test_acc[i])
        rank_sv.setdefault(arm, torch.linalg.svdvals(w[i] - w0[i]).numpy())
print("rank(W3 - W3_init):", ranks, "accuracy:", rank_acc)

# %%
fig, ax = subplots(1, 1, figsize=(6, 3.8))
for arm, sv in rank_sv.items():
    ax.plot(np.arange(1, len(sv) + 1), np.maximum(sv / sv[0], 1e-18), label=f"{arm}: rank {ranks[arm][0]}")
ax.axvline(d0, color="k", ls=":", label=f"input dimension D_0 = {d0}")
ax.axhline(rank_rtol, color="grey", ls="--", label=f"rank tolerance {rank_rtol:g}")
ax.set(yscale="log", xlabel="index", ylabel="singular value / largest",
       title=f"W{rank_layer + 1} - W{rank_layer + 1}(init) after {rank_steps} steps (first seed)")
ax.legend(fontsize=8)
rank_path = record.figure(fig, "update_rank.png")

# %%
padded, zero_padded = ranks["padded identity (IDI)"], ranks["zero-padded identity"]
record.claim(
    "idinit.rank_constraint",
    checks=[Check("padded identity: smallest rank(W3 - W3_init) over seeds", min(padded), ">", d0,
                  note="Thm 3.1 / Fig. 4b: padded identity breaks the rank <= D_0 constraint"),
            Check("zero-padded identity: largest rank(W3 - W3_init) over seeds", max(zero_padded), "<=", d0,
                  note="the constraint that zero padding is said to obey")],
    figures=[rank_path],
    reason=(f"MLP {d0}-{'-'.join(map(str, rank_hidden))}-10 on {dataset} (data rank {data_rank}), "
            f"{rank_steps} steps, momentum {momentum:g}, float64, rank tolerance {rank_rtol:g}: "
            + "; ".join(f"{arm} rank {r} (test accuracy {np.mean(rank_acc[arm]):.3f})" for arm, r in ranks.items())
            + "."),
    measured={"ranks": ranks, "input_dim": d0, "data_rank": data_rank, "test_acc": rank_acc},
)

# %% [markdown]
# ## Claim 4: accuracy against Fixup, ZerO and Kaiming (no batch norm)
# All schemes train the same ResNet in one vectorized ensemble per lr and data order. The lr
# of each scheme is chosen on a held-out part of the training set (`select_lr`).

# %%
SCHEMES = {"IDInit": ("idinit", {}), "Fixup": ("fixup", {}), "ZerO": ("zero", {}), "Kaiming": ("he", {})}
order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(seed))
n_val = int(len(train_set) * val_fraction)
search_val, search_train = (TensorData(train_set.x[i], train_set.y[i], train_set.num_classes, train_set.name)
                            for i in (order[:n_val], order[n_val:]))


def fit(arms, lr, run_seed, fit_set, eval_set):
    """Train ``arms`` (name -> (init, options)) side by side; each arm's test accuracy per epoch
    ([nan] for an arm that diverged)."""
    ens = Ensemble([resnet(kind, fit_set.input_shape, fit_set.num_classes, widths=widths, blocks=blocks,
                           block_type=block_type, init=init, init_options=opts, seed=run_seed)
                    for init, opts in arms.values()])
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                      seed=run_seed)
    hist = train(ens, fit_set, eval_set, cfg, progress=False)
    if hist.diverged and len(arms) > 1:  # one diverging member ends the shared run: train each alone
        return [c for a in arms for c in fit({a: arms[a]}, lr, run_seed, fit_set, eval_set)]
    return [[float("nan")]] if hist.diverged else [[acc[i] for acc in hist.test_acc] for i in range(len(arms))]


search = np.array([[[c[-1] for c in fit(SCHEMES, lr, s, search_train, search_val)] for s in search_seeds]
                   for lr in tqdm(lrs, desc="lr search")])  # (lrs, seeds, schemes)
best_lr, lr_info = {}, {}
for j, arm in enumerate(SCHEMES):
    best_lr[arm], lr_info[arm] = select_lr(lrs, search[:, :, j], CHANCE)
print("chosen lr:", best_lr)

final, curves = {arm: [] for arm in SCHEMES}, []
for s in tqdm(seeds, desc="seeds"):
    for lr in sorted(set(best_lr.values())):
        arms = {a: SCHEMES[a] for a in SCHEMES if best_lr[a] == lr}
        for arm, curve in zip(arms, fit(arms, lr, s, train_set, test_set)):
            final[arm].append(curve[-1])
            curves += [{"scheme": arm, "seed": s, "epoch": e + 1, "test accuracy": a} for e, a in enumerate(curve)]
print(pd.DataFrame(final).describe().loc[["mean", "std", "min"]])

# %%
fig, axes = subplots(1, 2, figsize=(11, 3.8))
sns.lineplot(pd.DataFrame(curves), x="epoch", y="test accuracy", hue="scheme", units="seed", estimator=None,
             ax=axes[0], alpha=0.7)
axes[0].set(title=f"{dataset}, {kind} ResNet {widths} x {blocks}, no BN (one line per seed)", ylim=(0, 1))
sns.stripplot(pd.DataFrame(final), ax=axes[1])
axes[1].set(ylabel="final test accuracy", title=f"{len(seeds)} seeds; lr " +
            ", ".join(f"{a} {best_lr[a]:g}" for a in SCHEMES))
acc_path = record.figure(fig, "accuracy.png")

# %%
baselines = [a for a in SCHEMES if a != "IDInit"]
record.claim(
    "idinit.comparable_accuracy",
    checks=[ev for b in baselines for ev in (positive_control(b, final[b], CHANCE),
                                             compare("IDInit", final["IDInit"], b, final[b], margin=acc_margin,
                                                     chance=CHANCE))],
    figures=[acc_path],
    reason=(f"{dataset}, {kind} ResNet widths {widths} x blocks {blocks} (type {block_type}), no BN, {epochs} epochs, "
            f"lr per scheme from {lrs} on a {val_fraction:g} validation split: "
            + "; ".join(f"{a} {np.mean(final[a]):.3f} (lr {best_lr[a]:g})" for a in SCHEMES) + "."),
    measured={"final_test_acc": final, "best_lr": best_lr, "lr_search": {a: lr_info[a] for a in SCHEMES}},
)

# %% [markdown]
# ## Claim 1: parameters that never train (Table 4 ablation, Fig. 5)
# The four arms of Table 4 on the same net: channel-maintain identity (zero-pads extra
# channels) or patch-maintain IDIC, and exact zeros or IDIZ (+-eps) in the last branch layers
# and the classifier. IDInit nets have no Fixup scalars and no weight decay here, so a
# parameter is unchanged exactly when it never received a gradient. The claim is decided on a
# conv ResNet (IDIC and IDIZC are conv rules; the paper's nets zero-pad channels); the fc
# ResNet of claim 4 is measured alongside as context.

# %%
ABLATION = {"base (channel, zeros)": ("idinit", {"conv": "channel", "eps": 0.0}),
            "+IDIC (patch, zeros)": ("idinit", {"conv": "patch", "eps": 0.0}),
            "+IDIZC (channel, eps)": ("idinit", {"conv": "channel"}),
            "IDInit (patch, eps)": ("idinit", {"conv": "patch"})}
SCALARS = ("bias1a", "bias1b", "bias2a", "bias2b", "branch_scale", "stem_bias", "head_bias")
DEAD_NETS = {"conv": dead_conv_widths, "fc": widths}  # conv decides; the fc ResNet of claim 4 is context
dead = {net: {arm: [] for arm in ABLATION} for net in DEAD_NETS}
dead_acc = {net: {arm: [] for arm in ABLATION} for net in DEAD_NETS}
for net, s in tqdm([(n, s) for n in DEAD_NETS for s in dead_seeds], desc="dead parameters"):
    ens = Ensemble([resnet(net, train_set.input_shape, train_set.num_classes, widths=DEAD_NETS[net], blocks=blocks,
                           block_type=block_type, init=i, init_options=o, seed=s) for i, o in ABLATION.values()])
    trained = [k for k, n in enumerate(ens.names) if n.rsplit(".", 1)[-1] not in SCALARS]
    before = [ens.stacked[k].detach().clone() for k in trained]
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=best_lr["IDInit"], momentum=momentum, seed=s)
    hist = train(ens, train_set, test_set, cfg, params=[ens.stacked[k] for k in trained], progress=False)
    frac = unchanged_fraction(before, [ens.stacked[k].detach() for k in trained]).tolist()
    for i, arm in enumerate(ABLATION):
        dead[net][arm].append(frac[i])
        dead_acc[net][arm].append(float("nan") if hist.diverged else hist.test_acc[-1][i])
for net in DEAD_NETS:
    print(net, pd.DataFrame(dead[net]).describe().loc[["mean", "min", "max"]], pd.DataFrame(dead_acc[net]).mean())

# %%
fig, axes = subplots(1, 2, figsize=(11, 3.8))
frame = pd.concat([pd.DataFrame(dead[net]).melt(var_name="arm", value_name="fraction").assign(net=net)
                   for net in DEAD_NETS])
sns.barplot(frame, x="arm", y="fraction", hue="net", ax=axes[0], errorbar=None)
axes[0].set(ylabel="fraction of parameters never changed", xlabel="", title=f"after {epochs} epochs, lr {best_lr['IDInit']:g}")
acc_frame = pd.concat([pd.DataFrame(dead_acc[net]).melt(var_name="arm", value_name="accuracy").assign(net=net)
                       for net in DEAD_NETS])
sns.barplot(acc_frame, x="arm", y="accuracy", hue="net", ax=axes[1], errorbar=None)
axes[1].set(ylabel="final test accuracy", xlabel="", ylim=(0, 1), title="Table 4 ablation on " + dataset)
for ax in axes:
    ax.tick_params(axis="x", labelsize=7, rotation=15)
dead_path = record.figure(fig, "dead_parameters.png")

# %%
base, fixed, full = (dead["conv"][a] for a in ("base (channel, zeros)", "+IDIZC (channel, eps)", "IDInit (patch, eps)"))
record.claim(
    "idinit.dead_neurons",
    checks=[Check("conv, exact zeros + zero padding: median fraction never changed", np.median(base), ">=",
                  dead_zero_min),
            Check("conv, IDInit (IDIC + IDIZ): largest fraction never changed", max(full), "<=", dead_idiz_max),
            compare("IDIZ (eps)", fixed, "exact zeros", base, margin=dead_margin, superior=True,
                    higher_is_better=False, unit="(conv, fraction never changed)")],
    figures=[dead_path],
    reason=(f"{dataset}, ResNets with blocks {blocks}, {epochs} epochs at lr {best_lr['IDInit']:g}, no weight decay, "
            f"{len(dead_seeds)} data orders; mean fraction never changed (test accuracy): "
            + " ".join(f"{net} widths {DEAD_NETS[net]}: " + "; ".join(
                f"{a} {np.mean(v):.3f} ({np.mean(dead_acc[net][a]):.3f})" for a, v in dead[net].items()) + "."
                for net in DEAD_NETS)),
    measured={"unchanged_fraction": dead, "test_acc": dead_acc},
)

# %% [markdown]
# ## Out of reach on a CPU

# %%
for claim_id, why in {
    "idinit.imagenet": "ImageNet training of ViT-B/32, ResNet-50/152 and SE-ResNet-50 needs GPUs and the ImageNet data.",
    "idinit.bert": "BERT-Base pre-training needs a GPU cluster and a pre-training corpus.",
}.items():
    record.claim(claim_id, skip_reason=why)

# %%
record.write()
print(record.summary())
