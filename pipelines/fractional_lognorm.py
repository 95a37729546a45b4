# %% [markdown]
# # Fractional moment-preserving initialization and log-norm Gaussianity
# Gurbuzbalaban & Hu, AISTATS 2021. Claims: sigma_s preserves the s-th moment of the
# layer-to-layer norm ratio; s = 2 recovers He / LeCun; log||x_L|| is asymptotically
# Gaussian with explicit mean and variance; small outputs are rarer than under He; training
# can improve. Theory: `initrepro.theory.fractional`; simulation: `initrepro.studies.fractional`; verdict
# rules: `initrepro.core.verdicts`.
#
# Monte Carlo: the rotational sampler (for a fresh Gaussian W, W x ~ N(0, sigma^2 ||x||^2 I), so
# a layer needs one d-vector of normals, not a d x d matrix), validated against the matrix path
# (real d x d weights carried through a real network) at every (activation, s) tested, with the
# power to find a bias as large as the one of the earlier matrix-path failure (leaky ReLU,
# s = 0.5, z = 4.19 on 2 x 10^5 samples). Every theory test is one pooled test on two
# independent samples (`verdicts.two_stage`, family-wise false-failure rate 0.1%). Each claim
# draws its own samples from its own generator; the sampler validation has its own too.

# %% tags=["parameters"]
profile = "smoke"
output_root = "."
seed_set = 0
seed = 0  # data split and data order
mc_seeds = {"validate": 4, "moment": 1, "lognorm": 2, "small_outputs": 3}  # one generator per use
width = 64
configs = [["relu", 0.5], ["relu", 1.0], ["relu", 2.0], ["leaky_relu", 0.5], ["leaky_relu", 1.0],
           ["linear", 0.5], ["linear", 1.0]]
negative_slope = 0.01  # the authors' leaky ReLU slope
family_alpha = 0.001  # two_stage: family-wise false-failure rate of each theory family
moment_networks = 5000  # per sample (two samples pooled) x moment_depth per-layer samples of R
moment_depth = 100
lognorm_networks = 10000  # per sample (two samples pooled)
lognorm_depth = 100
validate_networks = 2761  # matrix-path networks per sample per activation (two samples pooled)
validate_depth = 50
validate_ratio = 8  # rotational networks per matrix-path network in the validation
validate_s = 1.0  # both samplers run at sigma_s(validate_s); other s by rescaling (R is 1-homogeneous in sigma)
failed_bias = {"z": 4.1937, "samples": 200000, "config": "leaky ReLU, s 0.5"}  # the earlier matrix-path failure
validate_power = 0.8  # the validation must find a bias of the failed size with at least this power
classical_tolerance = 1e-12  # float64 round-off (exact sigma_s against He, moment order 2)
small_output_t = 2.0  # "small output": log||x_L|| - log||x_0|| < -t
small_output_s = 1.0
small_output_networks = 20000
small_output_depth = 100
small_output_min_z = 5.0  # (P_He - P_s) / se must exceed this
sigma_widths = [16, 64, 256]
dataset = "mnist5k"
n_train = 4000
train_width = 64
train_depth = 20
train_s = 0.8
train_seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
epochs = 30
lr = 0.01
batch_size = 128
chance = 0.1  # 10 classes
train_margin = 0.0  # superiority margin of s-moment - Kaiming final test accuracy
train_effect = 0.01  # the improvement the power statement is for (the paper gives no accuracy numbers)
control_min_gain = 0.1  # Kaiming (positive control) median accuracy at least chance + this
device = "cpu"  # samplers draw and the MLPs train here ("cuda" on a GPU)
replot = False  # True: redraw the figures from the committed measurements (`make figures`)

# %%
import math
import time

import numpy as np
import torch
from scipy import stats

from initrepro.core.claims import Check, StageRecord
from initrepro.core.plotting import scheme_color, subplots
from initrepro.core.seeding import shift
from initrepro.core.verdicts import compare, pooled_critical_value, positive_control, seeds_needed, two_stage
from initrepro.data import load_dataset
from initrepro.init.dense import reinit_linear_
from initrepro.models import mlp
from initrepro.models.ensemble import Ensemble
from initrepro.studies.fractional import (gaussianity_z, ks_z, layer_moments, log_norm_ratios, moment_difference_z,
                                          moment_z, pooled_power, rotational_log_norms, rotational_log_ratios,
                                          samples_for_power, standardized_lognorm, two_sided_score,
                                          variance_difference_z)
from initrepro.theory.fractional import (he_sigma, lognorm_limit, sigma_s, sigma_s_closed_form,
                                         small_output_probability)
