# %% [markdown]
# # ZerO: deterministic initialization from zeros, ones and Hadamard matrices
# Zhao, Schafer & Anandkumar, TMLR 2022 (arXiv 2110.12661). Claims: (1) a zero-padded partial
# identity in a widening layer keeps the next layer's update at rank <= its input dimension
# (training degeneracy, Theorem 1), and ZerO's cropped Hadamard matrix lifts that bound;
# (2) ZerO is deterministic: same weights under any seed, bitwise-identical training runs;
# (3) a ZerO ResNet trains on par with Kaiming (He) initialization (conv, and fully connected).
# Library: `initrepro.init.zero` (`zero_hadamard_`, `zero_resnet_`, the `"zero"` ResNet init),
# `initrepro.studies.zero`, `initrepro.models.ensemble`, `initrepro.training`,
# `initrepro.core.verdicts`.

# %% tags=["parameters"]
profile = "smoke"
output_root = "."
seed_set = 0
seed = 0
threads = 1  # the smoke CPU is shared; one thread per process
dataset = "digits"
n_train = None
n_test = None
# Claim 1: the notebook's MLP scaled to 8x8 digits (784-784-n_h-n_h-10 -> 64-64-128-128-10)
rank_dataset = "digits"
mlp_widths = [64, 64, 128, 128, 10]
rank_steps = 800
rank_every = 50
rank_lr = 0.1  # plain SGD, batch 64, as in the authors' notebook
rank_batch = 64
rank_tol = 1.0e-4  # the notebook's matrix_rank tolerance
# Claim 2: two training runs of the same ZerO ResNet in this process
det_steps = 100
# Claim 3: ZerO vs Kaiming ResNets (the authors' ReLU, gradient 1 at 0, in every arm)
conv_widths = [16, 32]
conv_blocks = [2, 2]
conv_batch_norm = True  # Table 2's ResNet-18 has batch norm
fc_widths = [128]
fc_blocks = [2]
epochs = 8
warmup_epochs = 1.0  # linear per-step warmup (the paper recipe: 10 of 200 epochs on CIFAR-10)
batch_size = 64
lrs = [0.01, 0.03, 0.1]  # the same ascending grid for every arm, picked by verdicts.select_lr (extended at an end)
momentum = 0.9
weight_decay = 1.0e-4
milestones = [4, 6]
val_fraction = 0.2
search_seeds = [100, 101, 102]  # lr search: every arm x lr x these seeds, scored on the held-out part
seeds = [0, 1, 2, 3, 4]  # ZerO draws no random numbers: these seeds vary the data order only
margin = 0.03  # non-inferiority margin in accuracy ("on par")
paper_precision = "Table 2 values not available to us"
# zero.deep_no_bn (reduced-scale proxy): fc ResNets without batch norm, ZerO vs Fixup (Kaiming as context)
deep_width = 64
deep_depths = [16, 32, 64]
deep_epochs = 4
deep_batch_size = 128
deep_lrs = [0.001, 0.003, 0.01, 0.03, 0.1]
deep_seeds = [0, 1, 2, 3, 4]
deep_margin = 0.03
# zero.low_rank, on the conv ResNets of claim 3: stable rank of W - W_init, accuracy under magnitude pruning
rank_ratio = 1.25  # Kaiming's stable rank must exceed ZerO's by this factor (superiority on the log scale)
prune_fraction = 0.7  # the registered pruning level (per layer, every conv but the classifier)
prune_fractions = [0.3, 0.5, 0.7, 0.9]  # for the figure
prune_margin = 0.01  # ZerO must beat Kaiming by more than this after pruning (superiority)

# %%
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from initrepro.core.claims import Check, StageRecord
from initrepro.data import load_dataset
from initrepro.init.zero import zero_hadamard_, zero_resnet_
from initrepro.models.ensemble import Ensemble
from initrepro.models.resnet import resnet
from initrepro.core.plotting import subplots
from initrepro.core.seeding import shift
from initrepro.training import TrainConfig, train
from initrepro.layers import relu_grad_at_zero
from initrepro.core.verdicts import compare, positive_control, seeds_needed
from initrepro.studies.zero import (SCHEMES, branch_weight_names, fallback_lr, init_widening_mlp_,
                                    prunable_weight_names, pruned_accuracy, search_lrs, split, train_runs,
                                    update_ranks, update_stable_ranks, widening_mlp)

