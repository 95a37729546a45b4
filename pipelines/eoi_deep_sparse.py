# %% [markdown]
# # EOI: exactly orthogonal sparse init; 1000-layer sparse tanh MLP and CNN
# Nowak et al., ICML 2024 (arXiv 2406.01755). Claims: EOI matrices are exactly orthogonal at
# any density and cheap to build; with EOI, 1000-layer sparse tanh networks without residuals
# or normalization train, and with standard sparse inits they do not; EOI keeps the
# input-output Jacobian's singular values of order 0.1-1 at depth 1000.
# Library: `initrepro.init.eoi`, `initrepro.init.sparse`, `initrepro.studies.eoi`,
# `initrepro.models.deep_tanh`.

# %% tags=["parameters"]
profile = "smoke"
output_root = "."
seed_set = 0
seed = 0  # data split, orthogonality grid and timing draws (moved by seed_set)
threads = 2  # both cores: the seeds of one arm train as one vmapped ensemble (batched matmuls)
dataset = "digits"  # MLP data
cnn_dataset = "digits"
n_train = None
n_test = None
density = 0.125
gain = 1.0247  # tanh critical point (authors' sigma_w, sigma_b)
bias_std = 0.00448
# claim 1: exact orthogonality over a grid
grid_shapes = [[128, 128], [64, 256], [256, 64], [20, 100], [100, 20]]
grid_densities = [0.05, 0.125, 0.25, 0.5, 0.75, 1.0]
grid_seeds = [0, 1, 2]
orthogonality_tol = 1.0e-6
density_tol = 0.01
# claim 2: cost of building one layer: eoi_ against torch.nn.init.orthogonal_ (same shape) and the
# authors' recount loop; alternating repeats (verdicts.alternating_timings), CPU time, one thread
timing_size = 128
timing_block_layers = 20  # one timing: this many consecutive layers, as model.apply makes them
timing_repeats = 7
min_speedup_reference = 10.0  # issue 8: eoi_ at least 10x cheaper than the recount loop
max_cost_vs_orthogonal = 2.0  # "efficient": eoi_ costs at most 2x a dense orthogonal_ init of the same shape
bench_layers = 1000  # eoi_stack of this many layers: timed and reported, not checked
# claims 3-5: the 1000-layer nets; every seed of train_seeds, one ensemble per arm
depth = 1000
width = 128
cnn_channels = 16
train_seeds = [0, 1, 2, 3, 4]
control = "dense_orthogonal"  # positive control: must train in the same setup
sparse_baselines = ["uniform_orthogonal", "uniform_gaussian"]  # EOI must beat each by train_margin
context_inits = ["erk_orthogonal", "approximate_isometry"]  # Jacobian spectra shown at the first seed, not checked
ai_steps = 10
ai_lr = 0.01
mlp_steps = 40
cnn_steps = 20
batch_size = 32
lr = 1.0e-3
cnn_lr = 1.0e-2
momentum = 0.9
nesterov = True
weight_decay = 1.0e-4
milestones = []
cnn_augment = False  # crop + flip (CIFAR-10 at the paper profile)
control_min_gain = 0.1  # the control trains when its median accuracy is at least chance + this (2 x the collapse tolerance)
train_margin = 0.1  # superiority: EOI - baseline accuracy must exceed this (the gap between "trains" and chance)
# claim 5: spread (sd) of ln singular values of the MLP's input-output Jacobian at init, per seed
jacobian_reference = "dense_orthogonal"  # EOI's spread within jacobian_close_margin of this one's
jacobian_far_reference = "uniform_gaussian"  # and below this one's by more than jacobian_far_margin
jacobian_close_margin = 0.693  # ln 2
jacobian_far_margin = 2.303  # ln 10
sv_floor = 1.0e-300  # an exact zero singular value counts as this
curve_points = 4  # a run shorter than this many epochs is also evaluated every 1/curve_points of it (curves)
device = "cpu"  # models and batches move here ("cuda" on a GPU)
replot = False  # True: redraw the figures from the committed measurements (`make figures`)