from initrepro.training import TrainConfig, train

seed = shift(seed, seed_set)
mc_seeds = {name: shift(value, seed_set) for name, value in mc_seeds.items()}
train_seeds = shift(train_seeds, seed_set)
torch.manual_seed(seed)
record = StageRecord("fractional_lognorm", profile, seed=seed, output_root=output_root, seed_set=seed_set,
                     replot=replot)
slope = {"relu": 0.0, "leaky_relu": negative_slope, "linear": 0.0}
configs = [(activation, float(s)) for activation, s in configs]
labels = [f"{activation} s={s:g}" for activation, s in configs]
activations = sorted({activation for activation, _ in configs})
# the classical scale each configuration's negative control uses (s = 2 of sigma_s)
classical = {"relu": "He", "leaky_relu": "He", "linear": "LeCun"}

# %% tags=["compute"]
train_set, test_set = load_dataset(dataset, seed=seed, n_train=n_train)  # fail early on missing data
seconds = {}

# %% [markdown]
# ## Precondition: the rotational sampler agrees with the matrix path
# Per sample and activation: `validate_networks` real networks of depth `validate_depth` (the
# matrix path) and `validate_ratio` times as many by the rotational sampler, both at
# sigma_s(`validate_s`); R under any other sigma is sigma / sigma_s(`validate_s`) times R. Tests,
# each a pooled two_stage family over two independent samples:
# - moments (for `fractional.moment_preserved`): two-sample z of E R^s, matrix path against
#   rotational, at every (activation, s) tested;
# - log-norms (for `fractional.lognorm_gaussian`): per activation, two-sample KS and a
#   two-sample z of the variance (the variance of a sum sees any dependence between layers)
#   of log||x_L|| - log||x_0|| at L = `validate_depth`.
# The sample size comes from power: a bias of the size that failed before (z = 4.19 on
# 2 x 10^5 per-layer samples, i.e. 0.0094 sd of R^s) is found with probability >= 80% at
# the family's Bonferroni critical value.

# %% tags=["compute"]
start, cpu_start = time.perf_counter(), time.process_time()
gen_validate = torch.Generator().manual_seed(mc_seeds["validate"])
effect = failed_bias["z"] / math.sqrt(failed_bias["samples"])  # bias in sd of R^s per sample
critical_moment = pooled_critical_value(family_alpha, len(configs))
n_matrix = 2 * validate_networks * validate_depth  # per-layer samples per activation, both samples
needed = samples_for_power(effect, critical_moment, validate_ratio, validate_power)
power = pooled_power(effect, n_matrix, validate_ratio * n_matrix, critical_moment)
power_failed_design = pooled_power(effect, failed_bias["samples"], math.inf, critical_moment)
validation = {"moment": [], "lognorm": []}


def validation_sample():
    """One independent sample of both samplers per activation: E R^s z-scores per configuration,
    then KS and variance z-scores of the log-norms per activation."""
    moment, ks, var = {}, {}, {}
    for activation in activations:
        sigma = sigma_s(width, validate_s, activation, slope[activation])
        args = (width, validate_depth, sigma, activation, slope[activation])
        matrix = log_norm_ratios(validate_networks, *args, generator=gen_validate, device=device)
        rotational = rotational_log_ratios(validate_ratio * validate_networks, *args, generator=gen_validate,
                                           device=device)
        for (act, s), label in zip(configs, labels):
            if act == activation:
                shift_log = math.log(sigma_s(width, s, act, slope[act]) / sigma)
                moment[label] = moment_difference_z(matrix + shift_log, rotational + shift_log, s)
        ks[activation] = ks_z(matrix.sum(1), rotational.sum(1))
        var[activation] = variance_difference_z(matrix.sum(1), rotational.sum(1))
    return moment, ks, var


samples = [validation_sample() for _ in range(2)]
sampler_moment = two_stage("matrix path - rotational sampler, E R^s (two-sample z)",
                           [samples[0][0][k]["z"] for k in labels], [samples[1][0][k]["z"] for k in labels],
                           alpha=family_alpha, labels=labels, precondition=True)
lognorm_labels = [f"{a} {t}" for a in activations for t in ("KS", "var")]
sampler_lognorm = two_stage(f"matrix path - rotational sampler, log||x_{validate_depth}|| (two-sample KS, variance z)",
                            [v for a in activations for v in (samples[0][1][a], two_sided_score(samples[0][2][a]))],
                            [v for a in activations for v in (samples[1][1][a], two_sided_score(samples[1][2][a]))],
                            alpha=family_alpha, one_sided=True, labels=lognorm_labels, precondition=True)