if threads:
    torch.set_num_threads(threads)
seed, seeds = shift(seed, seed_set), shift(seeds, seed_set)
search_seeds, deep_seeds = shift(search_seeds, seed_set), shift(deep_seeds, seed_set)
torch.manual_seed(seed)
record = StageRecord("zero_hadamard", profile, seed=seed, output_root=output_root, seed_set=seed_set)
train_set, test_set = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test)
chance = 1.0 / train_set.num_classes
rank_train, rank_test = (train_set, test_set) if rank_dataset == dataset else load_dataset(rank_dataset, seed=seed)
LEARNED_ACC = chance + 0.3  # precondition of claim 1: every MLP arm learned (well above chance)

# %% [markdown]
# ## Claim 1: training degeneracy of the partial identity, lifted by the Hadamard matrix
# Three copies of one MLP (partial identity, ZerO, Kaiming) train in one vectorized pass on the
# same batches; every `rank_every` steps we take rank(W - W_init) of the layer after the
# widening one (the notebook's rank(W3 - I)).

# %%
widen = next(i for i in range(len(mlp_widths) - 1) if mlp_widths[i + 1] > mlp_widths[i])
Q, P = mlp_widths[widen], mlp_widths[widen + 1]
arms = list(SCHEMES)  # partial_identity, zero, kaiming
init_gen = torch.Generator().manual_seed(seed)
ensemble = Ensemble([init_widening_mlp_(widening_mlp(mlp_widths), a, init_gen) for a in arms])
# Sequential: Flatten, then Linear k at index 2k + 1
widen_idx, next_idx = (ensemble.names.index(f"{2 * k + 1}.weight") for k in (widen, widen + 1))
w_next0 = ensemble.stacked[next_idx].detach().clone()
rank_log = [(0, update_ranks(w_next0, w_next0, rank_tol))]


def log_ranks(model, step):
    if step % rank_every == 0:
        rank_log.append((step, update_ranks(model.stacked[next_idx], w_next0, rank_tol)))


rank_cfg = TrainConfig(epochs=rank_steps, batch_size=rank_batch, lr=rank_lr, momentum=0.0, seed=seed,
                       max_steps=rank_steps)
rank_hist = train(ensemble, rank_train, rank_test, rank_cfg, after_step=log_ranks, desc="rank")
ranks = pd.DataFrame([{"step": s, "arm": a, "rank": r} for s, rs in rank_log for a, r in zip(arms, rs)])
final_rank = dict(zip(arms, rank_log[-1][1]))
max_rank = ranks.groupby("arm")["rank"].max().to_dict()
mlp_acc = dict(zip(arms, rank_hist.test_acc[-1]))
w_widen = ensemble.stacked[widen_idx][arms.index("partial_identity")].detach()
padded_rows_max = float(w_widen[Q:].abs().max())
dead_cols_max = float((ensemble.stacked[next_idx].detach() - w_next0)[arms.index("partial_identity")][:, Q:].abs().max())
print("final ranks:", final_rank, "test acc:", mlp_acc, "padded rows:", padded_rows_max, "dead cols:", dead_cols_max)

# %%
fig, ax = subplots(1, 1, figsize=(6, 3.8))
sns.lineplot(ranks, x="step", y="rank", hue="arm", marker=".", ax=ax)
ax.axhline(Q, color="k", ls="--", lw=1, label=f"input dimension Q = {Q}")
ax.set(title=f"rank(W - W_init) after the widening layer {Q} -> {P} ({rank_dataset})", ylabel="rank (tol 1e-4)")
ax.legend()
rank_path = record.figure(fig, "update_rank.png")