# %%
import time

import numpy as np
import torch
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

from initrepro.core.claims import Check, StageRecord
from initrepro.core.plotting import deciding_checks, scheme_color, subplots
from initrepro.core.seeding import shift
from initrepro.core.stats import mean_ci
from initrepro.core.verdicts import alternating_timings, collapsed, compare, positive_control, speedup
from initrepro.data import load_dataset
from initrepro.init.eoi import eoi_, eoi_matrices, eoi_reference, eoi_stack, min_density, orthogonality_error
from initrepro.measures.isometry import jacobian_singular_values_batched, log_spread
from initrepro.models.deep_tanh import DeepTanhCNN, DeepTanhMLP
from initrepro.studies.eoi import AccuracyTrace, merge_curve, sparse_net, stack_sparse
from initrepro.training import TrainConfig, train

torch.set_flush_denormal(True)  # deep tanh nets slow down ~100x on denormals
torch.set_num_threads(threads)
seed, grid_seeds, train_seeds = shift(seed, seed_set), shift(grid_seeds, seed_set), shift(train_seeds, seed_set)
record = StageRecord("eoi_deep_sparse", profile, seed=seed, output_root=output_root, seed_set=seed_set, replot=replot)


# %% [markdown]
# ## Claim 1: exact orthogonality and density over shapes and densities (float32)

# %% tags=["compute"]
grid = []
for (rows, cols) in grid_shapes:
    for d in grid_densities:
        if d < min_density(rows, cols):
            continue
        w = torch.cat([eoi_matrices(1, rows, cols, d, generator=torch.Generator().manual_seed(s)) for s in grid_seeds])
        achieved = (w != 0).flatten(1).float().mean(1)
        grid.append({"shape": f"{rows}x{cols}", "target": d, "error": float(orthogonality_error(w).max()),
                     "density_gap": float((achieved - d).abs().max()), "achieved": achieved.tolist()})
worst_error = max(g["error"] for g in grid)
worst_gap = max(g["density_gap"] for g in grid)
record.measure("orthogonality_grid", grid)
record.claim("eoi.exact_orthogonality", checks=[
    Check("max |W W^T - I| over the grid (float32)", worst_error, "<=", orthogonality_tol),
    Check("max |achieved - target density| over the grid", worst_gap, "<=", density_tol)],
    reason=f"{len(grid)} (shape, density) cells x {len(grid_seeds)} seeds, float32 (built in float64, cast).",
    measured={"cells": len(grid), "seeds": len(grid_seeds), "worst_error": worst_error,
              "worst_density_gap": worst_gap})

# %% [markdown]
# ## Claim 2: building a layer with EOI is cheap
# The cost of building one `timing_size`-square layer at `density`: `eoi_` (the `model.apply` path)
# against `torch.nn.init.orthogonal_` on the same shape (the dense init nobody calls expensive) and
# against the authors' loop that recounts all nonzeros after every rotation (`eoi_reference`).
# Each timing is a block of `timing_block_layers` consecutive layers; blocks alternate
# (`alternating_timings`, `timing_repeats` each), CPU time of this process, one thread.

# %% tags=["compute"]
torch.set_num_threads(1)
weight = torch.empty(timing_size, timing_size)
gen_fast, gen_ref, gen_orth = (torch.Generator().manual_seed(seed) for _ in range(3))


def block(fn):
    def run():
        for _ in range(timing_block_layers):
            fn()
    return run


build_eoi = block(lambda: eoi_(weight, density, generator=gen_fast))
build_reference = block(lambda: eoi_reference(timing_size, timing_size, density, generator=gen_ref))
build_orthogonal = block(lambda: torch.nn.init.orthogonal_(weight, generator=gen_orth))
reference_s, eoi_vs_ref_s = alternating_timings(build_reference, build_eoi, timing_repeats, timer=time.process_time)
orthogonal_s, eoi_vs_orth_s = alternating_timings(build_orthogonal, build_eoi, timing_repeats, timer=time.process_time)
start = time.process_time()
stack_w, _ = eoi_stack(bench_layers, (timing_size, timing_size), density, generator=torch.Generator().manual_seed(seed))
stack_s = time.process_time() - start
stack_error = float(orthogonality_error(stack_w).max())
del stack_w
torch.set_num_threads(threads)
per_layer_ms = {name: 1e3 * float(np.median(t)) / timing_block_layers for name, t in
                (("eoi_", eoi_vs_ref_s + eoi_vs_orth_s), ("orthogonal_ (dense)", orthogonal_s),
                 ("recount loop (authors')", reference_s))}
