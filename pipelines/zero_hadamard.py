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
device = "cpu"  # models and batches move here ("cuda" on a GPU)
replot = False  # True: redraw the figures from the committed measurements (`make figures`)

# %%
import numpy as np
import pandas as pd
import torch

from initrepro.core.claims import Check, StageRecord
from initrepro.core.plotting import arm_points, deciding_checks, interval_panel, scheme_color, subplots
from initrepro.core.seeding import shift
from initrepro.core.stats import mean_ci
from initrepro.core.verdicts import compare, positive_control, with_control
from initrepro.data import load_dataset
from initrepro.init.zero import zero_hadamard_, zero_resnet_
from initrepro.layers import relu_grad_at_zero
from initrepro.models.ensemble import Ensemble
from initrepro.models.resnet import resnet
from initrepro.studies.zero import (SCHEMES, branch_weight_names, fallback_lr, init_widening_mlp_,
                                    max_param_diff, param_diffs, prunable_weight_names, pruned_accuracy,
                                    rng_untouched, search_lrs, split, train_runs, update_ranks,
                                    update_stable_ranks, widening_mlp)
from initrepro.training import TrainConfig, train

if threads:
    torch.set_num_threads(threads)
seed, seeds = shift(seed, seed_set), shift(seeds, seed_set)
search_seeds, deep_seeds = shift(search_seeds, seed_set), shift(deep_seeds, seed_set)
torch.manual_seed(seed)
record = StageRecord("zero_hadamard", profile, seed=seed, output_root=output_root, seed_set=seed_set, replot=replot)
NAMES = {"partial_identity": "partial identity", "zero": "ZerO", "kaiming": "Kaiming"}  # the MLP arms, as figures name them

# %% tags=["compute"]
train_set, test_set = load_dataset(dataset, seed=seed, n_train=n_train, n_test=n_test)
chance = 1.0 / train_set.num_classes
rank_train, rank_test = (train_set, test_set) if rank_dataset == dataset else load_dataset(rank_dataset, seed=seed)
LEARNED_ACC = chance + 0.3  # precondition of claim 1: every MLP arm learned (well above chance)
record.measure("chance", chance)

# %% [markdown]
# ## Claim 1: training degeneracy of the partial identity, lifted by the Hadamard matrix
# Three copies of one MLP (partial identity, ZerO, Kaiming) train in one vectorized pass on the
# same batches; every `rank_every` steps we take rank(W - W_init) of the layer after the
# widening one (the notebook's rank(W3 - I)).

# %% tags=["compute"]
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
    if step % rank_every == 0:  # the ranks on the CPU, whatever the training device
        rank_log.append((step, update_ranks(model.stacked[next_idx].cpu(), w_next0, rank_tol)))


rank_cfg = TrainConfig(epochs=rank_steps, batch_size=rank_batch, lr=rank_lr, momentum=0.0, seed=seed,
                       max_steps=rank_steps, device=device)
rank_hist = train(ensemble, rank_train, rank_test, rank_cfg, after_step=log_ranks, desc="rank")
ranks = pd.DataFrame([{"step": s, "arm": a, "rank": r} for s, rs in rank_log for a, r in zip(arms, rs)])
final_rank = dict(zip(arms, rank_log[-1][1]))
max_rank = ranks.groupby("arm")["rank"].max().to_dict()
mlp_acc = dict(zip(arms, rank_hist.test_acc[-1]))
w_widen = ensemble.stacked[widen_idx][arms.index("partial_identity")].detach().cpu()
padded_rows_max = float(w_widen[Q:].abs().max())
dead_cols_max = float((ensemble.stacked[next_idx].detach().cpu() - w_next0)[arms.index("partial_identity")][:, Q:]
                      .abs().max())
print("final ranks:", final_rank, "test acc:", mlp_acc, "padded rows:", padded_rows_max, "dead cols:", dead_cols_max)
record.curve("update_rank", {NAMES[a]: ([s for s, _ in rank_log], [r[i] for _, r in rank_log])
                             for i, a in enumerate(arms)}, y="rank of W - W_init")