# %%
record.claim(
    "zero.training_degeneracy",
    checks=[Check(f"min test accuracy over the MLP arms after {rank_steps} steps", min(mlp_acc.values()), ">=",
                  LEARNED_ACC, precondition=True, note="the nets trained"),
            Check("partial identity: max rank(W - W_init) over training", max_rank["partial_identity"], "<=", Q,
                  note="Theorem 1: at most the input dimension Q"),
            Check("partial identity: max |padded rows of the widening layer|", padded_rows_max, "<=", 0.0,
                  note="never get a gradient (ReLU'(0) = 0)"),
            Check("partial identity: max |update of the columns fed by padded units|", dead_cols_max, "<=", 0.0),
            Check("ZerO: final rank(W - W_init)", final_rank["zero"], ">", Q, note="the Hadamard lifts the bound")],
    figures=[rank_path],
    reason=(f"MLP {mlp_widths}, plain SGD lr {rank_lr:g}, batch {rank_batch}, {rank_steps} steps: final rank of "
            f"the {P}x{P} update: partial identity {final_rank['partial_identity']}, ZerO {final_rank['zero']}, "
            f"Kaiming {final_rank['kaiming']} (Q = {Q}); test accuracy "
            + ", ".join(f"{a} {v:.3f}" for a, v in mlp_acc.items()) + "."),
    measured={"final_rank": final_rank, "max_rank": max_rank, "Q": Q, "P": P, "test_acc": mlp_acc,
              "rank_log": {a: [int(r[i]) for _, r in rank_log] for i, a in enumerate(arms)},
              "rank_steps": [s for s, _ in rank_log]},
)

# %% [markdown]
# ## Claim 2: determinism
# In one process: the initializer leaves torch's global RNG untouched and gives the same
# weights under different global seeds; two ZerO ResNets trained on the same data order end
# bitwise equal. Negative control: Kaiming nets under two seeds differ.

# %%
def fc_net(init, run_seed):
    return resnet("fc", train_set.input_shape, train_set.num_classes, widths=fc_widths, blocks=fc_blocks,
                  init=init, seed=run_seed)


def rng_untouched(fn):
    state = torch.get_rng_state()
    fn()
    return bool(torch.equal(state, torch.get_rng_state()))


def max_param_diff(a, b):
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


net_a = fc_net("he", seed)
rng_ok = rng_untouched(lambda: zero_resnet_(net_a)) and rng_untouched(lambda: zero_hadamard_(torch.empty(P, Q)))
torch.manual_seed(seed + 1)
net_b = zero_resnet_(fc_net("he", seed + 1))
init_diff = max_param_diff(net_a, net_b)
kaiming_diff = max_param_diff(fc_net("he", seed), fc_net("he", seed + 1))
det_cfg = TrainConfig(epochs=det_steps, batch_size=batch_size, lr=lrs[0], momentum=momentum,
                      weight_decay=weight_decay, seed=seed, max_steps=det_steps)
det_hist = [train(net, train_set, test_set, det_cfg, desc="determinism") for net in (net_a, net_b)]
trained_diff = max_param_diff(net_a, net_b)
print("RNG untouched:", rng_ok, "init diff:", init_diff, "trained diff:", trained_diff, "Kaiming diff:", kaiming_diff)

# %%
record.claim(
    "zero.deterministic",
    checks=[Check("Kaiming nets under two seeds: max |weight difference|", kaiming_diff, ">", 0.0,
                  precondition=True, note="negative control: the comparison can see a difference"),
            Check("ZerO init leaves torch's global RNG state unchanged", int(rng_ok), ">=", 1),
            Check("ZerO init under two global seeds: max |weight difference|", init_diff, "<=", 0.0),
            Check(f"ZerO after {det_steps} SGD steps, same data order: max |weight difference|", trained_diff,
                  "<=", 0.0, note="bitwise equal, same process")],
    reason=(f"fc ResNet widths {fc_widths} x blocks {fc_blocks}; test accuracy of the two ZerO runs "
            f"{det_hist[0].final_test_acc:.4f} and {det_hist[1].final_test_acc:.4f}; Kaiming seeds differ by up "
            f"to {kaiming_diff:.3g}."),
    measured={"rng_untouched": rng_ok, "init_diff": init_diff, "trained_diff": trained_diff,
              "kaiming_diff": kaiming_diff, "test_acc": [h.final_test_acc for h in det_hist]},
)

# %% [markdown]
# ## Claim 3: ZerO vs Kaiming ResNets
# Both arms use the authors' ReLU (`relu_grad_at_zero`: the gradient passes where the input is
# exactly 0), so ZerO's exactly-zero channels train, and the same activation in the baseline.
# The conv net has batch norm (Table 2's ResNet-18 does) and the recipe's linear lr warmup.
# Every arm picks its lr with `verdicts.select_lr` on a held-out part of the training set
# (every lr x search seed, one vectorized pass), then every seed trains at that lr on the full
# training set: ZerO's seeds vary the data order only, Kaiming's the weights too. All members
# of one pass train in one `vmap`, each on its own data order (`initrepro.studies.zero`).