shape_text = f"{timing_size}x{timing_size} at density {density}, blocks of {timing_block_layers} layers, CPU time"
record.claim("eoi.efficient", [
    speedup(f"eoi_ against the recount loop ({shape_text})", reference_s, eoi_vs_ref_s, min_speedup_reference),
    speedup(f"eoi_ against torch.nn.init.orthogonal_ ({shape_text}; at most {max_cost_vs_orthogonal:g}x its cost)",
            orthogonal_s, eoi_vs_orth_s, 1.0 / max_cost_vs_orthogonal)],
    reason=("Per layer (median): " + ", ".join(f"{k} {v:.3g} ms" for k, v in per_layer_ms.items())
            + f". eoi_stack built {bench_layers} layers in {stack_s:.2f} s CPU (max orthogonality error "
              f"{stack_error:.1e})."),
    measured={"per_layer_ms": per_layer_ms, "eoi_vs_orthogonal": {"orthogonal_s": orthogonal_s, "eoi_s": eoi_vs_orth_s},
              "eoi_vs_reference": {"reference_s": reference_s, "eoi_s": eoi_vs_ref_s},
              "eoi_stack_s": stack_s, "eoi_stack_layers": bench_layers, "eoi_stack_error": stack_error})

# %% [markdown]
# ## Claims 3-5: 1000-layer sparse tanh MLP and CNN: Jacobian at init, then static sparse training
# Each arm's seeds train as one vmapped ensemble (each member exactly as alone). The MLP's
# input-output Jacobian is measured at init on every seed of every trained arm. Test accuracy is
# measured at init and after every epoch; a run shorter than `curve_points` epochs is also
# measured every 1/`curve_points` of its steps (`AccuracyTrace`: no random draw, no weight
# changes), so that every arm and seed has a curve.

# %% tags=["compute"]
data = {kind: load_dataset(name, seed=seed, n_train=n_train, n_test=n_test)
        for kind, name in (("mlp", dataset), ("cnn", cnn_dataset))}
