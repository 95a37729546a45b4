import math

import numpy as np
import pytest
import torch

from initrepro.init import fractional_moment_normal_
from initrepro.init.dense import reinit_linear_
from initrepro.studies.fractional import (gaussianity_z, ks_z, layer_moments, log_norm_ratios, moment_z,
                                         rotational_log_norms, rotational_log_ratios, standardized_lognorm)
from initrepro.models import mlp
from initrepro.theory.fractional import he_sigma, lognorm_limit, sigma_s, sigma_s_closed_form


@pytest.mark.parametrize("d", [1, 2, 7, 64, 1000])
def test_s2_is_he_and_lecun_exactly(d):
    assert sigma_s(d, 2.0, "relu") ** 2 == pytest.approx(2 / d, rel=1e-12)
    assert sigma_s(d, 2.0, "linear") ** 2 == pytest.approx(1 / d, rel=1e-12)
    assert sigma_s(d, 2.0, "leaky_relu", 0.2) ** 2 == pytest.approx(2 / (1.04 * d), rel=1e-12)


def test_relu_exact_value_at_width_one():
    # d = 1: R^2 = sigma^2 chi^2_1 with probability 1/2, else 0; E|z|^s = 2^(s/2) G((1+s)/2) / sqrt(pi)
    s = 1.0
    moment = 0.5 * 2 ** (s / 2) * math.gamma((1 + s) / 2) / math.sqrt(math.pi)
    assert sigma_s(1, s) == pytest.approx(moment ** (-1 / s), rel=1e-12)


@pytest.mark.parametrize("s", [0.3, 1.0, 1.7])
def test_leaky_interpolates_relu_and_linear(s):
    assert sigma_s(64, s, "leaky_relu", 1e-9) == pytest.approx(sigma_s(64, s, "relu"), rel=1e-9)
    assert sigma_s(64, s, "leaky_relu", 1 - 1e-9) == pytest.approx(sigma_s(64, s, "linear"), rel=1e-6)
    assert lognorm_limit(64, s, "leaky_relu", 1e-9)[1] == pytest.approx(lognorm_limit(64, s, "relu")[1], rel=1e-6)


@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_authors_closed_form_is_close_for_wide_layers(activation):
    for s in (0.5, 1.0, 1.5):
        assert sigma_s_closed_form(256, s, activation) == pytest.approx(sigma_s(256, s, activation), rel=5e-4)


def test_smaller_s_means_larger_scale_than_he():
    assert sigma_s(64, 0.5) > sigma_s(64, 1.0) > sigma_s(64, 2.0) == pytest.approx(he_sigma(64))