# %%
ARMS = {"ZerO": "zero", "Kaiming": "he"}
ARCHS = {"conv": (conv_widths, conv_blocks, conv_batch_norm), "fc": (fc_widths, fc_blocks, False)}
search_train, search_val = split(train_set, val_fraction, seed)
n_test = len(test_set)
CFG = dict(epochs=epochs, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay,
           warmup_epochs=warmup_epochs, milestones=tuple(milestones))


def make_net(kind):
    widths, blocks, bn = ARCHS[kind]
    return lambda arm, run_seed: resnet(kind, train_set.input_shape, train_set.num_classes, widths=widths,
                                        blocks=blocks, batch_norm=bn, block_type="C", init=ARMS[arm], seed=run_seed,
                                        activation=relu_grad_at_zero)


chosen, final, trained = {}, {}, {}
for kind in ARCHS:
    bn = ARCHS[kind][2]
    chosen[kind] = search_lrs(make_net(kind), list(ARMS), lrs, search_seeds, search_train, search_val, chance,
                              running_stats=bn, **CFG)
    runs = [(a, fallback_lr(chosen[kind][a]), s) for a in ARMS for s in seeds]
    acc, ens, hist, initial = train_runs(make_net(kind), runs, train_set, test_set, running_stats=bn, **CFG)
    final[kind] = {a: [acc[i] for i, r in enumerate(runs) if r[0] == a] for a in ARMS}
    trained[kind] = (runs, ens, hist, initial)
    print(kind, {a: c.evidence.summary for a, c in chosen[kind].items()}, {a: np.round(v, 3).tolist()
                                                                          for a, v in final[kind].items()})

# %%
curves = pd.DataFrame([{"net": k, "arm": r[0], "seed": r[2], "epoch": e, "test accuracy": accs[i]}
                       for k, (runs, _, hist, _) in trained.items() for e, accs in zip(hist.epoch, hist.acc["test"])
                       for i, r in enumerate(runs)])
fig, axes = subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, kind in zip(axes, ARCHS):
    sns.lineplot(curves[curves.net == kind], x="epoch", y="test accuracy", hue="arm", units="seed",
                 estimator=None, ax=ax, alpha=0.8)
    ax.axhline(chance, color="gray", ls=":", lw=1)
    ax.set(title=f"{kind} ResNet {ARCHS[kind][0]} x {ARCHS[kind][1]}{' + BN' if ARCHS[kind][2] else ''}, lr ZerO "
                 f"{chosen[kind]['ZerO'].lr} / Kaiming {chosen[kind]['Kaiming'].lr}", ylim=(0, 1))
accuracy_path = record.figure(fig, "accuracy.png")

# %%
for kind, claim_id in (("conv", "zero.resnet_accuracy"), ("fc", "zero.resnet_accuracy_fc")):
    z, k = final[kind]["ZerO"], final[kind]["Kaiming"]
    pilot_sd = float(np.std(np.subtract(z, k), ddof=1))
    context = (f"{dataset} ({n_test} test images), {kind} ResNet widths {ARCHS[kind][0]} x blocks {ARCHS[kind][1]}"
               f"{' with batch norm' if ARCHS[kind][2] else ' without batch norm'}, the authors' ReLU (gradient 1 at 0)"
               f" in both arms, {epochs} epochs, warmup {warmup_epochs:g}; test accuracy ZerO "
               + ", ".join(f"{v:.3f}" for v in z) + "; Kaiming " + ", ".join(f"{v:.3f}" for v in k)
               + f" (seeds {seeds}; ZerO's vary the data order only); sd of the paired difference {pilot_sd:.3g}")
    record.claim(claim_id,
                 [chosen[kind]["ZerO"].evidence, chosen[kind]["Kaiming"].evidence,
                  positive_control("Kaiming", k, chance),
                  compare("ZerO", z, "Kaiming", k, margin=margin, chance=chance, n_test=n_test, bounds=(0, 1),
                          paper_precision=paper_precision)],
                 figures=[accuracy_path], reason=context + ".",
                 measured={"final_test_acc": final[kind], "lr": {a: c.lr for a, c in chosen[kind].items()},
                           "lr_search": {a: c.evidence.measured for a, c in chosen[kind].items()},
                           "sd_paired_diff": pilot_sd})