chance = 1.0 / data["mlp"][0].num_classes
builders = {
    "mlp": lambda: DeepTanhMLP(int(np.prod(data["mlp"][0].input_shape)), data["mlp"][0].num_classes, depth, width),
    "cnn": lambda: DeepTanhCNN(data["cnn"][0].input_shape, data["cnn"][0].num_classes, depth, cnn_channels),
}
extra_args = {"approximate_isometry": {"steps": ai_steps, "lr": ai_lr}}
trained = [control, "eoi", *sparse_baselines]
runs = {"mlp": (mlp_steps, lr, False), "cnn": (cnn_steps, cnn_lr, cnn_augment)}
spectra = {"mlp": {}, "cnn": {}}  # kind -> scheme -> seed -> singular values
histories, acc, densities, step_s = {"mlp": {}, "cnn": {}}, {"mlp": {}, "cnn": {}}, {}, {}
for kind, (kind_steps, kind_lr, kind_augment) in runs.items():
    train_set, test_set = data[kind]
    x0 = test_set.x[0]
    for scheme in context_inits if kind == "mlp" else []:
        net, masks = sparse_net(builders[kind], scheme, density, train_seeds[0], gain=gain, bias_std=bias_std,
                                device=device, **extra_args.get(scheme, {}))
        densities[f"{kind}/{scheme}"] = masks.density
        spectra[kind][scheme] = {train_seeds[0]: jacobian_singular_values_batched(net, x0).numpy()}
        del net, masks
    epochs = -(-kind_steps * batch_size // len(train_set))
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=kind_lr, momentum=momentum, nesterov=nesterov,
                      weight_decay=weight_decay, milestones=tuple(milestones), augment=kind_augment, seed=seed,
                      max_steps=kind_steps, device=device)
    for scheme in trained:  # the control first: the other arms train only where it trains (a setup that can decide)
        gated = scheme != control and not positive_control(control, acc[kind][control], chance,
                                                           control_min_gain).checks[0].passed
        # Jacobians at init: every seed of every arm for the MLP; the first seed of EOI and the control for the CNN.
        jac_seeds = train_seeds if kind == "mlp" else (train_seeds[:1] if scheme in ("eoi", control) else [])
        if gated and not jac_seeds:
            print(f"{kind} {scheme}: not trained, the control did not train")
            continue
        nets, masks = zip(*(sparse_net(builders[kind], scheme, density, s, gain=gain, bias_std=bias_std, device=device)
                            for s in (train_seeds if not gated else jac_seeds)))
        densities[f"{kind}/{scheme}"] = float(np.mean([m.density for m in masks]))
        if jac_seeds:
            spectra[kind][scheme] = {s: jacobian_singular_values_batched(nets[k], x0).numpy()
                                     for k, s in enumerate(train_seeds) if s in jac_seeds}
        if gated:
            print(f"{kind} {scheme}: not trained, the control did not train")
            continue
        ens, ens_masks = stack_sparse(list(nets), list(masks), device)
        ens.isolate_diverged = True  # a diverging seed must not stop the others; it scores chance (NaN)
        del nets, masks
        trace = AccuracyTrace(ens_masks, test_set, -(-kind_steps // curve_points) if epochs < curve_points else 0,
                              kind_steps, device)
        trace.record(ens, 0)  # at init
        start, trace.seconds = time.perf_counter(), 0.0
        hist = train(ens, train_set, test_set, cfg, after_step=trace,
                     desc=f"{kind} {scheme} x {len(train_seeds)} seeds")
        step_s[f"{kind}/{scheme}"] = ((time.perf_counter() - start - trace.seconds)
                                      / max(hist.step[-1] if hist.step else 1, 1))
        histories[kind][scheme] = merge_curve(trace, hist)
        final = np.asarray(hist.test_acc[-1] if hist.test_acc else [np.nan] * len(train_seeds), dtype=float)
        acc[kind][scheme] = np.where(ens.diverged.cpu().numpy(), np.nan, final).tolist()
        print(f"{kind} {scheme}: acc {np.round(acc[kind][scheme], 3).tolist()} "
              f"({step_s[f'{kind}/{scheme}']:.2f} s per step of {len(train_seeds)} seeds)")
        del ens, ens_masks

record.measure("jacobian_spectra", spectra)
record.measure("chance", chance)
for kind, by_scheme in histories.items():
    record.curve(f"{kind}_test_accuracy", {f"{scheme} seed {s}": (steps, [a[k] for a in accs])
                                           for scheme, (steps, accs) in by_scheme.items()
                                           for k, s in enumerate(train_seeds)}, y="test accuracy")

# %% tags=["compute"]
setup = {"mlp": f"width {width} on {dataset}", "cnn": f"{cnn_channels} channels on {cnn_dataset}"}
paper_scale = {"mlp": "width 128 on MNIST, 100 epochs", "cnn": "128 channels on CIFAR-10, 100 epochs, on a GPU"}
for kind, (kind_steps, kind_lr, _) in runs.items():
    n_test_kind = len(data[kind][1])
    control_ev = positive_control(control, acc[kind][control], chance, control_min_gain)
    ran = [s for s in trained if s in acc[kind]]
    comparisons = {b: compare("eoi", acc[kind]["eoi"], b, acc[kind][b], margin=train_margin, superior=True,
                              chance=chance, n_test=n_test_kind, bounds=(0, 1),
                              paper_precision="paper's tables not available; the claim is train vs. not train")
                   for b in sparse_baselines if b in ran and "eoi" in ran}
    gate = Check("arms trained after the control (they train only where the control trains)", len(ran) - 1, ">=",
                  len(trained) - 1, precondition=True)
    member_s = step_s[f"{kind}/{control}"] / len(train_seeds)
    context = (f"Depth {depth}, {setup[kind]}, {kind_steps} SGD steps of batch {batch_size} at lr {kind_lr}, "
               f"{len(train_seeds)} seeds per arm (one vmapped ensemble each, {threads} threads); "
               f"{member_s:.3g} s per network-step of the control.")
    if not control_ev.checks[0].passed:
        context += (f" The dense control does not train in {kind_steps} steps here, so this setup cannot decide the "
                    f"claim, and the other arms were not trained. At {member_s:.3g} s per network-step, every 100 "
                    f"steps of the full design ({len(trained)} arms x {len(train_seeds)} seeds) cost about "
                    f"{100 * member_s * len(trained) * len(train_seeds):.0f} s here; a setup in which the control "
                    f"trains (more steps, or the paper's scale: {paper_scale[kind]}) decides.")
    record.claim(f"eoi.deep_{kind}_trains", [gate, control_ev, *comparisons.values()],
                 reason=context,
                 measured={"test_acc": acc[kind], "n_test": n_test_kind, "s_per_step_of_all_seeds": step_s,
                           "comparisons": {b: ev.measured for b, ev in comparisons.items()},
                           "mask_density": {k: v for k, v in densities.items() if k.startswith(kind)}})

# %% [markdown]
# ### Claim 5: EOI's Jacobian spectrum is close to the dense orthogonal net's, far from the sparse Gaussian net's
# Registered measure: the spread (sd) of ln singular values of the MLP's 10 x 64 input-output
# Jacobian at one test input, per seed, float64. Non-inferiority against the dense orthogonal net
# (within ln 2), superiority against the sparse Gaussian net (narrower by more than ln 10).

# %% tags=["compute"]
spread = {s: [log_spread(sv, sv_floor) for sv in spectra["mlp"][s].values()] for s in spectra["mlp"]}
sv_range = {kind: {s: {int(k): [float(sv.max()), float(sv.min())] for k, sv in by_seed.items()}
                   for s, by_seed in spectra[kind].items()} for kind in spectra}
close_ev = compare("eoi", spread["eoi"], jacobian_reference, spread[jacobian_reference], margin=jacobian_close_margin,
                   higher_is_better=False, unit="(sd of ln singular values)",
                   paper_precision="none stated (dynamical isometry motivation, Sec. 2-3)")
far_ev = compare("eoi", spread["eoi"], jacobian_far_reference, spread[jacobian_far_reference],
                 margin=jacobian_far_margin, superior=True, higher_is_better=False, unit="(sd of ln singular values)",
                 paper_precision="none stated")
cnn_max = {s: float(np.median([v[0] for v in by_seed.values()])) for s, by_seed in sv_range["cnn"].items()}
cnn_note = "; ".join(f"{s} {v:.2g} (per layer {v ** (1 / depth):.4f})" for s, v in cnn_max.items())
eoi_identity = min_density(cnn_channels, cnn_channels) >= density
collapsed_sv_context = 1e-10  # context only: a largest singular value below this is called collapsed
zero_jacobian = [s for s, by_seed in spectra["mlp"].items() if all(float(sv.max()) == 0.0 for sv in by_seed.values())]
collapsed_cnn = [s for s, v in cnn_max.items() if v < collapsed_sv_context]
record.claim("eoi.jacobian_isometry", [close_ev, far_ev],
             reason=(f"Spread of ln singular values of the MLP Jacobian at init, mean over the seeds: "
                     + ", ".join(f"{s} {np.mean(v):.3g}" for s, v in spread.items())
                     + (f" ({', '.join(zero_jacobian)}: the Jacobian is exactly zero, which this scale-free spread "
                        f"reads as 0; not a reference of the claim)" if zero_jacobian else "")
                     + f". Not checked, the CNN (largest singular value at the first seed; its d-th root, the mean "
                       f"gain per layer): {cnn_note}"
                     + (f"; {', '.join(collapsed_cnn)} collapsed through depth {depth} (largest singular value below "
                        f"{collapsed_sv_context:g})" if collapsed_cnn else "")
                     + (f"; at {cnn_channels} channels density {density} is EOI's lowest: the centre tap stays the "
                        f"identity and each channel is a scalar tanh chain" if eoi_identity else "") + "."),
             measured={"log_spread": spread, "singular_values_max_min": sv_range,
                       "comparisons": {"close": close_ev.measured, "far": far_ev.measured}})

# %% [markdown]
# ## Figures, drawn from the measurements alone (`make figures` redraws them)

# %%
claims = {c["id"]: c for c in record.claims}
chance, trained = record.measurements["chance"], [control, "eoi", *sparse_baselines]
grid_m = record.measurements["orthogonality_grid"]
fig, (ax_d, ax_e) = subplots(1, 2, figsize=(11, 4.2))
for i, shape in enumerate(dict.fromkeys(g["shape"] for g in grid_m)):
    rows_ = [g for g in grid_m if g["shape"] == shape]
    style = dict(marker="o", color=f"C{i}", label=f"{shape} matrix")
    ax_d.plot([g["target"] for g in rows_], [max(g["achieved"]) - g["target"] for g in rows_], ls="-", **style)
    ax_d.plot([g["target"] for g in rows_], [min(g["achieved"]) - g["target"] for g in rows_], ls=":", **{
        **style, "label": None})
    ax_e.semilogy([g["target"] for g in rows_], [max(g["error"], 1e-9) for g in rows_], ls="-", **style)
ax_d.axhspan(-density_tol, density_tol, color="grey", alpha=0.15, label=f"allowed: within {density_tol:g}")
ax_d.axhline(0, color="black", lw=0.6)
ax_d.set(xlabel="target density (fraction of nonzero weights)",
         ylabel="achieved - target density\n(solid: largest, dotted: smallest over seeds)",
         title="EOI hits the target density")
ax_e.axhline(orthogonality_tol, color="black", ls="--", lw=1, label=f"tolerance {orthogonality_tol:g} (must be below)")
ax_e.set(xlabel="target density (fraction of nonzero weights)",
         ylabel="largest entry of |W W^T - I|\n(float32; 0 drawn at 1e-9)", title="EOI matrices are orthogonal")
for ax in (ax_d, ax_e):
    ax.legend(fontsize="small")
record.figure(fig, "orthogonality_grid.png", claims=["eoi.exact_orthogonality"])

# %%
eff = claims["eoi.efficient"]
per_layer = eff["measured"]["per_layer_ms"]
fig, (ax_b, ax_s) = subplots(1, 2, figsize=(12, 4.2), width_ratios=[1, 1.2])
ax_b.bar([name.replace(" (", "\n(") for name in per_layer], list(per_layer.values()),
         color=[scheme_color(name) for name in per_layer])
ax_b.set(ylabel="CPU ms to build one layer (median)", yscale="log",
         title=f"{timing_size}x{timing_size} layer at density {density}")
ax_b.tick_params(axis="x", labelsize="small")
pairs = [("recount loop (authors')", eff["measured"]["eoi_vs_reference"]["reference_s"],
          eff["measured"]["eoi_vs_reference"]["eoi_s"]),
         ("orthogonal_ (dense)", eff["measured"]["eoi_vs_orthogonal"]["orthogonal_s"],
          eff["measured"]["eoi_vs_orthogonal"]["eoi_s"])]
for row, ((name, other, mine), (check, _)) in enumerate(zip(pairs, deciding_checks(eff))):
    ratios = [o / e for o, e in zip(other, mine)]
    ax_s.plot(ratios, [row] * len(ratios), "o", color=scheme_color(name), alpha=0.6,
              label="each alternating repeat" if row == 0 else None)
    ax_s.plot([check["value"]], [row], "D", ms=9, color="black", label="median (the checked value)" if row == 0 else None)
    ax_s.vlines(check["threshold"], row - 0.35, row + 0.35, color="black", ls="--", lw=1.5,
                label="must be at least this" if row == 0 else None)
ax_s.set_xscale("log")
ax_s.set_yticks([0, 1], [f"{name} time\n/ eoi_ time" for name, *_ in pairs], fontsize="small")
ax_s.set(ylim=(-0.7, 1.7), xlabel="speedup of eoi_ (time of the other / time of eoi_, same block of layers)",
         title=f"eoi_ >= {min_speedup_reference:g}x faster than the recount loop, <= {max_cost_vs_orthogonal:g}x "
               "the cost of orthogonal_")
ax_s.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, frameon=False)
record.figure(fig, "build_time.png", claims=["eoi.efficient"])

