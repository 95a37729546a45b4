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

# %%
import math
import time

import numpy as np
import torch
from scipy import stats

from initrepro.core.claims import Check, StageRecord, derive_verdict
from initrepro.data import load_dataset
from initrepro.init.dense import reinit_linear_
from initrepro.studies.fractional import (gaussianity_z, ks_z, two_sided_score, log_norm_ratios, moment_difference_z, moment_z,
                               pooled_power, rotational_log_norms, rotational_log_ratios, samples_for_power,
                               standardized_lognorm, variance_difference_z)
from initrepro.models import mlp
from initrepro.models.ensemble import Ensemble
from initrepro.core.plotting import subplots
from initrepro.core.seeding import shift
from initrepro.theory.fractional import (he_sigma, lognorm_limit, sigma_s, sigma_s_closed_form,
                                         small_output_probability)
from initrepro.training import TrainConfig, train
from initrepro.core.verdicts import compare, pooled_critical_value, positive_control, seeds_needed, two_stage

seed = shift(seed, seed_set)
mc_seeds = {name: shift(value, seed_set) for name, value in mc_seeds.items()}
train_seeds = shift(train_seeds, seed_set)
torch.manual_seed(seed)
record = StageRecord("fractional_lognorm", profile, seed=seed, output_root=output_root, seed_set=seed_set)
train_set, test_set = load_dataset(dataset, seed=seed, n_train=n_train)  # fail early on missing data
slope = {"relu": 0.0, "leaky_relu": negative_slope, "linear": 0.0}
configs = [(activation, float(s)) for activation, s in configs]
labels = [f"{activation} s={s:g}" for activation, s in configs]
activations = sorted({activation for activation, _ in configs})
seconds = {}


def verdict_of(*evidence):
    """The verdict the claim's checks imply (for figure titles; the record derives the same)."""
    return derive_verdict([c for e in evidence for c in (e.checks if hasattr(e, "checks") else [e])])

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

# %%
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
        matrix = log_norm_ratios(validate_networks, *args, generator=gen_validate)
        rotational = rotational_log_ratios(validate_ratio * validate_networks, *args, generator=gen_validate)
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
print(f"validation: power {power:.3f} ({n_matrix} matrix-path samples per activation, {needed} needed); "
      f"{seconds['sampler validation']}")

# %% [markdown]
# ## Claim: the s-th moment is preserved layer to layer; He / LeCun's scale is not for s < 2
# One family of z-tests (E R^s - 1 under sigma_s, one per configuration) through
# `verdicts.two_stage`: two independent rotational samples, pooled, Bonferroni at 0.1%.
# Negative controls that can fail: under He / LeCun (s < 2) E R^s - 1 must lie below minus the
# family's critical value. Precondition: the sampler validation above (moments) and its power.

# %%
start, cpu_start = time.perf_counter(), time.process_time()
gen_moment = torch.Generator().manual_seed(mc_seeds["moment"])


def moment_sample(i, sigma=None):
    activation, s = configs[i]
    a = slope[activation]
    sigma = sigma_s(width, s, activation, a) if sigma is None else sigma
    return moment_z(rotational_log_ratios(moment_networks, width, moment_depth, sigma, activation, a,
                                          generator=gen_moment), s)


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
moment_verdict = verdict_of(power_check, sampler_moment, moment_ev, *negative_checks)

crit = moment_ev.measured["critical_z"]
fig, (ax_m, ax_v) = subplots(1, 2, figsize=(11, 4.2))
x = np.arange(len(labels))
for j, (marker, name) in enumerate((("o", "sample 1"), ("s", "sample 2"))):
    mean = np.array([moment_table[k]["E R^s"][j] for k in labels])
    se = np.array([moment_table[k]["se"][j] for k in labels])
    ax_m.errorbar(x + (j - 0.5) * 0.15, mean - 1, yerr=crit * se, fmt=marker, color="C0", capsize=3,
                  label=f"sigma_s, {name} (bars: +-{crit:.2f} se)")
he_x = [i for i, k in enumerate(labels) if "E R_He^s" in moment_table[k]]
ax_m.plot(he_x, [moment_table[labels[i]]["E R_He^s"] - 1 for i in he_x], "v", color="C3",
          label="He / LeCun (negative control)")