power_check = Check(f"power of the sampler validation to find the failed bias ({effect:.4f} sd of R^s) at "
                    f"|z| > {critical_moment:.2f}", power, ">=", validate_power, precondition=True,
                    note=f"{n_matrix} matrix-path and {validate_ratio * n_matrix} rotational per-layer samples per "
                         f"activation over both samples; {needed} matrix-path samples needed")
seconds["sampler validation"] = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}
validation_measured = {
    "failed_bias": {**failed_bias, "effect_sd": effect}, "critical_z": critical_moment, "power": power,
    "matrix_samples_needed": needed, "matrix_samples": n_matrix, "rotational_samples": validate_ratio * n_matrix,
    "power_of_the_failed_design": power_failed_design,
    "E R^s": {label: [samples[j][0][label] for j in range(2)] for label in labels}}
record.measure("sampler_validation", {"moment_z_pooled": sampler_moment.measured["z_pooled"],
                                      "moment_critical_z": sampler_moment.measured["critical_z"],
                                      "lognorm_z_pooled": sampler_lognorm.measured["z_pooled"],
                                      "lognorm_critical_z": sampler_lognorm.measured["critical_z"]})
print(f"validation: power {power:.3f} ({n_matrix} matrix-path samples per activation, {needed} needed); "
      f"{seconds['sampler validation']}")

# %% [markdown]
# ## Claim: the s-th moment is preserved layer to layer; He / LeCun's scale is not for s < 2
# One family of z-tests (E R^s - 1 under sigma_s, one per configuration) through
# `verdicts.two_stage`: two independent rotational samples, pooled, Bonferroni at 0.1%.
# Negative controls that can fail: under He / LeCun (s < 2) E R^s - 1 must lie below minus the
# family's critical value. Precondition: the sampler validation above (moments) and its power.
# The mean of R^s at every layer is kept for the figure (`layer_moments`: the same samples, the
# pooled test's mean is the mean of those per-layer means).

# %% tags=["compute"]
start, cpu_start = time.perf_counter(), time.process_time()
gen_moment = torch.Generator().manual_seed(mc_seeds["moment"])
per_layer = {label: {} for label in labels}  # label -> arm -> [(means, ses) per sample]


def moment_sample(i, sigma=None):
    activation, s = configs[i]
    a = slope[activation]
    arm = "sigma_s" if sigma is None else classical[activation]
    sigma = sigma_s(width, s, activation, a) if sigma is None else sigma
    log_r = rotational_log_ratios(moment_networks, width, moment_depth, sigma, activation, a, generator=gen_moment,
                                  device=device)
    per_layer[labels[i]].setdefault(arm, []).append(layer_moments(log_r, s))
    return moment_z(log_r, s)


moment_runs = [[moment_sample(i) for i in range(len(configs))] for _ in range(2)]
moment_ev = two_stage("E R^s - 1 under sigma_s", [r[2] for r in moment_runs[0]], [r[2] for r in moment_runs[1]],
                      alpha=family_alpha, labels=labels)
moment_table = {label: {"E R^s": [moment_runs[j][i][0] for j in range(2)], "se": [moment_runs[j][i][1] for j in range(2)]}
                for i, label in enumerate(labels)}
negative_checks = []
for i, (label, (activation, s)) in enumerate(zip(labels, configs)):
    if s < 2:  # at s = 2, sigma_s is He's / LeCun's scale
        mean_he, se_he, z_he = moment_sample(i, he_sigma(width, activation, slope[activation]))
        moment_table[label].update({"E R_He^s": mean_he, "se_He": se_he, "z_He": z_he})
        negative_checks.append(Check(f"{label}: z of E R^s - 1 under He/LeCun (negative control)", z_he, "<",
                                     -moment_ev.measured["critical_z"]))
seconds["moment"] = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}
record.measure("moment", {"per_config": moment_table, "z_pooled": moment_ev.measured["z_pooled"],
                          "critical_z": moment_ev.measured["critical_z"]})
# per layer: the mean of R^s over both samples' networks and its standard error
record.measure("moment_per_layer", {
    label: {arm: {"mean": np.mean([m for m, _ in runs], axis=0),
                  "se": np.sqrt(np.sum([np.square(se) for _, se in runs], axis=0)) / len(runs)}
            for arm, runs in arms.items()} for label, arms in per_layer.items()})