# %% [markdown]
# ## zero.low_rank (reduced scale): on the conv ResNets of claim 3
# Stable rank ||A||_F^2 / ||A||_2^2 of the update A = W - W_init of every residual branch conv
# (averaged over layers, per run), and test accuracy after magnitude pruning of every conv (per
# layer; the classifier is kept), ZerO against Kaiming paired by seed.

# %%
runs, ens, _, initial = trained["conv"]
arm_of = np.array([r[0] for r in runs])
sr = update_stable_ranks(ens, initial, branch_weight_names(ens)).mean(axis=1)
stable_ranks = {a: sr[arm_of == a].tolist() for a in ARMS}
names = prunable_weight_names(ens)
pruned = {f: pruned_accuracy(ens, test_set, names, f) for f in sorted(set(prune_fractions) | {prune_fraction})}
pruned_acc = {f: {a: [v[i] for i in range(len(runs)) if arm_of[i] == a] for a in ARMS} for f, v in pruned.items()}
print("stable rank of W - W_init:", {a: np.round(v, 2).tolist() for a, v in stable_ranks.items()})
print("accuracy after pruning:", {f: {a: np.round(v, 3).tolist() for a, v in d.items()} for f, d in pruned_acc.items()})

# %%
fig, axes = subplots(1, 2, figsize=(11, 3.8))
sns.stripplot(pd.DataFrame([{"arm": a, "stable rank": v} for a, vs in stable_ranks.items() for v in vs]),
              x="arm", y="stable rank", ax=axes[0])
axes[0].set(title="mean stable rank of W - W_init (branch convs)")
prune_df = pd.DataFrame([{"pruned fraction": f, "arm": a, "test accuracy": v}
                         for f, d in pruned_acc.items() for a, vs in d.items() for v in vs])
sns.lineplot(prune_df, x="pruned fraction", y="test accuracy", hue="arm", marker="o", ax=axes[1])
axes[1].axvline(prune_fraction, color="k", ls="--", lw=1)
axes[1].axhline(chance, color="gray", ls=":", lw=1)
axes[1].set(title="magnitude pruning of every conv (per layer)", ylim=(0, 1))
low_rank_path = record.figure(fig, "low_rank.png")

# %%
log_sr = {a: np.log(v).tolist() for a, v in stable_ranks.items()}
record.claim(
    "zero.low_rank",
    [positive_control("Kaiming", final["conv"]["Kaiming"], chance),
     compare("ZerO", log_sr["ZerO"], "Kaiming", log_sr["Kaiming"], margin=float(np.log(rank_ratio)), superior=True,
             higher_is_better=False, unit="(log stable rank of W - W_init)",
             paper_precision="Figs. 5-6 numbers not available to us"),
     compare("ZerO", pruned_acc[prune_fraction]["ZerO"], "Kaiming", pruned_acc[prune_fraction]["Kaiming"],
             margin=prune_margin, superior=True, chance=chance, n_test=n_test, bounds=(0, 1),
             unit=f"(accuracy, {prune_fraction:g} of every conv pruned)",
             paper_precision="Figs. 5-6 numbers not available to us")],
    figures=[low_rank_path],
    reason=(f"Reduced-scale proxy on the conv ResNets of zero.resnet_accuracy: mean stable rank of W - W_init over "
            f"the branch convs ZerO " + ", ".join(f"{v:.2f}" for v in stable_ranks["ZerO"]) + "; Kaiming "
            + ", ".join(f"{v:.2f}" for v in stable_ranks["Kaiming"]) + f" (needs Kaiming/ZerO > {rank_ratio:g}); "
            f"accuracy with {prune_fraction:g} of every conv pruned: ZerO "
            + ", ".join(f"{v:.3f}" for v in pruned_acc[prune_fraction]["ZerO"]) + "; Kaiming "
            + ", ".join(f"{v:.3f}" for v in pruned_acc[prune_fraction]["Kaiming"]) + "."),
    measured={"stable_rank": stable_ranks, "pruned_acc": {str(f): d for f, d in pruned_acc.items()}},
)

# %% [markdown]
# ## zero.deep_no_bn (reduced-scale proxy): depth sweep of narrow fc ResNets without BN
# ZerO, Fixup and Kaiming on the same fc ResNet (width `deep_width`, no batch norm, the authors'
# ReLU everywhere), each arm with its own lr search at every depth. The claim is decided
# against Fixup, the no-BN reference for deep residual nets: ZerO on par with it at every
# depth. Kaiming without BN is context (it is expected to blow up with depth).