ax_m.axhline(0, color="k", lw=1, label="claim: E R^s = 1")
ax_m.set_yscale("symlog", linthresh=1e-4)
ax_m.set_ylim(-0.03, 0.01)  # He / LeCun lie near -0.01
ax_m.set(xticks=x, ylabel="E R^s - 1 (per layer, R = ||x_k|| / ||x_{k-1}||)")
ax_m.set_xticklabels(labels, rotation=30, ha="right")
ax_m.legend(fontsize=7, loc="lower left")
for name, ev, marker in (("E R^s - 1 under sigma_s", moment_ev, "o"),
                         ("matrix path - rotational, E R^s", sampler_moment, "D")):
    ax_v.plot(x, [ev.measured["z_pooled"][k] for k in labels], marker, label=f"{name} (pooled z)")
ax_v.axhspan(-crit, crit, color="0.9", label=f"pass: |z| <= {crit:.2f} (0.1% family-wise)")
ax_v.set(xticks=x, ylabel="pooled z of two independent samples", ylim=(-1.3 * crit, 1.3 * crit))
ax_v.set_xticklabels(labels, rotation=30, ha="right")
ax_v.legend(fontsize=7)
fig.suptitle(f"fractional.moment_preserved: sigma_s keeps E||x_k||^s = ||x_(k-1)||^s, He/LeCun do not (s < 2) "
             f"-- {moment_verdict.replace('_', ' ')}", fontsize=10)
fig_moment = record.figure(fig, "moment_preserved.png")
record.claim("fractional.moment_preserved", [power_check, sampler_moment, moment_ev, *negative_checks],
             figures=[fig_moment],
             measured={"per_config": moment_table, "sampler_validation": validation_measured},
             reason=f"{2 * moment_networks * moment_depth} i.i.d. per-layer samples of R per configuration over two "
                    f"samples, width {width}; negative controls: z under He/LeCun from "
                    f"{min(c.value for c in negative_checks):.1f} to {max(c.value for c in negative_checks):.1f}; "
                    f"sampler validation power {power:.2f} against a bias of {effect:.4f} sd of R^s (the failed "
                    f"design had {power_failed_design:.2f}).")

# %% [markdown]
# ## Claim: s = 2 recovers He and LeCun exactly; sigma_s against s, exact and closed form

# %%
widths_exact = [1, 2, 16, 64, 1024]
classical_error = max(
    max(abs(sigma_s(d, 2.0, "relu") ** 2 * d / 2 - 1),
        abs(sigma_s(d, 2.0, "leaky_relu", negative_slope) ** 2 * d * (1 + negative_slope ** 2) / 2 - 1),
        abs(sigma_s(d, 2.0, "linear") ** 2 * d - 1))
    for d in widths_exact)

s_grid = np.linspace(0.05, 2.0, 40)
fig, axes = subplots(1, 2, figsize=(10, 4), sharey=False)
for ax, activation in zip(axes, ["relu", "linear"]):
    for d in sigma_widths:
        exact = [sigma_s(d, s, activation) ** 2 * d for s in s_grid]
        closed = [sigma_s_closed_form(d, s, activation) ** 2 * d for s in s_grid]
        line, = ax.plot(s_grid, exact, label=f"d = {d}, exact")
        ax.plot(s_grid, closed, "--", color=line.get_color(), label=f"d = {d}, authors' 1/d form")
    ax.set(xlabel="moment order s", ylabel="d * sigma_s^2", title=f"{activation}")
axes[0].legend(fontsize=8)
classical_check = Check("max |sigma_2^2 / sigma_He^2 - 1| over widths and activations", classical_error, "<=",
                        classical_tolerance)
for ax in axes:
    ax.axvline(2.0, color="k", lw=0.8)
    ax.plot([2.0], [2.0 if ax is axes[0] else 1.0], "k*", ms=10, label="He (2) / LeCun (1) at s = 2")
fig.suptitle(f"fractional.recovers_classical: sigma_2 is He / LeCun -- {verdict_of(classical_check).replace('_', ' ')} "
             f"(max relative error {classical_error:.1e} <= {classical_tolerance:g})", fontsize=10)
fig_sigma = record.figure(fig, "sigma_s.png")
record.claim("fractional.recovers_classical", [classical_check],
             figures=[fig_sigma], measured={"widths": widths_exact},
             reason=f"exact sigma_s at s = 2 against 2/d, 2/((1+a^2) d) and 1/d for d in {widths_exact}.")

# %% [markdown]
# ## Claim: the standardized log-norm is N(0, 1), with the explicit mean and variance
# Per configuration three z-tests on (log||x_L|| - log||x_0|| - L mu) / sqrt(L rho^2): mean
# (sqrt(M) mean), variance ((var - 1) / se, se from the sample fourth moment), KS shape (p-value
# as a two-sided z). The mean and variance are exact at every depth (sums of i.i.d. log R_k);
# the shape is the asymptotic part. All tests form one two_stage family on two independent
# samples, pooled. Precondition: the sampler validation above (log-norms).