record.claim("fractional.moment_preserved", [power_check, sampler_moment, moment_ev, *negative_checks],
             measured={"per_config": moment_table, "sampler_validation": validation_measured},
             reason=f"{2 * moment_networks * moment_depth} i.i.d. per-layer samples of R per configuration over two "
                    f"samples, width {width}; negative controls: z under He/LeCun from "
                    f"{min(c.value for c in negative_checks):.1f} to {max(c.value for c in negative_checks):.1f}; "
                    f"sampler validation power {power:.2f} against a bias of {effect:.4f} sd of R^s (the failed "
                    f"design had {power_failed_design:.2f}).")

# %% [markdown]
# ## Claim: s = 2 recovers He and LeCun exactly; sigma_s against s, exact and closed form

# %% tags=["compute"]
widths_exact = [1, 2, 16, 64, 1024]
classical_error = max(
    max(abs(sigma_s(d, 2.0, "relu") ** 2 * d / 2 - 1),
        abs(sigma_s(d, 2.0, "leaky_relu", negative_slope) ** 2 * d * (1 + negative_slope ** 2) / 2 - 1),
        abs(sigma_s(d, 2.0, "linear") ** 2 * d - 1))
    for d in widths_exact)
s_grid = np.linspace(0.05, 2.0, 40)
record.measure("sigma_s", {"s": s_grid, "curves": {
    activation: {str(d): {"exact": [sigma_s(d, s, activation) ** 2 * d for s in s_grid],
                          "closed": [sigma_s_closed_form(d, s, activation) ** 2 * d for s in s_grid]}
                 for d in sigma_widths} for activation in ("relu", "linear")}})
classical_check = Check("max |sigma_2^2 / sigma_He^2 - 1| over widths and activations", classical_error, "<=",
                        classical_tolerance)
record.claim("fractional.recovers_classical", [classical_check], measured={"widths": widths_exact},
             reason=f"exact sigma_s at s = 2 against 2/d, 2/((1+a^2) d) and 1/d for d in {widths_exact}.")

# %% [markdown]
# ## Claim: the standardized log-norm is N(0, 1), with the explicit mean and variance
# Per configuration three z-tests on (log||x_L|| - log||x_0|| - L mu) / sqrt(L rho^2): mean
# (sqrt(M) mean), variance ((var - 1) / se, se from the sample fourth moment), KS shape (p-value
# as a two-sided z). The mean and variance are exact at every depth (sums of i.i.d. log R_k);
# the shape is the asymptotic part. All tests form one two_stage family on two independent
# samples, pooled. Precondition: the sampler validation above (log-norms).

# %% tags=["compute"]
start, cpu_start = time.perf_counter(), time.process_time()
gen_lognorm = torch.Generator().manual_seed(mc_seeds["lognorm"])
limits = {key: lognorm_limit(width, key[1], key[0], slope[key[0]]) for key in configs}


def lognorm_z(i):
    activation, s = configs[i]
    g = rotational_log_norms(lognorm_networks, width, lognorm_depth, sigma_s(width, s, activation, slope[activation]),
                             activation, slope[activation], generator=gen_lognorm, device=device)
    return standardized_lognorm(g, lognorm_depth, *limits[configs[i]])


tests = ("mean", "var", "ks")
standardized_runs = [{label: lognorm_z(i) for i, label in enumerate(labels)} for _ in range(2)]
scores = [[gaussianity_z(run[label])[t] for label in labels for t in tests] for run in standardized_runs]
gauss_ev = two_stage("standardized log-norm against N(0, 1)", scores[0], scores[1], alpha=family_alpha, one_sided=True,
                     labels=[f"{label} {t}" for label in labels for t in tests])
standardized = {label: torch.cat([run[label] for run in standardized_runs]) for label in labels}
gauss_table = {label: {"mu": limits[key][0], "rho2": limits[key][1], "mean_z": standardized[label].mean().item(),
                       "var_z": standardized[label].var().item(), "networks": len(standardized[label])}
               for label, key in zip(labels, configs)}
seconds["lognorm"] = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}
main = "relu s=1"  # the configuration of the quantile plot
hist_edges = np.linspace(-4, 4, 41)
z_main = np.sort(standardized[main].numpy())
probs = (np.arange(1, min(len(z_main), 1000) + 1) - 0.5) / min(len(z_main), 1000)
record.measure("lognorm", {
    "edges": hist_edges, "density": {label: np.histogram(z.numpy(), bins=hist_edges, density=True)[0]
                                     for label, z in standardized.items()},
    "networks": {label: len(z) for label, z in standardized.items()},
    "qq": {"config": main, "normal": stats.norm.ppf(probs), "measured": np.quantile(z_main, probs)},
    "z_pooled": gauss_ev.measured["z_pooled"], "critical_z": gauss_ev.measured["critical_z"]})