# %%
spectra_m = record.measurements["jacobian_spectra"]
jac = claims["eoi.jacobian_isometry"]
fig, axes = subplots(1, 3, figsize=(17, 4.6), width_ratios=[1, 1, 1.1])
for ax, kind in zip(axes, spectra_m):
    for scheme, by_seed in spectra_m[kind].items():
        for k, sv in enumerate(by_seed.values()):
            ax.semilogy(np.arange(1, len(sv) + 1), np.maximum(sv, 1e-30), marker="o", ms=3, color=scheme_color(scheme), alpha=0.7,
                        ls="--" if scheme in context_inits else "-",
                        label=(scheme + (" (context, not checked)" if scheme in context_inits else "")) if k == 0
                        else None)
    ax.set(xlabel="singular value number (largest first)",
           ylabel="singular value of d logits / d input\n(exact zeros drawn at 1e-30)",
           title=f"{kind.upper()}, depth {depth}, density {density}, at init"
                 + (" (not checked)" if kind == "cnn" else ""))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.legend(fontsize="x-small")
ax = axes[2]
spread_m = jac["measured"]["log_spread"]
names = list(spread_m)
for i, scheme in enumerate(names):
    vals = [v for v in spread_m[scheme] if v is not None]
    ax.plot(vals, [i] * len(vals), "o", color=scheme_color(scheme), alpha=0.7, label="seeds" if i == 0 else None)