# %%
start, cpu_start = time.perf_counter(), time.process_time()
gen_lognorm = torch.Generator().manual_seed(mc_seeds["lognorm"])
limits = {key: lognorm_limit(width, key[1], key[0], slope[key[0]]) for key in configs}


def lognorm_z(i):
    activation, s = configs[i]
    g = rotational_log_norms(lognorm_networks, width, lognorm_depth, sigma_s(width, s, activation, slope[activation]),
                             activation, slope[activation], generator=gen_lognorm)
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
lognorm_verdict = verdict_of(power_check, sampler_lognorm, gauss_ev)

main = "relu s=1"
fig, (ax_hist, ax_qq) = subplots(1, 2, figsize=(10, 4))
grid = np.linspace(-4, 4, 200)
for label in labels:
    ax_hist.hist(standardized[label].numpy(), bins=np.linspace(-4, 4, 41), density=True, histtype="step", label=label)
ax_hist.plot(grid, stats.norm.pdf(grid), "k", lw=2, label="N(0, 1)")
ax_hist.set(xlabel="(log||x_L|| - log||x_0|| - L mu) / sqrt(L rho^2)", ylabel="density",
            title=f"width {width}, depth {lognorm_depth}, {2 * lognorm_networks} networks each")
ax_hist.legend(fontsize=7)
z_main = np.sort(standardized[main].numpy())
theoretical = stats.norm.ppf((np.arange(1, len(z_main) + 1) - 0.5) / len(z_main))
ax_qq.plot(theoretical, z_main, ".", ms=2)
ax_qq.plot([-4.5, 4.5], [-4.5, 4.5], "k--")
ax_qq.set(xlabel="N(0, 1) quantile", ylabel="standardized log-norm quantile", title=f"QQ plot, {main}")
fig.suptitle(f"fractional.lognorm_gaussian: (log||x_L|| - L mu) / sqrt(L rho^2) is N(0, 1) -- "
             f"{lognorm_verdict.replace('_', ' ')} (max pooled |z| {max(abs(v) for v in gauss_ev.measured['z_pooled'].values()):.2f} "
             f"against {gauss_ev.measured['critical_z']:.2f})", fontsize=10)
fig_gauss = record.figure(fig, "lognorm_gaussian.png")
record.claim("fractional.lognorm_gaussian", [power_check, sampler_lognorm, gauss_ev], figures=[fig_gauss],
             measured={"per_config": gauss_table,
                       "sampler_validation": {k: validation_measured[k] for k in
                                              ("matrix_samples", "rotational_samples", "power")}},
             reason=f"{2 * lognorm_networks} networks of width {width} and depth {lognorm_depth} per configuration "
                    f"over two samples (rotational sampler), validated against {2 * validate_networks} matrix-path "
                    f"networks of depth {validate_depth} per activation.")

# %% [markdown]
# ## Claim: small outputs are rarer than under He (by more than `small_output_min_z` standard errors)

# %%
start, cpu_start = time.perf_counter(), time.process_time()
gen_small = torch.Generator().manual_seed(mc_seeds["small_outputs"])
curves = {name: rotational_log_ratios(small_output_networks, width, small_output_depth, sigma,
                                      generator=gen_small).cumsum(dim=1)
          for name, sigma in (("sigma_s", sigma_s(width, small_output_s)), ("He", he_sigma(width)))}
p_small = {name: (g < -small_output_t).double().mean(0).numpy() for name, g in curves.items()}
p_s, p_he = p_small["sigma_s"][-1], p_small["He"][-1]
se = np.sqrt((p_s * (1 - p_s) + p_he * (1 - p_he)) / small_output_networks)
z_small = (p_he - p_s) / se

layers = np.arange(1, small_output_depth + 1)
fig, ax = subplots(figsize=(6, 4))
ax.plot(layers, p_small["He"], ".", ms=3, color="C0", label="He, Monte Carlo")
ax.plot(layers, small_output_probability(layers, width, small_output_t, sigma=he_sigma(width)), color="C0",
        label="He, Gaussian limit")
ax.plot(layers, p_small["sigma_s"], ".", ms=3, color="C1", label=f"sigma_s (s = {small_output_s}), Monte Carlo")
ax.plot(layers, small_output_probability(layers, width, small_output_t, s=small_output_s), color="C1",
        label=f"sigma_s (s = {small_output_s}), Gaussian limit")
# Three-way: decided only when |z| clears the registered threshold, either way.
small_decided = Check(f"|P_He - P_s| / se at depth {small_output_depth} (decided either way)", abs(z_small), ">",
                      small_output_min_z, precondition=True)