record.claim("fractional.lognorm_gaussian", [power_check, sampler_lognorm, gauss_ev],
             measured={"per_config": gauss_table,
                       "sampler_validation": {k: validation_measured[k] for k in
                                              ("matrix_samples", "rotational_samples", "power")}},
             reason=f"{2 * lognorm_networks} networks of width {width} and depth {lognorm_depth} per configuration "
                    f"over two samples (rotational sampler), validated against {2 * validate_networks} matrix-path "
                    f"networks of depth {validate_depth} per activation.")

# %% [markdown]
# ## Claim: small outputs are rarer than under He (by more than `small_output_min_z` standard errors)

# %% tags=["compute"]
start, cpu_start = time.perf_counter(), time.process_time()
gen_small = torch.Generator().manual_seed(mc_seeds["small_outputs"])
curves = {name: rotational_log_ratios(small_output_networks, width, small_output_depth, sigma,
                                      generator=gen_small, device=device).cumsum(dim=1)
          for name, sigma in (("sigma_s", sigma_s(width, small_output_s)), ("He", he_sigma(width)))}
p_small = {name: (g < -small_output_t).double().mean(0).numpy() for name, g in curves.items()}
p_s, p_he = p_small["sigma_s"][-1], p_small["He"][-1]
se = np.sqrt((p_s * (1 - p_s) + p_he * (1 - p_he)) / small_output_networks)
z_small = (p_he - p_s) / se
layers = np.arange(1, small_output_depth + 1)
record.measure("small_outputs", {
    "depth": layers, "monte_carlo": p_small, "se": se, "z": z_small,
    "gaussian_limit": {"He": small_output_probability(layers, width, small_output_t, sigma=he_sigma(width)),
                       "sigma_s": small_output_probability(layers, width, small_output_t, s=small_output_s)}})
# Three-way: decided only when |z| clears the registered threshold, either way.
small_decided = Check(f"|P_He - P_s| / se at depth {small_output_depth} (decided either way)", abs(z_small), ">",
                      small_output_min_z, precondition=True)
small_check = Check(f"(P_He - P_s) / se at depth {small_output_depth}", z_small, ">", small_output_min_z)
seconds["small outputs"] = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}
record.claim("fractional.fewer_small_outputs", [small_decided, small_check],
             measured={"p_small_sigma_s": p_s, "p_small_he": p_he, "t": small_output_t},
             reason=f"ReLU, s = {small_output_s}, width {width}: P(log||x_L|| - log||x_0|| < -{small_output_t}) at "
                    f"depth {small_output_depth} is {p_s:.3f} under sigma_s and {p_he:.3f} under He "
                    f"({small_output_networks} networks each).")

# %% [markdown]
# ## Claim: training can improve (reduced scale: the authors' 20-layer width-64 ReLU net)
# Paired design: for each seed, an s-moment net and a Kaiming net with the same biases, the
# same standard-normal weight draw (only the scale differs) and the same data order, trained
# together as one vectorized ensemble. Decided by `verdicts.compare` (superiority by
# `train_margin`, fixed before the run; the paper gives no accuracy numbers) with Kaiming as
# the positive control.

# %% tags=["compute"]
start, cpu_start = time.perf_counter(), time.process_time()
schemes = {"s-moment": ("fractional", {"s": train_s}), "Kaiming": ("kaiming", {})}
members = []
for run_seed in train_seeds:
    for scheme, kwargs in schemes.values():
        torch.manual_seed(run_seed)  # PyTorch's default biases, shared by the pair
        model = mlp(int(np.prod(train_set.input_shape)), train_width, train_depth, train_set.num_classes)
        members.append(reinit_linear_(model, scheme, generator=torch.Generator().manual_seed(run_seed), **kwargs))
cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, momentum=0.0, seed=seed, device=device)
history = train(Ensemble(members), train_set, test_set, cfg, desc=f"{len(members)} networks")
acc = np.array(history.test_acc).reshape(len(history.test_acc), len(train_seeds), len(schemes))
runs = {name: acc[:, :, i].T for i, name in enumerate(schemes)}  # (seeds, epochs)
final = {name: r[:, -1] for name, r in runs.items()}
seconds["training"] = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}
record.curve("test_accuracy", {f"{name} seed {s}": (history.epoch, r[k]) for name, r in runs.items()
                               for k, s in enumerate(train_seeds)}, x="epoch", y="test accuracy")