for comp, reference in (("close", jacobian_reference), ("far", jacobian_far_reference)):
    m = jac["measured"]["comparisons"][comp]
    i = names.index(reference) if reference in names else None
    if i is None or any(m.get(k) is None for k in ("mean_diff", "ci_low", "ci_high")):
        continue
    # the comparison is on reference - EOI (lower spread is better), so EOI sits at ref_mean - diff
    ref_mean = float(np.mean([v for v in spread_m[reference] if v is not None]))
    y = i + 0.25
    ax.errorbar([ref_mean - m["mean_diff"]], [y], xerr=[[m["ci_high"] - m["mean_diff"]], [m["mean_diff"] - m["ci_low"]]],
                fmt="D", color=scheme_color("eoi"), capsize=5,
                label="EOI's mean, 95% CI (paired with this row)" if comp == "close" else None)
    ax.vlines(ref_mean - m["threshold"], y - 0.3, y + 0.3, color="black", ls="--", lw=1.5,
              label="EOI's CI must lie left of this" if comp == "close" else None)
ax.set_yticks(range(len(names)), names, fontsize="small")
ax.invert_yaxis()
ax.set(xlabel="spread of the MLP Jacobian: sd of ln singular values (0: isometry)",
       title=f"EOI within ln 2 of {jacobian_reference},\nbelow {jacobian_far_reference} by more than ln 10")