def test_rho2_does_not_depend_on_s_and_matches_large_width_limit():
    assert lognorm_limit(64, 0.5)[1] == pytest.approx(lognorm_limit(64, 2.0)[1])
    assert lognorm_limit(4096, 1.0)[1] * 4096 == pytest.approx(5 / 4, rel=2e-3)
    assert lognorm_limit(4096, 1.0, "linear")[1] * 4096 == pytest.approx(1 / 2, rel=2e-3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(d=0, s=1.0), "width d"), (dict(d=8, s=0.0), "moment order s"), (dict(d=8, s=2.5), "moment order s"),
    (dict(d=8, s=1.0, activation="gelu"), "activation"),
    (dict(d=8, s=1.0, activation="leaky_relu", negative_slope=1.0), "negative_slope"),
    (dict(d=8, s=1.0, activation="leaky_relu", negative_slope=-0.1), "negative_slope"),
])
def test_bad_arguments_name_the_parameter(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sigma_s(**kwargs)


def test_init_fills_with_sigma_s_and_is_seeded():
    w = torch.empty(512, 512)
    fractional_moment_normal_(w, 0.8, generator=torch.Generator().manual_seed(0))
    assert w.std().item() == pytest.approx(sigma_s(512, 0.8), rel=0.01)
    again = fractional_moment_normal_(torch.empty(512, 512), 0.8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(w, again)
    with pytest.raises(ValueError, match="2-D"):
        fractional_moment_normal_(torch.empty(3, 3, 3), 1.0)
    with pytest.raises(ValueError, match="moment order s"):
        fractional_moment_normal_(torch.empty(3, 3), 3.0)


@pytest.mark.parametrize("sampler", [log_norm_ratios, rotational_log_ratios])
@pytest.mark.parametrize("activation, a", [("relu", 0.0), ("leaky_relu", 0.3), ("linear", 0.0)])
def test_monte_carlo_preserves_the_moment_and_matches_the_limit(sampler, activation, a):
    s, d, depth = 0.7, 16, 50
    r = sampler(400, d, depth, sigma_s(d, s, activation, a), activation, a, generator=torch.Generator().manual_seed(1))
    assert r.shape == (400, depth) and r.dtype == torch.float64
    assert abs(moment_z(r, s)[2]) < 4
    mu, rho2 = lognorm_limit(d, s, activation, a)
    z = standardized_lognorm(r.sum(1), depth, mu, rho2)
    assert abs(z.mean().item()) * math.sqrt(len(z)) < 4
    alive = r[torch.isfinite(r).all(1)]  # a ReLU layer dies with probability 2^-16
    assert len(alive) >= 0.99 * len(r) and abs(alive.var().item() / rho2 - 1) < 0.05


def test_he_scale_fails_the_fractional_moment():
    for sampler in (log_norm_ratios, rotational_log_ratios):
        r = sampler(400, 16, 50, he_sigma(16), generator=torch.Generator().manual_seed(2))
        assert moment_z(r, 0.5)[2] < -4


@pytest.mark.parametrize("activation, a", [("relu", 0.0), ("leaky_relu", 0.2), ("linear", 0.0)])
def test_rotational_sampler_matches_the_matrix_path_two_sample_ks(activation, a):
    # Same law: KS two-sample tests on per-layer log R and on log-norms at depth 20 (fixed seed;
    # |z| < 4 is a 6e-5 two-sided level per test).
    gen = torch.Generator().manual_seed(3)
    d, depth, sigma = 16, 20, sigma_s(16, 1.0, activation, a)
    matrix = log_norm_ratios(1500, d, depth, sigma, activation, a, generator=gen)
    rotational = rotational_log_ratios(1500, d, depth, sigma, activation, a, generator=gen)
    assert abs(ks_z(matrix.flatten(), rotational.flatten())) < 4
    assert abs(ks_z(matrix.sum(1), rotational.sum(1))) < 4


def test_ks_two_sample_detects_a_wrong_scale():
    gen = torch.Generator().manual_seed(4)
    matrix = log_norm_ratios(1500, 16, 20, sigma_s(16, 1.0), generator=gen)
    wrong = rotational_log_ratios(1500, 16, 20, 1.05 * sigma_s(16, 1.0), generator=gen)
    assert ks_z(matrix.sum(1), wrong.sum(1)) > 6


def test_rotational_log_norms_are_the_sums_seeded_and_chunk_independent(monkeypatch):
    import initrepro.studies.fractional as lognorm

    args = (300, 8, 40, sigma_s(8, 1.0, "linear"), "linear")
    sums = rotational_log_norms(*args, generator=torch.Generator().manual_seed(5))
    ratios = rotational_log_ratios(*args, generator=torch.Generator().manual_seed(5))
    assert sums.shape == (300,) and torch.allclose(sums, ratios.sum(1))
    assert torch.equal(sums, rotational_log_norms(*args, generator=torch.Generator().manual_seed(5)))
    monkeypatch.setattr(lognorm, "CHUNK_NORMALS", 8 * 40 * 7)  # 43 chunks of 7 networks
    torch.set_num_threads(1)
    try:
        chunked = rotational_log_norms(*args, generator=torch.Generator().manual_seed(5))
    finally:
        torch.set_num_threads(2)
    assert chunked.shape == (300,)
    rho2 = lognorm_limit(8, 1.0, "linear")[1]
    assert abs(chunked.mean() - sums.mean()) < 5 * math.sqrt(2 * 40 * rho2 / 300)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_networks=0), "num_networks"), (dict(depth=0), "depth"), (dict(sigma=0.0), "sigma"),
    (dict(width=0), "width"), (dict(activation="tanh"), "activation"),
])
def test_rotational_sampler_bad_arguments(kwargs, match):
    args = {"num_networks": 2, "width": 4, "depth": 3, "sigma": 0.5, **kwargs}
    with pytest.raises(ValueError, match=match):
        rotational_log_ratios(**args)