train_checks = [Check("ensemble members diverged (NaN loss: the shared training loop stopped)", int(history.diverged),
                      "==", 0, precondition=True),
                positive_control("Kaiming", final["Kaiming"], chance, control_min_gain),
                compare("s-moment", final["s-moment"], "Kaiming", final["Kaiming"], margin=train_margin,
                        superior=True, chance=chance, n_test=len(test_set), bounds=(0, 1),
                        paper_precision="no accuracy numbers in the paper or the authors' code")]
cmp = train_checks[-1].measured
sd_used = max(cmp["sd_diff"], cmp["sd_floor"])
train_power = {"sd_diff": cmp["sd_diff"], "effect": train_effect, "seeds_needed": seeds_needed(sd_used, train_effect),
               "seeds_run": len(train_seeds)}
record.measure("training", {"final_test_acc": final, "seeds": train_seeds,
                            "paired": {k: cmp[k] for k in ("mean_diff", "ci_low", "ci_high")}})
record.claim("fractional.training_improves", train_checks,
             measured={"final_test_acc": {k: v.tolist() for k, v in final.items()},
                       "power": train_power, "n_test": len(test_set),
                       "section_seconds": seconds},
             reason=f"{dataset} ({n_train} training images, {len(test_set)} test), {len(train_seeds)} paired seeds, "
                    f"{epochs} epochs, plain SGD lr {lr}, s = {train_s}; mean final accuracy "
                    f"{final['s-moment'].mean():.3f} (s-moment) and {final['Kaiming'].mean():.3f} (Kaiming); at this "
                    f"spread (sd {sd_used:.3f}) about {train_power['seeds_needed']} paired seeds would find an "
                    f"improvement of {train_effect:g} with 80% power.")

# %% [markdown]
# ## Figures, drawn from the measurements alone (`make figures` redraws them)
# R = ||x_k|| / ||x_(k-1)||: how much one layer scales the norm of its input. sigma_s is the
# weight scale of the s-moment scheme; He (ReLU, leaky ReLU) and LeCun (linear) are the
# classical scales, the same as sigma_s at s = 2.

# %%
per_layer = record.measurements["moment_per_layer"]
crit = record.measurements["moment"]["critical_z"]
ncols = min(4, len(labels))
nrows = math.ceil(len(labels) / ncols)
fig, axes = subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows), squeeze=False, sharex=True)
for ax, label in zip(axes.ravel(), labels):
    depth_axis = np.arange(1, len(per_layer[label]["sigma_s"]["mean"]) + 1)
    ours = per_layer[label]["sigma_s"]
    band = crit * np.asarray(ours["se"])
    ax.fill_between(depth_axis, 1 - band, 1 + band, color="0.85", label=f"tolerance (1 +- {crit:.2f} se)")
    ax.axhline(1.0, color="black", lw=1, label="expected: 1")
    ax.plot(depth_axis, ours["mean"], "o", ms=3, color=scheme_color("s-moment"), label="sigma_s")
    for arm, values in per_layer[label].items():
        if arm != "sigma_s":
            ax.plot(depth_axis, values["mean"], "v", ms=3, color=scheme_color(arm), label=f"{arm} (control)")
    ax.set_title(label.replace("_", " ").replace("s=", "moment order s = "), fontsize="small")
# one legend for the identical panels: in the spare panel where there is one, else below them
handles = {h.get_label(): h for ax in axes.ravel()[:len(labels)] for h in ax.get_legend_handles_labels()[0]}
spare = axes.ravel()[len(labels):]
(spare[0] if len(spare) else fig).legend(handles.values(), handles.keys(), fontsize="small",
                                          loc="center" if len(spare) else "outside lower center")
for ax in axes[-1]:
    ax.set_xlabel("layer k")
for ax in axes[:, 0]:
    ax.set_ylabel("mean of R^s over networks")
for ax in axes.ravel()[len(labels):]:
    ax.set_axis_off()
fig.suptitle(f"claim: under sigma_s the mean of R^s (R = ||x_k|| / ||x_(k-1)||, one layer's gain in norm) is 1 at "
             f"every layer; control: He / LeCun (s < 2) lie below\n(width {width}, {2 * moment_networks} networks per "
             f"layer; se: standard error of one layer's mean)")
record.figure(fig, "moment_per_layer.png", claims=["fractional.moment_preserved"])

# %%
moment = record.measurements["moment"]
validation_z = record.measurements["sampler_validation"]["moment_z_pooled"]
table = moment["per_config"]
x = np.arange(len(labels))
fig, (ax_z, ax_m) = subplots(1, 2, figsize=(12, 5.2))
ax_z.axhspan(-crit, crit, color="0.88", label=f"pass: |z| <= {crit:.2f} (0.1% family-wise)")
ax_z.plot(x, [moment["z_pooled"][k] for k in labels], "o", color=scheme_color("s-moment"),
          label="sigma_s: mean of R^s - 1, pooled z")