# %%
DEEP_ARMS = {"ZerO": "zero", "Fixup": "fixup", "Kaiming": "he"}
DEEP_CFG = dict(CFG, epochs=deep_epochs, batch_size=deep_batch_size, milestones=())
deep_choice, deep_final = {}, {}
for depth in deep_depths:
    def make_deep(arm, run_seed, depth=depth):
        return resnet("fc", train_set.input_shape, train_set.num_classes, widths=deep_width, blocks=depth,
                      init=DEEP_ARMS[arm], seed=run_seed, activation=relu_grad_at_zero,
                      block_type="C")

    deep_choice[depth] = search_lrs(make_deep, list(DEEP_ARMS), deep_lrs, search_seeds, search_train, search_val,
                                    chance, **DEEP_CFG)
    # Kaiming is context: where every lr collapsed in its search it is not trained again.
    runs = [(a, fallback_lr(deep_choice[depth][a]), s) for a in DEEP_ARMS for s in deep_seeds
            if a != "Kaiming" or deep_choice[depth][a].lr is not None]
    acc, *_ = train_runs(make_deep, runs, train_set, test_set, **DEEP_CFG)
    deep_final[depth] = {a: [acc[i] for i, r in enumerate(runs) if r[0] == a] or [float("nan")] * len(deep_seeds)
                         for a in DEEP_ARMS}
    print(depth, {a: c.lr for a, c in deep_choice[depth].items()},
          {a: np.round(v, 3).tolist() for a, v in deep_final[depth].items()})

# %%
deep_df = pd.DataFrame([{"blocks": d, "arm": a, "test accuracy": (v if np.isfinite(v) else chance)}
                        for d, f in deep_final.items() for a, vs in f.items() for v in vs])
fig, ax = subplots(1, 1, figsize=(6, 3.8))
sns.lineplot(deep_df, x="blocks", y="test accuracy", hue="arm", marker="o", ax=ax)
ax.axhline(chance, color="gray", ls=":", lw=1)
ax.set(xscale="log", title=f"fc ResNet width {deep_width}, no BN, {dataset} (diverged = chance)", ylim=(0, 1))
deep_path = record.figure(fig, "deep_no_bn.png")

# %%
deep_evidence = []
for depth in deep_depths:
    z, f = deep_final[depth]["ZerO"], deep_final[depth]["Fixup"]
    deep_evidence += [deep_choice[depth]["ZerO"].evidence, deep_choice[depth]["Fixup"].evidence,
                      positive_control(f"Fixup {depth} blocks", f, chance),
                      compare(f"ZerO {depth} blocks", z, f"Fixup {depth} blocks", f, margin=deep_margin, chance=chance,
                              n_test=n_test, bounds=(0, 1), paper_precision="Fig. 4 numbers not available to us")]
record.claim(
    "zero.deep_no_bn", deep_evidence, figures=[deep_path],
    reason=("Reduced-scale proxy (the paper's depths and data are out of a CPU's reach): fc ResNets of width "
            f"{deep_width} without batch norm on {dataset}, {deep_epochs} epochs; test accuracy per depth "
            + "; ".join(f"{d} blocks: " + ", ".join(f"{a} {np.nanmedian(v) if np.isfinite(v).any() else float('nan'):.3f}"
                                                    f" (lr {deep_choice[d][a].lr})" for a, v in deep_final[d].items())
                        for d in deep_depths) + " (medians; lr None: every lr of the grid collapsed in the search)."),
    measured={"final_test_acc": {str(d): f for d, f in deep_final.items()},
              "lr": {str(d): {a: c.lr for a, c in ch.items()} for d, ch in deep_choice.items()},
              "lr_search": {str(d): {a: c.evidence.measured for a, c in ch.items()} for d, ch in deep_choice.items()}},
)

# %% [markdown]
# ## Out of reach on a CPU

# %%
SKIPPED = {
    "zero.imagenet_resnet50": "ImageNet ResNet-50 for 90 epochs needs a GPU cluster; no ImageNet data here.",
    "zero.transformer": "WikiText-2 Transformers (2-20 layers) need a GPU and the WikiText-2 data.",
}
for claim_id, why in SKIPPED.items():
    record.claim(claim_id, skip_reason=why)

# %%
record.write()
print(record.summary())