def test_gaussianity_z_is_calibrated_and_detects_departures():
    rng = np.random.default_rng(0)
    ok = gaussianity_z(torch.from_numpy(rng.standard_normal(20000)))
    assert max(abs(v) for v in ok.values()) < 4
    assert gaussianity_z(torch.from_numpy(1.1 * rng.standard_normal(20000)))["var"] > 6
    assert gaussianity_z(torch.from_numpy(rng.standard_normal(20000) + 0.05))["mean"] > 4
    assert gaussianity_z(torch.from_numpy(rng.exponential(size=20000) - 1))["ks"] > 6
    # heavy tails: the variance test uses the sample's fourth moment, so it stays calibrated
    t = rng.standard_t(5, size=(200, 5000)) / math.sqrt(5 / 3)
    assert np.mean([abs(gaussianity_z(torch.from_numpy(row))["var"]) > 2.576 for row in t]) < 0.04


def test_dead_relu_networks_give_minus_inf_and_are_dropped():
    for sampler in (log_norm_ratios, rotational_log_ratios):
        r = sampler(2000, 1, 3, 1.0, generator=torch.Generator().manual_seed(0))
        dead = torch.isinf(r).any(1)
        assert 0 < dead.float().mean() < 1
        assert len(standardized_lognorm(r.sum(1), 3, *lognorm_limit(1, 1.0))) == (~dead).sum()


def test_reinit_linear_uses_the_named_scheme():
    model = mlp(784, 64, 20, 10)
    reinit_linear_(model, "fractional", s=0.8, generator=torch.Generator().manual_seed(0))
    hidden = [m.weight for m in model if isinstance(m, torch.nn.Linear)][1:-1]
    assert torch.cat([w.flatten() for w in hidden]).std().item() == pytest.approx(sigma_s(64, 0.8), rel=0.02)
    with pytest.raises(ValueError, match="scheme"):
        reinit_linear_(model, "zeros")


def test_paper_profile_model_takes_one_step_on_mnist_shaped_input():
    model = reinit_linear_(mlp(784, 64, 20, 10), "fractional", s=0.8)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(128, 1, 28, 28)), torch.randint(0, 10, (128,)))
    loss.backward()
    opt.step()
    assert np.isfinite(loss.item())


# --- the sampler validation (issue 13 item 8) ------------------------------------------------

def test_matrix_path_is_thread_and_chunk_independent(monkeypatch):
    import initrepro.studies.fractional as lognorm

    args = (40, 8, 6, sigma_s(8, 1.0), "relu")
    ref = log_norm_ratios(*args, generator=torch.Generator().manual_seed(7))
    monkeypatch.setattr(lognorm, "MATRIX_CHUNK_NETWORKS", 256)
    torch.set_num_threads(1)
    try:
        again = log_norm_ratios(*args, generator=torch.Generator().manual_seed(7))
    finally:
        torch.set_num_threads(2)
    assert torch.equal(ref, again)
    monkeypatch.setattr(lognorm, "MATRIX_CHUNK_NETWORKS", 7)  # 6 chunks, each its own generator
    chunked = log_norm_ratios(*args, generator=torch.Generator().manual_seed(7))
    assert chunked.shape == (40, 6) and torch.isfinite(chunked).all()


def test_moment_difference_z_is_calibrated_and_sees_a_small_scale_error():
    from initrepro.studies.fractional import moment_difference_z

    gen = torch.Generator().manual_seed(8)
    d, sigma, s = 16, sigma_s(16, 0.5, "leaky_relu", 0.01), 0.5
    z_null = [moment_difference_z(rotational_log_ratios(2000, d, 10, sigma, "leaky_relu", 0.01, generator=gen),
                                  rotational_log_ratios(2000, d, 10, sigma, "leaky_relu", 0.01, generator=gen), s)["z"]
              for _ in range(40)]
    assert abs(np.mean(z_null)) < 0.6 and 0.6 < np.std(z_null) < 1.5
    # a 1% scale error (E R^s off by about 0.5%) between two samples of 10^5 is about 9 se away
    a = rotational_log_ratios(10000, d, 10, sigma, "leaky_relu", 0.01, generator=gen)
    b = rotational_log_ratios(10000, d, 10, 1.01 * sigma, "leaky_relu", 0.01, generator=gen)
    assert moment_difference_z(a, b, s)["z"] < -5