record.measure("degeneracy", {"Q": Q, "P": P, "learned_acc": LEARNED_ACC,
                              "test_acc": {NAMES[a]: v for a, v in mlp_acc.items()}})

# %% tags=["compute"]
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

# %% tags=["compute"]
def fc_net(init, run_seed):
    return resnet("fc", train_set.input_shape, train_set.num_classes, widths=fc_widths, blocks=fc_blocks,
                  init=init, seed=run_seed)


net_a = fc_net("he", seed)
rng_ok = rng_untouched(lambda: zero_resnet_(net_a)) and rng_untouched(lambda: zero_hadamard_(torch.empty(P, Q)))
torch.manual_seed(seed + 1)
net_b = zero_resnet_(fc_net("he", seed + 1))
init_diff = max_param_diff(net_a, net_b)
init_diffs = param_diffs(net_a, net_b)
kaiming_nets = fc_net("he", seed), fc_net("he", seed + 1)
kaiming_diff = max_param_diff(*kaiming_nets)
det_cfg = TrainConfig(epochs=det_steps, batch_size=batch_size, lr=lrs[0], momentum=momentum,
                      weight_decay=weight_decay, seed=seed, max_steps=det_steps, device=device)
det_hist = [train(net, train_set, test_set, det_cfg, desc="determinism") for net in (net_a, net_b)]
trained_diff = max_param_diff(net_a, net_b)
print("RNG untouched:", rng_ok, "init diff:", init_diff, "trained diff:", trained_diff, "Kaiming diff:", kaiming_diff)
record.measure("determinism", {
    f"Kaiming at init, seeds {seed} and {seed + 1}": param_diffs(*kaiming_nets),
    f"ZerO at init, global seeds {seed} and {seed + 1}": init_diffs,
    f"ZerO after {det_steps} SGD steps, same data order": param_diffs(net_a, net_b)})
record.curve("determinism_test_accuracy", {f"ZerO run {i + 1}": (h.step, h.test_acc) for i, h in enumerate(det_hist)},
             y="test accuracy")

# %% tags=["compute"]
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

# %% tags=["compute"]
ARMS = {"ZerO": "zero", "Kaiming": "he"}
ARCHS = {"conv": (conv_widths, conv_blocks, conv_batch_norm), "fc": (fc_widths, fc_blocks, False)}
search_train, search_val = split(train_set, val_fraction, seed)
n_test = len(test_set)
CFG = dict(epochs=epochs, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay,
           warmup_epochs=warmup_epochs, milestones=tuple(milestones), device=device)


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
    record.curve(f"test_accuracy_{kind}", {f"{a} seed {s}": (hist.epoch, [accs[i] for accs in hist.acc["test"]])
                                           for i, (a, _, s) in enumerate(runs)}, x="epoch", y="test accuracy")
    print(kind, {a: c.evidence.summary for a, c in chosen[kind].items()}, {a: np.round(v, 3).tolist()
                                                                          for a, v in final[kind].items()})
record.measure("resnet", {kind: {"final_test_acc": final[kind], "lr": {a: c.lr for a, c in chosen[kind].items()},
                                 "trained_lr": {a: fallback_lr(c) for a, c in chosen[kind].items()}}
                          for kind in ARCHS})

# %% tags=["compute"]
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
                 reason=context + ".",
                 measured={"final_test_acc": final[kind], "lr": {a: c.lr for a, c in chosen[kind].items()},
                           "lr_search": {a: c.evidence.measured for a, c in chosen[kind].items()},
                           "sd_paired_diff": pilot_sd})

# %% [markdown]
# ## zero.low_rank (reduced scale): on the conv ResNets of claim 3
# Stable rank ||A||_F^2 / ||A||_2^2 of the update A = W - W_init of every residual branch conv
# (averaged over layers, per run), and test accuracy after magnitude pruning of every conv (per
# layer; the classifier is kept), ZerO against Kaiming paired by seed.

