# %% [markdown]
# # Identity initialization: two-point Jacobian spectrum, 100-layer MLPs, layer-wise reading
# Kubota, Hayashi, Hayase & Uchida, ICASSP 2021. Claims: J J^T of a sigma*I net is a two-point
# law; a 100-layer identity MLP (width = input dim + classes) trains where random inits of the
# same depth do not; the class units of every layer give an accuracy that rises through the
# depth; the trained weights stay near the identity. Theory: `initrepro.theory.identity`;
# model: `initrepro.models.class_unit_mlp`; training: `initrepro.studies.kubota`.

# %% tags=["parameters"]
profile = "smoke"
output_root = "."
seed_set = 0
seed = 0
confirm_seed = 1  # the independent sample that re-runs the spectrum tests failing screening
threads = 1
spectrum_width = 74
spectrum_depth = 100
spectrum_inputs = 50
# (activation, sigma, q0): every eigenvalue in {0, sigma^(2L)}; nonzero weight alpha(activation, sigma, q0)
spectrum_configs = [["relu", 0.9, 1.0], ["relu", 1.0, 1.0], ["relu", 1.05, 1.0], ["hard_tanh", 0.9, 1.0],
                    ["hard_tanh", 1.0, 1.0], ["hard_tanh", 1.0, 0.25], ["hard_tanh", 1.05, 0.1]]
exact_tol = 1.0e-10  # float64: relative distance of every eigenvalue from its atom
dataset = "digits"
n_train = None
n_test = None
depth = 100
activation = "hard_tanh"  # slope 1 at 0: zero-valued class units pass gradient (ReLU's do not)
# xavier is LeCun's scale for square layers, kaiming is He's
schemes = ["identity", "xavier", "kaiming"]
baseline = "xavier"  # the random init that the compare() decides against
train_seeds = [0, 1, 2, 3, 4]
epochs = 8
lr = 3.0e-3
momentum = 0.0
batch_size = 64
control_depth = 3
train_margin = 0.1  # identity better than the random init by more than this ("trains where it does not")
trend_first_layer = 2  # the trend of the per-layer accuracy is tested over layers trend_first_layer..L
trend_min = 0.5  # Spearman rho of per-layer accuracy with depth must exceed this ("rises through the depth")
drift_max = 0.5  # every layer's image coordinates within this relative distance of phi(input) ("near identity")
cifar_dataset = None  # the paper-scale CIFAR-10 run (width 3082); None: skipped
device = "cpu"  # the nets train and are measured here ("cuda" on a GPU); spectra stay on the CPU in float64
replot = False  # True: redraw the figures from the committed measurements (`make figures`)

# %%
import numpy as np
import torch

from initrepro.core.claims import Check, StageRecord
from initrepro.core.plotting import scheme_color, subplots
from initrepro.core.seeding import shift
from initrepro.core.verdicts import collapsed, compare, positive_control, two_stage
from initrepro.data import load_dataset
from initrepro.studies.kubota import count_z, identity_spectrum, layer_trend, train_seeds as run_seeds
from initrepro.theory.identity import two_point_law
from initrepro.training import TrainConfig

torch.set_num_threads(threads)
torch.set_flush_denormal(True)
seed, confirm_seed, train_seeds = shift(seed, seed_set), shift(confirm_seed, seed_set), shift(train_seeds, seed_set)
torch.manual_seed(seed)
record = StageRecord("identity_init", profile, seed=seed, output_root=output_root, seed_set=seed_set, replot=replot)
labels = [f"{a} sigma={s} q0={q}" for a, s, q in spectrum_configs]
n_coords = spectrum_inputs * spectrum_width
layers = np.arange(1, depth + 1)