def test_variance_difference_z_sees_dependence_between_layers():
    from initrepro.studies.fractional import variance_difference_z

    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((20000, 20)), rng.standard_normal((20000, 20))
    assert abs(variance_difference_z(x.sum(1), y.sum(1))) < 4
    y[:, 1:] += 0.1 * y[:, :-1]  # correlated neighbouring layers: the sum's variance grows by about 20%
    assert variance_difference_z(x.sum(1), y.sum(1)) < -8


def test_pooled_power_matches_a_simulation_and_sizes_the_smoke_validation():
    import yaml

    from initrepro.studies.fractional import pooled_power, samples_for_power
    from initrepro.core.verdicts import pooled_critical_value

    crit = pooled_critical_value(0.001, 7)
    # simulation of the pooled test: two stages, each a two-sample z with n_a, n_b per stage
    rng = np.random.default_rng(10)
    effect, n_a, ratio = 0.05, 6000, 4
    ncp_stage = effect / math.sqrt(1 / n_a + 1 / (ratio * n_a))
    pooled = (rng.normal(ncp_stage, 1, 20000) + rng.normal(ncp_stage, 1, 20000)) / math.sqrt(2)
    simulated = np.mean(np.abs(pooled) > crit)
    assert simulated == pytest.approx(pooled_power(effect, 2 * n_a, 2 * ratio * n_a, crit), abs=0.015)
    n = samples_for_power(effect, crit, ratio)
    assert pooled_power(effect, n, ratio * n, crit) >= 0.8 > pooled_power(effect, n - 1, ratio * (n - 1), crit)
    # the registered smoke conf reaches 80% power against the bias of the earlier matrix-path failure
    from initrepro.core.designs import conf_path

    conf = yaml.safe_load(conf_path("fractional_lognorm", "smoke").read_text())
    bias = conf["failed_bias"]["z"] / math.sqrt(conf["failed_bias"]["samples"])
    n_matrix = 2 * conf["validate_networks"] * conf["validate_depth"]
    crit_conf = pooled_critical_value(conf["family_alpha"], len(conf["configs"]))
    assert pooled_power(bias, n_matrix, conf["validate_ratio"] * n_matrix, crit_conf) >= conf["validate_power"]
    # and the earlier design (2 x 10^5 samples, no second sample) did not
    assert pooled_power(bias, conf["failed_bias"]["samples"], math.inf, crit_conf) < 0.7


def test_scores_are_one_sided_and_calibrated_under_the_null():
    from scipy import stats

    from initrepro.studies.fractional import two_sided_score

    rng = np.random.default_rng(5)
    z = rng.standard_normal(20000)
    scores = np.array([two_sided_score(v) for v in z])
    assert abs(scores.mean()) < 0.03 and abs(scores.std() - 1) < 0.03  # N(0, 1), like ks_z's
    assert two_sided_score(-6.0) == two_sided_score(6.0) > 5  # either side of a two-sided test is bad
    ks = [ks_z(rng.standard_normal(500)) for _ in range(400)]
    assert stats.kstest(ks, "norm").pvalue > 0.001  # not folded: negative when the fit is good


def test_layer_moments_are_the_per_layer_view_of_moment_z():
    log_r = rotational_log_ratios(4000, 16, 5, sigma_s(16, 1.0), generator=torch.Generator().manual_seed(0))
    means, ses = layer_moments(log_r, 1.0)
    pooled, _, _ = moment_z(log_r, 1.0)
    assert len(means) == len(ses) == 5
    assert np.mean(means) == pytest.approx(pooled, rel=1e-12)
    assert all(abs(m - 1) < 5 * se for m, se in zip(means, ses))  # sigma_s keeps E R^s = 1 at every layer
    assert ses[0] == pytest.approx(float((log_r[:, 0]).exp().std() / 4000 ** 0.5), rel=1e-12)