# %% tags=["compute"]
runs, ens, _, initial = trained["conv"]
ens.to("cpu")  # pruning and its evaluation run on the CPU, whatever the training device
initial = {name: w.cpu() for name, w in initial.items()}
arm_of = np.array([r[0] for r in runs])
sr = update_stable_ranks(ens, initial, branch_weight_names(ens)).mean(axis=1)
stable_ranks = {a: sr[arm_of == a].tolist() for a in ARMS}
names = prunable_weight_names(ens)
pruned = {f: pruned_accuracy(ens, test_set, names, f) for f in sorted(set(prune_fractions) | {prune_fraction})}
pruned_acc = {f: {a: [v[i] for i in range(len(runs)) if arm_of[i] == a] for a in ARMS} for f, v in pruned.items()}
print("stable rank of W - W_init:", {a: np.round(v, 2).tolist() for a, v in stable_ranks.items()})
print("accuracy after pruning:", {f: {a: np.round(v, 3).tolist() for a, v in d.items()} for f, d in pruned_acc.items()})
record.measure("low_rank", {"stable_rank": stable_ranks, "pruned_acc": {str(f): d for f, d in pruned_acc.items()}})

# %% tags=["compute"]
log_sr = {a: np.log(v).tolist() for a, v in stable_ranks.items()}
record.claim(
    "zero.low_rank",
    [positive_control("Kaiming", final["conv"]["Kaiming"], chance),
     compare("ZerO", log_sr["ZerO"], "Kaiming", log_sr["Kaiming"], margin=float(np.log(rank_ratio)), superior=True,
             higher_is_better=False, unit="(log stable rank of W - W_init)",
             paper_precision="Figs. 5-6 numbers not available to us"),
     # the pruned comparison decides only where pruned Kaiming still beats chance: two arms at chance
     # level cannot show which one is more robust to pruning
     with_control(positive_control(f"Kaiming with {prune_fraction:g} pruned", pruned_acc[prune_fraction]["Kaiming"],
                                   chance),
                  compare("ZerO", pruned_acc[prune_fraction]["ZerO"], "Kaiming", pruned_acc[prune_fraction]["Kaiming"],
                          margin=prune_margin, superior=True, chance=chance, n_test=n_test, bounds=(0, 1),
                          unit=f"(accuracy, {prune_fraction:g} of every conv pruned)",
                          paper_precision="Figs. 5-6 numbers not available to us"))],
    reason=(f"Reduced-scale proxy on the conv ResNets of zero.resnet_accuracy: mean stable rank of W - W_init over "
            f"the branch convs ZerO " + ", ".join(f"{v:.2f}" for v in stable_ranks["ZerO"]) + "; Kaiming "
            + ", ".join(f"{v:.2f}" for v in stable_ranks["Kaiming"]) + f" (needs Kaiming/ZerO > {rank_ratio:g}); "
            f"accuracy with {prune_fraction:g} of every conv pruned: ZerO "
            + ", ".join(f"{v:.3f}" for v in pruned_acc[prune_fraction]["ZerO"]) + "; Kaiming "
            + ", ".join(f"{v:.3f}" for v in pruned_acc[prune_fraction]["Kaiming"]) + "; mean accuracy at the other "
            "pruned fractions (context, not registered): " + "; ".join(
                f"{f:g}: ZerO {np.nanmean(d['ZerO']):.3f}, Kaiming {np.nanmean(d['Kaiming']):.3f}"
                for f, d in pruned_acc.items() if f != prune_fraction) + "."
            + ("" if np.median(pruned_acc[prune_fraction]["Kaiming"]) >= chance + 0.1 else
               " What would decide: a registered pruned fraction at which pruned Kaiming keeps a median above "
               f"{chance + 0.1:g}; here " + (", ".join(f"{f:g}" for f, d in pruned_acc.items()
                                                     if np.median(d["Kaiming"]) >= chance + 0.1) or "none")
               + ".")),
    measured={"stable_rank": stable_ranks, "pruned_acc": {str(f): d for f, d in pruned_acc.items()}},
)

# %% [markdown]
# ## zero.deep_no_bn (reduced-scale proxy): depth sweep of narrow fc ResNets without BN
# ZerO, Fixup and Kaiming on the same fc ResNet (width `deep_width`, no batch norm, the authors'
# ReLU everywhere), each arm with its own lr search at every depth. The claim is decided
# against Fixup, the no-BN reference for deep residual nets: ZerO on par with it at every
# depth. Kaiming without BN is context (it is expected to blow up with depth).