ax.legend(fontsize="x-small", loc="lower right")
record.figure(fig, "jacobian_spectra.png", claims=["eoi.jacobian_isometry"])

# %%
fig, axes = subplots(2, 3, figsize=(18, 9), width_ratios=[1.2, 0.8, 1])
for row, kind in enumerate(("mlp", "cnn")):
    claim = claims[f"eoi.deep_{kind}_trains"]
    ax_c, ax_a, ax_d = axes[row]
    shown = set()
    for series, (steps_, accs) in record.curves.get(f"{kind}_test_accuracy", {"series": {}})["series"].items():
        scheme = series.rsplit(" seed ", 1)[0]
        ax_c.plot(steps_, accs, "o-", ms=3, lw=1.6, color=scheme_color(scheme), alpha=0.9,
                  label=None if scheme in shown else scheme)
        shown.add(scheme)
    ax_c.axhline(chance, color="black", ls=":", lw=1, label="chance")
    ax_c.set(xlabel="optimizer step", ylabel="test accuracy", ylim=(0, 1),
             title=f"{kind.upper()}, depth {depth}, {dataset if kind == 'mlp' else cnn_dataset}: "
                   f"every arm and seed ({len(train_seeds)} seeds)")
    ax_c.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax_c.legend(fontsize="x-small")
    final_m = claim["measured"]["test_acc"]
    control_check = next(k for k in claim["checks"] if "positive control" in k["name"])
    for i, scheme in enumerate(trained):
        vals = np.array([np.nan if v is None else v for v in final_m.get(scheme, [])], dtype=float)
        if not len(vals):
            ax_a.text(i, 0.5, "not trained:\nthe control\ndid not train", ha="center", va="center", fontsize="x-small")
            continue
        ok = np.isfinite(vals)
        ax_a.plot(np.full(ok.sum(), i), vals[ok], "o", color=scheme_color(scheme), alpha=0.6)
        ax_a.plot(np.full((~ok).sum(), i), np.full((~ok).sum(), chance), "x", color=scheme_color(scheme), ms=8)
        mean, lo, hi = mean_ci(np.where(ok, vals, chance))
        ax_a.errorbar([i], [mean], yerr=[[mean - lo], [hi - mean]] if np.isfinite(lo) else None, fmt="D", ms=7,
                      color=scheme_color(scheme), mec="black", capsize=6)
    ax_a.axhline(control_check["threshold"], color="black", ls="--", lw=1.2,
                 label=f"{control} (control) median must reach this")
    ax_a.axhline(chance, color="black", ls=":", lw=1, label="chance")
    ax_a.set_xticks(range(len(trained)), trained, rotation=20, fontsize="x-small")
    ax_a.set(ylim=(0, 1), xlim=(-0.5, len(trained) - 0.5), ylabel="final test accuracy\n(diamond: mean, 95% CI; x: diverged, at chance)",
             title="final test accuracy per arm")
    ax_a.legend(fontsize="x-small")
    comps = claim["measured"]["comparisons"]
    for i, baseline in enumerate(sparse_baselines):
        m = comps.get(baseline)
        if m is None:
            ax_d.text(0, i, "not compared: not trained", ha="center", va="center", fontsize="small")
            continue
        if all(m.get(k) is not None for k in ("mean_diff", "ci_low", "ci_high")):
            ax_d.errorbar([m["mean_diff"]], [i], xerr=[[m["mean_diff"] - m["ci_low"]], [m["ci_high"] - m["mean_diff"]]],
                          fmt="D", color=scheme_color("eoi"), capsize=5, label="mean and 95% CI" if i == 0 else None)
        ax_d.vlines(m["threshold"], i - 0.35, i + 0.35, color="black", ls="--", lw=1.5,
                    label="margin: the CI must lie right of it" if i == 0 else None)
    ax_d.axvline(0, color="grey", lw=0.6)
    ax_d.set_yticks(range(len(sparse_baselines)), [f"eoi - {b}" for b in sparse_baselines], fontsize="small")
    ax_d.set(ylim=(len(sparse_baselines) - 0.5, -0.5), xlim=(-1, 1),
             xlabel="paired difference of final test accuracy", title=f"what decides: EOI beats each by > {train_margin:g}")
    if ax_d.get_legend_handles_labels()[1]:
        ax_d.legend(fontsize="x-small", loc="lower right")
record.figure(fig, "training_curves.png", claims=["eoi.deep_mlp_trains", "eoi.deep_cnn_trains"])

# %%
record.verdicts_figure()

# %% tags=["compute"]
record.write()
print(record.summary())