small_check = Check(f"(P_He - P_s) / se at depth {small_output_depth}", z_small, ">", small_output_min_z)
ax.errorbar([small_output_depth], [p_he], yerr=[small_output_min_z * se], fmt="none", color="k", capsize=4,
            label=f"P_He -+ {small_output_min_z:g} se (P_s must lie below)")
ax.set(xlabel="depth L", ylabel=f"P(log||x_L|| - log||x_0|| < -{small_output_t})",
       title=f"fractional.fewer_small_outputs (ReLU, width {width}): {verdict_of(small_decided, small_check).replace('_', ' ')}\n"
             f"(P_He - P_s) / se = {z_small:.1f} at depth {small_output_depth}, threshold {small_output_min_z:g}",
       )
ax.title.set_fontsize(9)
ax.legend(fontsize=8)
fig_small = record.figure(fig, "small_outputs.png")
seconds["small outputs"] = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}
record.claim("fractional.fewer_small_outputs", [small_decided, small_check],
             figures=[fig_small], measured={"p_small_sigma_s": p_s, "p_small_he": p_he, "t": small_output_t},
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

# %%
start, cpu_start = time.perf_counter(), time.process_time()
schemes = {"s-moment": ("fractional", {"s": train_s}), "Kaiming": ("kaiming", {})}
members = []
for run_seed in train_seeds:
    for scheme, kwargs in schemes.values():
        torch.manual_seed(run_seed)  # PyTorch's default biases, shared by the pair
        model = mlp(int(np.prod(train_set.input_shape)), train_width, train_depth, train_set.num_classes)
        members.append(reinit_linear_(model, scheme, generator=torch.Generator().manual_seed(run_seed), **kwargs))
cfg = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, momentum=0.0, seed=seed)
history = train(Ensemble(members), train_set, test_set, cfg, desc=f"{len(members)} networks")
acc = np.array(history.test_acc).reshape(len(history.test_acc), len(train_seeds), len(schemes))
runs = {name: acc[:, :, i].T for i, name in enumerate(schemes)}  # (seeds, epochs)
final = {name: r[:, -1] for name, r in runs.items()}
seconds["training"] = {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu_start}
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

fig, (ax, ax_d) = subplots(1, 2, figsize=(11, 4))
for name, r in runs.items():
    epochs_axis = np.arange(1, r.shape[1] + 1)
    ax.plot(epochs_axis, r.mean(0), label=f"{name} (mean of {len(r)} seeds)")
    ax.fill_between(epochs_axis, r.min(0), r.max(0), alpha=0.2, label=f"{name} (min to max)")
ax.set(xlabel="epoch", ylabel="test accuracy", title=f"{train_depth}-layer ReLU MLP, width {train_width}, {dataset}")
ax.legend(fontsize=8)
diff = final["s-moment"] - final["Kaiming"]
ax_d.plot(np.arange(len(diff)), diff, "o", label="per seed")
ax_d.axhline(train_margin, color="k", lw=1, label=f"superiority margin {train_margin:g}")
ax_d.axhspan(cmp["ci_low"], cmp["ci_high"], color="C1", alpha=0.3,
             label=f"95% CI {cmp['ci_low']:.3f} to {cmp['ci_high']:.3f}")
ax_d.axhline(cmp["mean_diff"], color="C1", label=f"mean {cmp['mean_diff']:.3f}")
ax_d.set(xlabel="paired seed", ylabel="final test accuracy, s-moment - Kaiming")
ax_d.legend(fontsize=8)
fig.suptitle(f"fractional.training_improves: s-moment (s = {train_s}) beats Kaiming -- "
             f"{verdict_of(*train_checks).replace('_', ' ')}", fontsize=10)
fig_train = record.figure(fig, "training.png")
record.claim("fractional.training_improves", train_checks,
             figures=[fig_train], measured={"final_test_acc": {k: v.tolist() for k, v in final.items()},
                                            "power": train_power, "n_test": len(test_set),
                                            "section_seconds": seconds},
             reason=f"{dataset} ({n_train} training images, {len(test_set)} test), {len(train_seeds)} paired seeds, "
                    f"{epochs} epochs, plain SGD lr {lr}, s = {train_s}; mean final accuracy "
                    f"{final['s-moment'].mean():.3f} (s-moment) and {final['Kaiming'].mean():.3f} (Kaiming); at this "
                    f"spread (sd {sd_used:.3f}) about {train_power['seeds_needed']} paired seeds would find an "
                    f"improvement of {train_effect:g} with 80% power.")

# %%
record.write()
print(record.summary())
print({name: {k: round(v, 1) for k, v in value.items()} for name, value in seconds.items()})