# %% [markdown]
# ## Claim: the spectrum of J J^T at W = sigma I is the two-point law
# Full Jacobians by autodiff in float64 at `spectrum_inputs` inputs u ~ N(0, q0 I) per
# configuration. Exact checks: every eigenvalue lies within `exact_tol` (relative) of 0 or
# sigma^(2L). Statistical check: the nonzero count against Binomial(N M, alpha) (coordinates are
# independent), screened and confirmed on a fresh sample by `two_stage` (false failure <= 0.1%).

# %% tags=["compute"]
SPECTRUM_NET = dict(width=spectrum_width, depth=spectrum_depth, inputs=spectrum_inputs)
gen = torch.Generator().manual_seed(seed)
eigs = {tuple(c): identity_spectrum(*c, gen, **SPECTRUM_NET) for c in spectrum_configs}
z_screen, off_atom, table = [], 0.0, {}
for (activation_, sigma, q0), label in zip(spectrum_configs, labels):
    eig = eigs[activation_, sigma, q0]
    atom, alpha = two_point_law(activation_, sigma, spectrum_depth, q0)
    alive = eig > atom / 2
    off_atom = max(off_atom, float((torch.minimum((eig - atom).abs(), eig.abs()) / atom).max()))
    z_screen.append(count_z(eig, activation_, sigma, q0, depth=spectrum_depth))
    table[label] = {"atom": atom, "alpha": alpha, "alive_fraction": float(alive.double().mean()), "z": z_screen[-1]}


def confirm(indices):
    fresh = torch.Generator().manual_seed(confirm_seed)
    return [count_z(identity_spectrum(*spectrum_configs[i], fresh, **SPECTRUM_NET), *spectrum_configs[i],
                    depth=spectrum_depth) for i in indices]


spectrum_evidence = two_stage("nonzero count vs Binomial(N M, alpha)", z_screen, confirm, labels=labels)

tanh_eig = identity_spectrum("tanh", 1.0, 1.0, gen, **SPECTRUM_NET)
t = tanh_eig.numpy().ravel()
log_bins = np.linspace(-12, 1, 40)
record.measure("spectrum", {
    "per_config": table, "z_pooled": spectrum_evidence.measured["z_pooled"],
    "critical_z": spectrum_evidence.measured["critical_z"],
    # sigma = 1, q0 = 1: the fraction of eigenvalues at each atom (0 and 1), and tanh's spread-out spectrum
    "atoms": {name: {"zero": float((e <= 0.5).double().mean()), "one": float((e > 0.5).double().mean())}
              for (a, s, q), name in ((("relu", 1.0, 1.0), "ReLU"), (("hard_tanh", 1.0, 1.0), "hard-tanh"))
              if (e := eigs.get((a, s, q))) is not None},
    "tanh": {"edges": log_bins, "fraction": np.histogram(np.log10(np.clip(t, 1e-12, None)), bins=log_bins,
                                                         weights=np.full(t.size, 1 / t.size))[0]}})
record.claim("kubota.two_point_spectrum",
             [Check("max relative distance of an eigenvalue from its atom (0 or sigma^(2L))", off_atom, "<=", exact_tol),
              spectrum_evidence],
             measured={"per_config": table},
             reason=f"{len(spectrum_configs)} (activation, sigma, q0) configurations, width {spectrum_width}, depth "
                    f"{spectrum_depth}, {n_coords} eigenvalues each; tanh (sigma = 1, q0 = 1) for contrast: median "
                    f"eigenvalue {np.median(t):.3g}, spread over {np.log10(t.max() / max(t.min(), 1e-300)):.0f} decades.")

# %% [markdown]
# ## Training: identity against random inits of the same depth, paired by seed
# Each seed: its own split and data order; all schemes in one vectorized ensemble; plus the
# positive control, a shallow (`control_depth`) random-init net of the same width, same optimizer.

# %% tags=["compute"]
cfg = TrainConfig(epochs=epochs, lr=lr, momentum=momentum, batch_size=batch_size)
train_kwargs = dict(depth=depth, activation=activation, schemes=schemes, cfg=cfg, control_depth=control_depth,
                    control_scheme=baseline, device=device)