ax_z.plot(x, [validation_z[k] for k in labels], "D", color="0.4", mfc="none",
          label="precondition: real weight matrices vs fast sampler, pooled z")
controls = [i for i, k in enumerate(labels) if "z_He" in table[k]]
ax_z.plot(controls, [table[labels[i]]["z_He"] for i in controls], "v", color=scheme_color("He"),
          label=f"He / LeCun (negative control): must lie below {-crit:.2f}")
ax_z.axhline(-crit, color="black", ls="--", lw=1)
ax_z.axhline(0, color="black", lw=0.8)
ax_z.set(xticks=x, ylabel="z-score (standard errors from the expected 1)", title="the tests that decide the verdict")
ax_z.set_xticklabels(labels, rotation=30, ha="right")
ax_z.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
for j, (marker, name) in enumerate((("o", "sample 1"), ("s", "sample 2"))):
    mean = np.array([table[k]["E R^s"][j] for k in labels])
    err = crit * np.array([table[k]["se"][j] for k in labels])
    ax_m.errorbar(x + (j - 0.5) * 0.15, mean - 1, yerr=err, fmt=marker, color=scheme_color("s-moment"), capsize=3,
                  alpha=0.6 + 0.4 * j, label=f"sigma_s, {name} (bars: +-{crit:.2f} standard errors)")
ax_m.axhline(0, color="black", lw=1, label="expected: mean of R^s = 1")
ax_m.set(xticks=x, ylabel="mean of R^s minus 1 (all layers pooled)",
         title="sigma_s: the measured moments and their tolerance (He / LeCun: left)")
ax_m.set_xticklabels(labels, rotation=30, ha="right")
ax_m.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
record.figure(fig, "moment_preserved.png", claims=["fractional.moment_preserved"])

# %%
sigma_curves = record.measurements["sigma_s"]
fig, axes = subplots(1, 2, figsize=(10, 4))
for ax, (activation, by_width) in zip(axes, sigma_curves["curves"].items()):
    for k, (d, values) in enumerate(by_width.items()):
        line, = ax.plot(sigma_curves["s"], values["exact"], color=f"C{k}", label=f"width {d}, exact")
        ax.plot(sigma_curves["s"], values["closed"], "--", color=line.get_color(), label=f"width {d}, authors' 1/d form")
    name = "He" if activation == "relu" else "LeCun"
    ax.axvline(2.0, color="black", lw=0.8)
    ax.plot([2.0], [2.0 if activation == "relu" else 1.0], "*", ms=12, color=scheme_color(name),
            label=f"{name} at s = 2 (width x variance = {2 if activation == 'relu' else 1})")
    ax.set(xlabel="moment order s", ylabel="width x weight variance (d sigma_s^2)", title=activation)
    ax.legend(fontsize=7)
classical_value = next(c for c in record.claims if c["id"] == "fractional.recovers_classical")["checks"][0]["value"]
fig.suptitle(f"at s = 2, sigma_s is He / LeCun: largest relative error {classical_value:.1e} "
             f"(tolerance {classical_tolerance:g})")
record.figure(fig, "sigma_s.png", claims=["fractional.recovers_classical"])

# %%
lognorm = record.measurements["lognorm"]
fig, (ax_hist, ax_qq, ax_z) = subplots(1, 3, figsize=(15, 4.2))
grid = np.linspace(-4, 4, 200)
for k, label in enumerate(labels):
    ax_hist.stairs(lognorm["density"][label], lognorm["edges"], color=f"C{k}", label=label)
ax_hist.plot(grid, stats.norm.pdf(grid), "k", lw=2, label="standard normal")
ax_hist.set(xlabel="standardized log output norm, (log||x_L|| - log||x_0|| - L mu) / sqrt(L rho^2)",
            ylabel="density", title=f"width {width}, depth {lognorm_depth}, {2 * lognorm_networks} networks each")
ax_hist.xaxis.label.set_fontsize("small")
ax_hist.legend(fontsize=7)
qq = lognorm["qq"]
ax_qq.plot(qq["normal"], qq["measured"], ".", ms=3, color=scheme_color("s-moment"), label=qq["config"])
ax_qq.plot([-4.5, 4.5], [-4.5, 4.5], "k--", label="standard normal")
ax_qq.set(xlabel="standard normal quantile", ylabel="standardized log output norm quantile",
          title=f"quantile-quantile plot, {qq['config']}")