# %% tags=["compute"]
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
record.measure("deep_no_bn", {"final_test_acc": {str(d): f for d, f in deep_final.items()},
                              "lr": {str(d): {a: c.lr for a, c in ch.items()} for d, ch in deep_choice.items()}})

# %% tags=["compute"]
deep_evidence = []
for depth in deep_depths:
    z, f = deep_final[depth]["ZerO"], deep_final[depth]["Fixup"]
    deep_evidence += [deep_choice[depth]["ZerO"].evidence, deep_choice[depth]["Fixup"].evidence,
                      positive_control(f"Fixup {depth} blocks", f, chance),
                      compare(f"ZerO {depth} blocks", z, f"Fixup {depth} blocks", f, margin=deep_margin, chance=chance,
                              n_test=n_test, bounds=(0, 1), paper_precision="Fig. 4 numbers not available to us")]
record.claim(
    "zero.deep_no_bn", deep_evidence,
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

# %% tags=["compute"]
SKIPPED = {
    "zero.imagenet_resnet50": "ImageNet ResNet-50 for 90 epochs needs a GPU cluster; no ImageNet data here.",
    "zero.transformer": "WikiText-2 Transformers (2-20 layers) need a GPU and the WikiText-2 data.",
}
for claim_id, why in SKIPPED.items():
    record.claim(claim_id, skip_reason=why)

# %% [markdown]
# ## Figures, drawn from the measurements alone (`make figures` redraws them)
# Compared quantities are drawn per arm as the seeds (dots) and their mean with its 95% t
# interval; each comparison as the paired difference with the 95% interval its verdict was
# decided by, against its margin (dashed).

# %%
def decided(claim_id, label_has=""):
    """(label, check, interval) of every comparison that decided ``claim_id`` (the interval its verdict used)."""
    claim = next(c for c in record.claims if c["id"] == claim_id)
    return [(check["name"].removeprefix("95% CI low of ").strip(), check, interval)
            for check, interval in deciding_checks(claim) if interval is not None and label_has in check["name"]]

# %%
deg = record.measurements["degeneracy"]
fig, axes = subplots(1, 2, figsize=(11, 3.9), width_ratios=[2, 1])
for name, (steps_, ranks_) in record.curves["update_rank"]["series"].items():
    axes[0].plot(steps_, ranks_, marker=".", color=scheme_color(name), label=name)
axes[0].axhline(deg["Q"], color="k", ls="--", lw=1, label=f"bound for the partial identity: input dimension Q = {deg['Q']}")
axes[0].set(xlabel="SGD step", ylabel=f"rank of W - W_init (tolerance {rank_tol:g})",
            title=f"update of the {deg['P']}x{deg['P']} layer after the widening layer {deg['Q']} -> {deg['P']}")
axes[0].legend(fontsize="small")
for x, (name, acc_) in enumerate(deg["test_acc"].items()):
    axes[1].bar(x, acc_, color=scheme_color(name))
axes[1].axhline(deg["learned_acc"], color="k", ls="--", lw=1,
                label=f"precondition: every net learned (>= {deg['learned_acc']:.2f})")
axes[1].set_xticks(range(len(deg["test_acc"])), list(deg["test_acc"]), fontsize="small")
axes[1].set(ylabel="test accuracy", ylim=(0, 1), title=f"MLP {mlp_widths} on {rank_dataset}, {rank_steps} steps")
axes[1].legend(fontsize="x-small", loc="upper left")
record.figure(fig, "update_rank.png", claims=["zero.training_degeneracy"])

# %%
diffs = record.measurements["determinism"]
positive = [v for d in diffs.values() for v in d.values() if v > 0]
floor = min(positive) / 100 if positive else 1e-12  # exact zeros are drawn on this line
fig, axes = subplots(1, 2, figsize=(11.5, 4.2), width_ratios=[2, 1])
for k, ((series, d), marker) in enumerate(zip(diffs.items(), ("s", "o", "^"))):
    axes[0].plot(np.arange(len(d)) + 0.22 * (k - 1), [v if v > 0 else floor for v in d.values()], marker=marker,
                 ls="none", ms=7, color=scheme_color(series.split()[0]), label=series, alpha=0.85)
axes[0].axhline(floor, color="k", ls="--", lw=1, label="exactly 0: bitwise equal (what ZerO must show)")
axes[0].set_xticks(range(len(next(iter(diffs.values())))), list(next(iter(diffs.values()))), rotation=60, ha="right",
                   fontsize="x-small")
axes[0].set(yscale="log", ylabel="max |difference| between the two runs\n(exact zeros on the dashed line)",
            title=f"fc ResNet {fc_widths} x {fc_blocks}: two runs, per parameter tensor")
axes[0].legend(fontsize="x-small", loc="center right")
for (series, (steps_, accs)), style in zip(record.curves["determinism_test_accuracy"]["series"].items(), ("-", "--")):
    axes[1].plot(steps_, accs, ls=style, marker="o" if style == "-" else "x", ms=8 if style == "-" else 10,
                 color=scheme_color("ZerO"), label=series)
axes[1].set(xlabel="SGD step", ylabel="test accuracy", title="two ZerO runs: the curves coincide")
axes[1].legend(fontsize="small")
record.figure(fig, "determinism.png", claims=["zero.deterministic"])

# %%
res = record.measurements["resnet"]
fig, axes = subplots(2, 2, figsize=(11.5, 7.6))
for ax, kind in zip(axes[0], ("conv", "fc")):
    shown = set()
    for series, (ep, accs) in record.curves[f"test_accuracy_{kind}"]["series"].items():
        name = series.rsplit(" seed ", 1)[0]
        ax.plot(ep, accs, marker=".", color=scheme_color(name), alpha=0.7, label=None if name in shown else name)
        shown.add(name)
    ax.axhline(record.measurements["chance"], color="grey", ls=":", lw=1, label="chance")
    widths_, blocks_, bn_ = (conv_widths, conv_blocks, conv_batch_norm) if kind == "conv" else (fc_widths, fc_blocks, False)
    ax.set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
    ax.set_title(f"{kind} ResNet {widths_} x {blocks_}{' + BN' if bn_ else ''}, one line per seed; lr "
                 + ", ".join(f"{a} {lr:.3g}" for a, lr in res[kind]["trained_lr"].items()), fontsize="medium")
    ax.legend(fontsize="small", loc="lower right")
for k, kind in enumerate(("conv", "fc")):
    for j, (arm, vals) in enumerate(res[kind]["final_test_acc"].items()):
        arm_points(axes[1, 0], 2 * k + 0.6 * j, vals, scheme_color(arm), label=arm if k == 0 else None)
axes[1, 0].set_xticks([0.3, 2.3], ["conv ResNet", "fc ResNet"])
axes[1, 0].set(ylabel="final test accuracy", title=f"per arm: {len(seeds)} seeds (dots), mean and 95% CI")
axes[1, 0].legend(fontsize="small")
interval_panel(axes[1, 1], [(f"{kind}: {label}", iv, check["threshold"], scheme_color("ZerO"), "o")
                            for kind, cid in (("conv", "zero.resnet_accuracy"), ("fc", "zero.resnet_accuracy_fc"))
                            for label, check, iv in decided(cid)],
               xlabel="paired difference in test accuracy (ZerO - Kaiming)")
axes[1, 1].set_title(f"ZerO on par with Kaiming: within the margin {margin:g}")
record.figure(fig, "accuracy.png", claims=["zero.resnet_accuracy", "zero.resnet_accuracy_fc"])

# %%
low = record.measurements["low_rank"]
fig, axes = subplots(2, 3, figsize=(13, 4.6))
gs = axes[0, 0].get_gridspec()
for ax in axes[:, :2].ravel():
    ax.remove()
ax_rank, ax_prune = fig.add_subplot(gs[:, 0]), fig.add_subplot(gs[:, 1])
for j, (arm, vals) in enumerate(low["stable_rank"].items()):
    arm_points(ax_rank, j, vals, scheme_color(arm), label=arm)
ax_rank.set_xticks(range(len(low["stable_rank"])), list(low["stable_rank"]))
ax_rank.set(ylabel="stable rank of W - W_init (mean over branch convs)",
            title="stable rank of the weight updates")
ax_rank.legend(fontsize="small")
fractions = sorted(low["pruned_acc"], key=float)
for arm in low["stable_rank"]:
    stats_ = [mean_ci(low["pruned_acc"][f][arm]) for f in fractions]
    xs = [float(f) for f in fractions]
    ax_prune.plot(xs, [s[0] for s in stats_], marker="o", color=scheme_color(arm), label=f"{arm}: mean, 95% CI band")
    ax_prune.fill_between(xs, [s[1] for s in stats_], [s[2] for s in stats_], color=scheme_color(arm), alpha=0.2)
ax_prune.axvline(prune_fraction, color="k", ls="--", lw=1, label=f"registered pruning level {prune_fraction:g}")
ax_prune.axhline(record.measurements["chance"], color="grey", ls=":", lw=1, label="chance")
ax_prune.set(xlabel="fraction of every conv pruned (smallest magnitudes)", ylabel="test accuracy", ylim=(0, 1),
             title="magnitude pruning (conv ResNet)")
ax_prune.legend(fontsize="x-small")
rows = decided("zero.low_rank")
for ax, (label, check, iv), what in zip(axes[:, 2], rows, ("log stable rank, Kaiming - ZerO",
                                                          "accuracy after pruning, ZerO - Kaiming")):
    interval_panel(ax, [(label.split(" (")[0], iv, check["threshold"], scheme_color("ZerO"), "o")],
                   xlabel=f"paired difference: {what}")
axes[0, 2].set_title(f"superiority: above log({rank_ratio:g}) and {prune_margin:g}", fontsize="small")
record.figure(fig, "low_rank.png", claims=["zero.low_rank"])

# %%
deep = record.measurements["deep_no_bn"]
depths = sorted(deep["final_test_acc"], key=int)
fig, axes = subplots(1, 2, figsize=(11.5, 4.0))
arms_ = list(deep["final_test_acc"][depths[0]])
for j, arm in enumerate(arms_):
    xs, stats_ = [], []
    for d in depths:
        v = np.asarray(deep["final_test_acc"][d][arm], dtype=float)
        if np.isfinite(v).any():
            xs.append(int(d))
            stats_.append(mean_ci(v[np.isfinite(v)]))
            axes[0].plot([int(d)] * len(v), v, ".", color=scheme_color(arm), alpha=0.4)
    if not xs:
        axes[0].plot([], [], " ", label=f"{arm}: not trained (every lr collapsed in the search)")
    else:
        axes[0].errorbar(xs, [s[0] for s in stats_], yerr=[[s[0] - s[1] for s in stats_], [s[2] - s[0] for s in stats_]],
                         marker="o", capsize=4, color=scheme_color(arm), label=f"{arm}" + (" (context)" if arm == "Kaiming" else ""))
axes[0].axhline(record.measurements["chance"], color="grey", ls=":", lw=1, label="chance")
axes[0].set(xscale="log", xlabel="residual blocks", ylabel="final test accuracy", ylim=(0, 1),
            title=f"fc ResNet width {deep_width}, no BN, {dataset}: seeds (dots), mean and 95% CI")
axes[0].set_xticks([int(d) for d in depths], depths)
axes[0].legend(fontsize="small")
interval_panel(axes[1], [(label.split(" - ")[0].removeprefix("ZerO "), iv, check["threshold"], scheme_color("ZerO"), "o")
                         for label, check, iv in decided("zero.deep_no_bn")],
               xlabel="paired difference in test accuracy (ZerO - Fixup)")
axes[1].set(ylabel="depth", title=f"ZerO on par with Fixup at every depth: within {deep_margin:g}")
record.figure(fig, "deep_no_bn.png", claims=["zero.deep_no_bn"])

# %%
record.verdicts_figure()

# %% tags=["compute"]
record.write()
print(record.summary())