runs = run_seeds(dataset, train_seeds, n_train=n_train, n_test=n_test, **train_kwargs)
final = {s: np.array([r.test_acc[s] for r in runs]) for s in schemes}
control = np.array([r.control_acc for r in runs])
_, first_test = load_dataset(dataset, seed=train_seeds[0], n_train=n_train, n_test=n_test)  # the first seed's split
chance = 1.0 / first_test.num_classes
record.curve("test_accuracy", {f"{name} seed {s}": (np.arange(1, len(r.curves[name]) + 1), r.curves[name])
                               for name in schemes for s, r in zip(train_seeds, runs)}, x="epoch", y="test accuracy")

others = ", ".join(f"{s} {np.median(final[s]):.3f} ({int(collapsed(final[s], chance).sum())}/{len(runs)} collapsed)"
                   for s in schemes if s not in ("identity", baseline))
n_test_images = len(first_test)
trains = compare("identity", final["identity"], baseline, final[baseline], margin=train_margin, superior=True,
                 chance=chance, n_test=n_test_images, bounds=(0, 1),
                 paper_precision="the paper's accuracies were not available to us; the margin is the project's "
                                 "'trains' gain (positive control: chance + 0.1)")
record.measure("training", {"final_test_acc": final, "control_acc": control, "chance": chance,
                            "paired": {k: trains.measured[k] for k in ("mean_diff", "ci_low", "ci_high")}})
record.claim("kubota.deep_identity_trains",
             [positive_control(f"{baseline} {control_depth}-layer", control, chance), trains],
             measured={"final_test_acc": {s: v.tolist() for s, v in final.items()},
                       "control_acc": control.tolist()},
             reason=f"{dataset}, {depth} layers, {activation}, plain SGD lr {lr}, {epochs} epochs, batch {batch_size}, "
                    f"{len(runs)} seeds (split, order, random draw), {n_test_images} test images. Median test accuracy: "
                    f"identity {np.median(final['identity']):.3f}, {baseline} {np.median(final[baseline]):.3f}; "
                    f"also {others or 'none'}.")

# %% [markdown]
# ## Claim: per-layer class accuracy rises through the depth (identity nets)
# Contribution maps of the first seed's trained identity net: what layers 2..l changed in input
# space (x_l - x_1; layer 1 also clips the standardized pixels to [-1, 1]).