ax_qq.legend(fontsize=8)
gcrit = lognorm["critical_z"]
for k, test in enumerate(("mean", "var", "ks")):
    ax_z.plot(np.arange(len(labels)) + (k - 1) * 0.2, [lognorm["z_pooled"][f"{label} {test}"] for label in labels],
              "os^"[k], label={"mean": "mean = 0", "var": "variance = 1", "ks": "shape (KS)"}[test] + " test")
ax_z.axhline(gcrit, color="black", ls="--", lw=1, label=f"fail above {gcrit:.2f} (0.1% family-wise)")
ax_z.set(xticks=np.arange(len(labels)), ylabel="pooled score (large: not standard normal)",
         title="the tests that decide the verdict")
ax_z.set_xticklabels(labels, rotation=30, ha="right")
ax_z.legend(fontsize=7)
fig.suptitle("claim: log||x_L|| - log||x_0||, centred and scaled by the paper's per-layer mean mu and variance "
             "rho^2 of log R, is standard normal")
record.figure(fig, "lognorm_gaussian.png", claims=["fractional.lognorm_gaussian"])

# %%
small = record.measurements["small_outputs"]
p_s, p_he = small["monte_carlo"]["sigma_s"][-1], small["monte_carlo"]["He"][-1]
fig, ax = subplots(figsize=(6.5, 4.2))
for arm, name in (("He", "He"), ("sigma_s", f"sigma_s (s = {small_output_s:g})")):
    color = scheme_color("He" if arm == "He" else "s-moment")
    ax.plot(small["depth"], small["monte_carlo"][arm], ".", ms=4, color=color, label=f"{name}, simulated networks")
    ax.plot(small["depth"], small["gaussian_limit"][arm], color=color, label=f"{name}, Gaussian limit")
ax.errorbar([small["depth"][-1]], [p_he], yerr=[[small_output_min_z * small["se"]], [0]], fmt="none", color="black",
            capsize=4, label=f"He minus {small_output_min_z:g} standard errors (sigma_s must lie below)")
ax.set(xlabel="depth L", ylabel=f"fraction of networks with log||x_L|| - log||x_0|| < -{small_output_t:g}",
       title=f"ReLU, width {width}: at depth {small_output_depth}, {small['z']:.1f} standard errors apart "
             f"(needs > {small_output_min_z:g})")
ax.title.set_fontsize("small")
ax.yaxis.label.set_fontsize("small")
ax.legend(fontsize=7)
record.figure(fig, "small_outputs.png", claims=["fractional.fewer_small_outputs"])

# %%
training = record.measurements["training"]
fig, (ax, ax_d) = subplots(1, 2, figsize=(11, 4.2))
shown = set()
for series, (epochs_, accs) in record.curves["test_accuracy"]["series"].items():
    name = series.rsplit(" seed ", 1)[0]
    ax.plot(epochs_, accs, marker=".", lw=1, alpha=0.6, color=scheme_color(name), label=None if name in shown else name)
    shown.add(name)
ax.axhline(chance, color="grey", ls=":", label="chance")
ax.set(xlabel="epoch", ylabel="test accuracy",
       title=f"{train_depth}-layer ReLU MLP, width {train_width}, {dataset}, one line per seed")
ax.legend(fontsize=8)
diff = np.array(training["final_test_acc"]["s-moment"]) - np.array(training["final_test_acc"]["Kaiming"])
paired = training["paired"]
ax_d.plot(np.arange(len(diff)), diff, "o", color=scheme_color("s-moment"), alpha=0.6, label="one paired seed")
ax_d.errorbar([len(diff) + 0.5], [paired["mean_diff"]],
              yerr=[[paired["mean_diff"] - paired["ci_low"]], [paired["ci_high"] - paired["mean_diff"]]],
              fmt="D", color="black", capsize=5, label="mean and 95% CI")
ax_d.axhline(train_margin, color="black", ls="--", lw=1, label=f"margin {train_margin:g}: the CI must lie above")
ax_d.set_xticks(list(range(len(diff))) + [len(diff) + 0.5], [str(s) for s in training["seeds"]] + ["mean"])
ax_d.set(xlabel="paired seed", ylabel="final test accuracy, s-moment minus Kaiming",
         title=f"s = {train_s:g}: same weight draw, biases and data order per pair")
ax_d.legend(fontsize=8)
record.figure(fig, "training.png", claims=["fractional.training_improves"])

# %%
record.verdicts_figure()

# %% tags=["compute"]
record.write()
print(record.summary())
print({name: {k: round(v, 1) for k, v in value.items()} for name, value in seconds.items()})