# %% tags=["compute"]
layer_acc = np.array([r.layer_acc["identity"] for r in runs])  # (seeds, depth)
map_layers = sorted({2, depth // 4, depth // 2, depth})
images = torch.stack([first_test.x[(first_test.y == k).nonzero()[0, 0]] for k in range(4)]).to(device)
identity_net = runs[0].models["identity"]
maps = identity_net.contributions(images, map_layers, base=1)[:, :, 0]  # (layers, images, H, W)
with torch.no_grad():
    x1 = identity_net.activations(images)[0, :, :identity_net.in_features].reshape(images.shape)[:, 0]
    logits = identity_net.preactivations(images)[:, :, identity_net.in_features:].argmax(-1)
quarters = {f"layer {l}": layer_acc[:, l - 1].tolist() for l in sorted({1, 2, 5, depth // 4, depth // 2, 3 * depth // 4, depth})}
rho = layer_trend(layer_acc, first=trend_first_layer)  # per seed
slope = np.polyfit(np.arange(trend_first_layer, depth + 1), layer_acc[:, trend_first_layer - 1:].T, 1)[0]  # per seed
rises = compare(f"Spearman rho of accuracy with layer {trend_first_layer}..{depth}", rho, "no trend", np.zeros_like(rho),
                margin=trend_min, superior=True,
                paper_precision="the paper's per-layer accuracies were not available to us")
record.measure("layers", {"identity": layer_acc, baseline: np.array([r.layer_acc[baseline] for r in runs]),
                          "spearman_rho": rho,
                          "trend": {k: rises.measured[k] for k in ("mean_diff", "ci_low", "ci_high")}})
record.measure("contribution_maps", {"layers": map_layers, "inputs": x1, "maps": maps,
                                     "says": logits[[l - 1 for l in map_layers]]})
record.claim("kubota.layerwise_accuracy_rises",
             [positive_control("identity", final["identity"], chance), rises],
             measured={"per_layer_accuracy": quarters, "spearman_rho": rho.tolist(), "slope_per_100_layers": (100 * slope).tolist()},
             reason="Mean class-unit accuracy at layers " + ", ".join(f"{k.split()[1]}: {np.mean(v):.3f}" for k, v in quarters.items())
                    + f"; per seed, Spearman rho over layers {trend_first_layer}..{depth} {rho.min():.2f} to {rho.max():.2f}, "
                    f"least-squares slope {100 * slope.mean():.3g} accuracy points per 100 layers (mean over seeds).")

# %% [markdown]
# ## Claim: the trained weights stay near the identity, so features stay in input space
# Image drift: at every layer, the median over test images of ||x_l[:D] - phi(x_0)|| / ||phi(x_0)||
# (`initrepro.studies.kubota.image_drift`): 0 for an identity net at init, near or above 1 for a random
# net, whose layers embed the input elsewhere. The claim: the trained identity net stays below
# `drift_max` at every layer on every seed; the precondition: the random baseline, trained with the
# same lr and steps, exceeds it (else the measure cannot tell the arms apart). The relative weight
# change from each net's own init is context only (small for every net at this lr).

# %% tags=["compute"]
drift = {s: np.array([r.drift[s] for r in runs]) for s in schemes}  # (seeds, depth), each seed on its own test split
change = {s: np.array([r.change[s] for r in runs]) for s in schemes}  # (seeds, depth)
worst = {s: drift[s].max(axis=1) for s in schemes}  # per seed: the largest drift over layers
record.measure("drift", {"per_layer": drift, "weight_change": change, "largest_per_seed": worst})
record.claim("kubota.weights_near_identity",
             [positive_control("identity", final["identity"], chance),
              Check(f"{baseline} (random init, same lr and steps): smallest over seeds of the largest image drift over layers",
                    float(worst[baseline].min()), ">", drift_max, precondition=True,
                    note="the measure separates a random init from the identity: else it cannot tell the arms apart"),
              Check("identity: largest over seeds and layers of the median image drift ||x_l[:D] - phi(x_0)|| / ||phi(x_0)||",
                    float(worst["identity"].max()), "<=", drift_max)],
             measured={f"image_drift_{s}": worst[s].tolist() for s in schemes}
                      | {f"median_weight_change_{s}": float(np.median(change[s])) for s in schemes},
             reason=f"Largest image drift over layers, per seed: identity {worst['identity'].min():.3f} to "
                    f"{worst['identity'].max():.3f} (at layer {int(drift['identity'].max(0).argmax()) + 1}), "
                    + ", ".join(f"{s} {worst[s].min():.3f} to {worst[s].max():.3f}" for s in schemes if s != "identity")
                    + f". Weight change from each net's own init (median over layers and seeds): "
                    + ", ".join(f"{s} {np.median(change[s]):.4f}" for s in schemes)
                    + " (small for every net: not what tells them apart).")

# %% [markdown]
# ## Claim: CIFAR-10 at the paper's scale (width 3072 + 10)

# %% tags=["compute"]
if cifar_dataset is None:
    record.claim("kubota.cifar10_trains",
                 skip_reason=f"profile {profile}: 100 layers of width 3082 are 950M weights per net (3.8 GB in float32) "
                             "and CIFAR-10 has 50,000 images: a GPU run of the paper profile decides it.")
else:
    cifar = run_seeds(cifar_dataset, train_seeds, **train_kwargs)
    acc_c = {s: np.array([r.test_acc[s] for r in cifar]) for s in schemes}
    record.measure("cifar", {"final_test_acc": acc_c, "control_acc": [r.control_acc for r in cifar]})
    record.claim("kubota.cifar10_trains",
                 [positive_control(f"{baseline} {control_depth}-layer", [r.control_acc for r in cifar], chance),
                  compare("identity", acc_c["identity"], baseline, acc_c[baseline], margin=train_margin, superior=True,
                          chance=chance, n_test=len(load_dataset(cifar_dataset, seed=train_seeds[0])[1]), bounds=(0, 1))],
                 measured={"final_test_acc": {s: v.tolist() for s, v in acc_c.items()}})

# %% [markdown]
# ## Figures, drawn from the measurements alone (`make figures` redraws them)
# J J^T: the input-output Jacobian J of the net at one input, times its transpose; sigma I: every
# weight matrix sigma times the identity; q0: the variance of the input's coordinates.

# %%
spec = record.measurements["spectrum"]
fig, (ax_a, ax_h, ax_z) = subplots(1, 3, figsize=(15, 4.4))
x = np.arange(len(labels))
for i, label in enumerate(labels):
    row = spec["per_config"][label]
    half = 1.96 * np.sqrt(row["alpha"] * (1 - row["alpha"]) / n_coords)
    ax_a.errorbar(i, row["alpha"], yerr=half, fmt="_", color="black", ms=14, capsize=4,
                  label="predicted (95% band)" if i == 0 else None)
    ax_a.plot(i, row["alive_fraction"], "o", color=scheme_color("identity"), label="measured" if i == 0 else None)
ax_a.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
ax_a.set_xlim(-0.5, len(labels) - 0.5)
ax_a.set(ylabel="share of eigenvalues at sigma^(2L)",
         title=f"width {spectrum_width}, depth {spectrum_depth}, {spectrum_inputs} inputs")
ax_a.yaxis.label.set_fontsize("small")
ax_a.legend(fontsize=8)
for k, (name, atoms) in enumerate(spec["atoms"].items()):
    ax_h.bar(np.array([-11.5, 0.0]) + (k - 0.5) * 0.5, [atoms["zero"], atoms["one"]], width=0.5, alpha=0.7,
             color=f"C{k}", label=f"{name}: only the two values 0 and 1")
ax_h.stairs(spec["tanh"]["fraction"], spec["tanh"]["edges"], lw=2, color="black", label="tanh: spread out (no two-point law)")
ax_h.set(xlabel="log10 eigenvalue of J J^T (0 drawn at -11.5)", ylabel="fraction of eigenvalues",
         title="sigma = 1, q0 = 1")
ax_h.legend(fontsize=8)
crit = spec["critical_z"]
ax_z.axhspan(-crit, crit, color="0.88", label=f"pass: |z| <= {crit:.2f} (0.1% family-wise)")
ax_z.plot(x, [spec["z_pooled"][label] for label in labels], "o", color=scheme_color("identity"),
          label="count at sigma^(2L) vs predicted, pooled z")
ax_z.set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
ax_z.set_xlim(-0.5, len(labels) - 0.5)
ax_z.set(ylabel="z-score (standard errors)", title="the test that decides the verdict",
         ylim=(-1.3 * crit, 1.3 * crit))
ax_z.legend(fontsize=8)
fig.suptitle("claim: with every weight matrix sigma I, each eigenvalue of J J^T (J: the net's input-output Jacobian) is "
             "0 or sigma^(2L), in the predicted shares")
record.figure(fig, "spectrum.png", claims=["kubota.two_point_spectrum"])

# %%
training = record.measurements["training"]
fig, (ax, ax_d) = subplots(1, 2, figsize=(11, 4.2))
shown = set()
for series, (epochs_, accs) in record.curves["test_accuracy"]["series"].items():
    name = series.rsplit(" seed ", 1)[0]
    ax.plot(epochs_, accs, marker=".", lw=1, alpha=0.7, color=scheme_color(name),
            label=None if name in shown else f"{name}, {depth} layers")
    shown.add(name)
ax.axhline(np.mean(training["control_acc"]), ls="--", color=scheme_color(baseline),
           label=f"{baseline}, {control_depth} layers (control), final")
ax.axhline(training["chance"], ls=":", color="black", label="chance")
ax.set(xlabel="epoch", ylabel="test accuracy", title=f"{activation} MLP, width D + C, {dataset}, one line per seed")
ax.legend(fontsize=8)
diff = np.array(training["final_test_acc"]["identity"]) - np.array(training["final_test_acc"][baseline])
paired = training["paired"]
ax_d.plot(np.arange(len(diff)), diff, "o", color=scheme_color("identity"), alpha=0.6, label="one seed")
ax_d.errorbar([len(diff) + 0.5], [paired["mean_diff"]],
              yerr=[[paired["mean_diff"] - paired["ci_low"]], [paired["ci_high"] - paired["mean_diff"]]],
              fmt="D", color="black", capsize=5, label="mean and 95% CI")
ax_d.axhline(train_margin, color="black", ls="--", lw=1, label=f"margin {train_margin:g}: the CI must lie above")
ax_d.set_xticks(list(range(len(diff))) + [len(diff) + 0.5], [str(s) for s in train_seeds] + ["mean"])
ax_d.set(xlabel="seed", ylabel=f"final test accuracy, identity minus {baseline}", title=f"{depth} layers, paired by seed")
ax_d.legend(fontsize=8)
record.figure(fig, "training.png", claims=["kubota.deep_identity_trains"])

# %%
per_layer = record.measurements["layers"]
fig, (ax, ax_r) = subplots(1, 2, figsize=(11, 4.2), width_ratios=[2, 1])
for k, acc in enumerate(per_layer["identity"]):
    ax.plot(layers, acc, lw=1, alpha=0.7, color=scheme_color("identity"), label="identity, one line per seed" if k == 0 else None)
ax.plot(layers, np.mean(per_layer[baseline], axis=0), "--", color=scheme_color(baseline), label=f"{baseline} (mean over seeds)")
ax.axhline(record.measurements["training"]["chance"], ls=":", color="black", label="chance")
ax.axvline(trend_first_layer, color="grey", lw=0.8, label=f"trend tested from layer {trend_first_layer}")
ax.set(xlabel="layer l", ylabel="test accuracy of the layer's class units", title=f"{dataset}, {depth} layers")
ax.legend(fontsize=8)
trend = per_layer["trend"]
rho_seed = per_layer["spearman_rho"]
ax_r.plot(np.arange(len(rho_seed)), rho_seed, "o", color=scheme_color("identity"), alpha=0.6, label="one seed")
ax_r.errorbar([len(rho_seed) + 0.5], [trend["mean_diff"]],
              yerr=[[trend["mean_diff"] - trend["ci_low"]], [trend["ci_high"] - trend["mean_diff"]]],
              fmt="D", color="black", capsize=5, label="mean and 95% CI")
ax_r.axhline(trend_min, color="black", ls="--", lw=1, label=f"margin {trend_min:g}: the CI must lie above")
ax_r.set_xticks(list(range(len(rho_seed))) + [len(rho_seed) + 0.5], [str(s) for s in train_seeds] + ["mean"])
ax_r.set(xlabel="seed", ylabel="rank correlation of accuracy with layer", ylim=(-1.05, 1.05),
         title="does accuracy rise with depth?")
ax_r.legend(fontsize=8)
record.figure(fig, "layer_accuracy.png", claims=["kubota.layerwise_accuracy_rises"])

# %%
contrib = record.measurements["contribution_maps"]
maps, inputs = np.array(contrib["maps"]), np.array(contrib["inputs"])
n_images, n_maps = inputs.shape[0], len(contrib["layers"])
fig, axes = subplots(n_images, n_maps + 1, figsize=(2.2 * (n_maps + 1) + 1.6, 2.0 * n_images))
scale = max(float(np.abs(maps).max()), 1e-12)
for i in range(n_images):
    shown_input = axes[i, 0].imshow(inputs[i], cmap="gray")
    axes[i, 0].set_title(f"class {i} after layer 1", fontsize=8)
    for j, l in enumerate(contrib["layers"]):
        shown_map = axes[i, j + 1].imshow(maps[j, i], cmap="RdBu_r", vmin=-scale, vmax=scale)
        axes[i, j + 1].set_title(f"layer {l} - layer 1: says {contrib['says'][j][i]}", fontsize=8)
for ax in axes.ravel():
    ax.set_xticks([]), ax.set_yticks([])
fig.colorbar(shown_input, ax=axes[:, 0], shrink=0.6, location="left", label="pixel value after layer 1")
fig.colorbar(shown_map, ax=axes[:, 1:], shrink=0.6, label="change in the image coordinates")
fig.suptitle("what the trained identity net's layers add to the image (first seed); 'says': the class the layer's "
             "class units pick")
record.figure(fig, "contribution_maps.png", claims=["kubota.layerwise_accuracy_rises"])

# %%
drift_m = record.measurements["drift"]
fig, (ax_d, ax_s, ax_w) = subplots(1, 3, figsize=(15, 4.2), width_ratios=[2, 1, 2])
for name in schemes:
    per_seed = np.array(drift_m["per_layer"][name])
    ax_d.plot(layers, np.median(per_seed, axis=0), color=scheme_color(name), label=f"{name} (median over seeds)")
    ax_d.fill_between(layers, per_seed.min(0), per_seed.max(0), color=scheme_color(name), alpha=0.2)
    ax_w.semilogy(layers, np.median(drift_m["weight_change"][name], axis=0), color=scheme_color(name),
                  label=f"{name} (median over seeds)")
    ax_s.plot(np.full(len(drift_m["largest_per_seed"][name]), schemes.index(name)), drift_m["largest_per_seed"][name],
              "o", color=scheme_color(name), alpha=0.7, label=name)
for ax in (ax_d, ax_s):
    ax.axhline(drift_max, ls="--", color="black", label=f"threshold {drift_max:g}")
ax_d.set(xlabel="layer l", ylabel="image drift: distance of layer l's image\nfrom the input, relative (median over images)",
         title=f"trained {epochs} epoch(s) on {dataset} (band: min to max over seeds)")
ax_s.set_xticks(range(len(schemes)), schemes)
ax_s.set_xlim(-0.5, len(schemes) - 0.5)
ax_s.set(ylabel="largest image drift over layers, per seed",
         title=f"identity must stay below, {baseline} above")
ax_w.set(xlabel="layer l", ylabel="relative weight change from init", title="weight change from each net's own init (context)")
for ax in (ax_d, ax_s, ax_w):
    ax.legend(fontsize=8)
record.figure(fig, "weight_change.png", claims=["kubota.weights_near_identity"])

# %%
if "cifar" in record.measurements:
    cifar_m = record.measurements["cifar"]
    fig, ax = subplots(figsize=(6, 4))
    for k, name in enumerate(schemes):
        ax.plot(np.full(len(cifar_m["final_test_acc"][name]), k), cifar_m["final_test_acc"][name], "o",
                color=scheme_color(name), label=f"{name}, {depth} layers")
    ax.axhline(np.mean(cifar_m["control_acc"]), ls="--", color=scheme_color(baseline),
               label=f"{baseline}, {control_depth} layers (control)")
    ax.set_xticks(range(len(schemes)), schemes)
    ax.set(ylabel="final test accuracy", title=f"{cifar_dataset}, one point per seed")
    ax.legend(fontsize=8)
    record.figure(fig, "cifar10.png", claims=["kubota.cifar10_trains"])

# %%
record.verdicts_figure()

# %% tags=["compute"]
record.write()
print(record.summary())
