"""Exact signal law of Gaussian ReLU nets, parameter sharing for plain ReLU MLPs, Jacobian ranks."""

import numpy as np
import pytest
import torch
from torch.func import jacrev

from initrepro.data import TensorData
from initrepro.init import init_relu_mlp_, parameter_sharing_, shared_blocks
from initrepro.measures.isometry import jacobian_singular_values
from initrepro.models import mlp
from initrepro.models.ensemble import Ensemble
from initrepro.core.pipeline import load_conf
from initrepro.studies.relu_isometry import active_units, isometry_fraction, numerical_rank
from initrepro.theory.relu_signal import (layer_cdf, mean_field_q, sample_chain, sample_networks,
                                          signal_monte_carlo)
from initrepro.training import TrainConfig, train

DTYPES = {torch.float32: 1e-5, torch.float64: 1e-12}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- the exact signal law ------------------------------------------------------------------


def test_layer_cdf_known_values():
    assert layer_cdf(0.5, 2.0, 8) == pytest.approx(0.30828, abs=1e-5)
    assert layer_cdf(0.0, 2.0, 8) == pytest.approx(2.0 ** -8, rel=1e-12)  # the atom: no unit active
    assert layer_cdf(-1.0, 2.0, 8) == 0.0
    assert layer_cdf(1e6, 2.0, 8) == pytest.approx(1.0, abs=1e-12)


def test_layer_cdf_matches_network_monte_carlo():
    q, _ = sample_networks(20000, 8, 1, 2.0, 0.0, generator=gen())
    t = np.array([0.25, 0.5, 1.0, 2.0])
    empirical = (q[:, 1, None] <= t).mean(0)
    se = np.sqrt(layer_cdf(t, 2.0, 8) * (1 - layer_cdf(t, 2.0, 8)) / 20000)
    assert np.all(np.abs(empirical - layer_cdf(t, 2.0, 8)) <= 5 * se)


def test_mean_field_recursion():
    assert np.array_equal(mean_field_q(5, 2.0, 0.0), np.ones(6))
    assert np.allclose(mean_field_q(2, 1.5, 0.1, q0=1.0), [1.0, 0.8, 0.65])


@pytest.mark.parametrize("sampler", ["chain", "networks"])
def test_one_layer_moments_he_no_bias(sampler):
    # E q^l / q^{l-1} = 1 and E (q^l / q^{l-1})^2 = 1 + 5/N, one layer at a time
    n, width = 40000, 8
    if sampler == "chain":
        q, _ = sample_chain(n, width, 1, 2.0, 0.0, rng=np.random.default_rng(0))
    else:
        q, _ = sample_networks(n, width, 1, 2.0, 0.0, generator=gen())
    r = q[:, 1] / q[:, 0]
    for power, expected in ((1, 1.0), (2, 1 + 5 / width)):
        rp = r ** power
        assert abs(rp.mean() - expected) <= 5 * rp.std() / np.sqrt(n)


def test_zero_output_is_absorbing():
    q, _ = sample_networks(3000, 2, 10, 2.0, 0.0, generator=gen())
    dead = q == 0
    assert dead.any() and np.all(dead[:, 1:] >= dead[:, :-1])  # once 0, 0 forever


def test_signal_monte_carlo_tests_and_mean_field():
    mc = signal_monte_carlo(8, 16, 2.0, 0.0, num=1000, seed=0, chain_factor=5)
    assert mc.q_net.shape == (1000, 17) and mc.h_net.shape == (1000,) and mc.q_chain.shape == (5000, 17)
    assert len(mc.z) == 5 and all(np.isfinite(list(mc.z.values())))
    assert mc.mean_field_pvalue < 1e-6 and mc.kurtosis > 3


@pytest.mark.parametrize("kwargs,name", [
    ({"width": 0}, "width"), ({"depth": 0}, "depth"), ({"sw2": 0.0}, "sw2"), ({"sb2": -1.0}, "sb2")])
def test_signal_bad_arguments(kwargs, name):
    args = {"width": 4, "depth": 2, "sw2": 2.0, "sb2": 0.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        sample_chain(10, **args)
    with pytest.raises(ValueError, match=name):
        sample_networks(10, **args)
    with pytest.raises(ValueError, match="v"):
        layer_cdf(0.5, 0.0, 4)


# --- parameter sharing for plain ReLU MLPs ---------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block", ["gaussian", "orthogonal"])
def test_shared_net_is_the_product_of_its_blocks(block, dtype):
    tol = DTYPES[dtype]
    net = parameter_sharing_(mlp(6, 10, 7, 3).to(dtype), block, generator=gen())
    product = torch.linalg.multi_dot(shared_blocks(net)[::-1])
    x = torch.randn(5, 6, dtype=dtype, generator=gen(1))
    with torch.no_grad():
        assert torch.allclose(net(x), x @ product.T, atol=tol, rtol=tol)
    jac = jacrev(lambda v: net(v[None])[0])(x[0])
    assert torch.allclose(jac, product, atol=tol, rtol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_orthogonal_sharing_is_an_exact_isometry(dtype):
    tol = 10 * DTYPES[dtype]
    net = parameter_sharing_(mlp(8, 16, 30, 8).to(dtype), "orthogonal", generator=gen())
    x = torch.randn(8, dtype=dtype, generator=gen(1))
    s = jacobian_singular_values(net, x)
    assert torch.allclose(s, torch.ones_like(s), atol=tol) and isometry_fraction(s) == 1.0
    xs = torch.randn(4, 8, dtype=dtype, generator=gen(2))
    with torch.no_grad():
        y = net(xs)
    assert torch.allclose(y.norm(dim=1), xs.norm(dim=1), rtol=tol)  # q^L = q^0 exactly
    cos = lambda a: torch.nn.functional.cosine_similarity(a[:, None], a[None], dim=-1)  # noqa: E731
    assert torch.allclose(cos(y), cos(xs), atol=tol)  # angles kept


def test_sharing_structure_biases_and_blocks():
    net = parameter_sharing_(mlp(5, 8, 4, 3), "gaussian", generator=gen())
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert all(torch.all(m.bias == 0) for m in linears)
    stem, hidden, head = linears[0].weight, linears[1].weight, linears[-1].weight
    assert torch.equal(stem[:4], -stem[4:])
    assert torch.equal(hidden[:4, :4], -hidden[:4, 4:]) and torch.equal(hidden[4:, 4:], hidden[:4, :4])
    assert torch.equal(head[:, :4], -head[:, 4:])
    big = parameter_sharing_(mlp(4, 800, 3, 4), "gaussian", generator=gen())
    u = shared_blocks(big)[1]
    assert u.std().item() == pytest.approx(1 / np.sqrt(400), rel=0.01)  # N(0, 1/n) = He for width 2n


def test_sharing_is_seeded():
    a = parameter_sharing_(mlp(4, 8, 3, 2), "orthogonal", generator=gen(3))
    b = parameter_sharing_(mlp(4, 8, 3, 2), "orthogonal", generator=gen(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("call,name", [
    (lambda: parameter_sharing_(mlp(4, 8, 3, 2), "uniform"), "block"),
    (lambda: parameter_sharing_(mlp(4, 7, 3, 2)), "width"),
    (lambda: parameter_sharing_(mlp(4, 8, 1, 2)), "model"),
    (lambda: init_relu_mlp_(mlp(4, 8, 3, 2), "xavier"), "scheme"),
    (lambda: isometry_fraction(torch.ones(3), factor=1.0), "factor"),
])
def test_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# --- He: rank loss through the ReLU masks ---------------------------------------------------


@pytest.mark.parametrize("depth", [2, 10, 30])
def test_he_jacobian_rank_is_at_most_the_fewest_active_units(depth):
    net = init_relu_mlp_(mlp(16, 16, depth, 16).double(), "he", generator=gen(depth))
    x = torch.randn(16, dtype=torch.float64, generator=gen())
    s = jacobian_singular_values(net, x)
    counts = active_units(net, x)
    assert len(counts) == depth - 1
    assert numerical_rank(s) <= min(counts)
    assert all(torch.all(m.bias == 0) for m in net if isinstance(m, torch.nn.Linear))


def test_numerical_rank():
    assert numerical_rank(torch.ones(5)) == 5
    assert numerical_rank(torch.tensor([1.0, 1e-17, 0.0], dtype=torch.float64)) == 1


# --- profiles ---------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    # 200 small layers: on a busy 2-core machine two threads contend (about 10x slower)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_paper_profile_models_take_one_step_on_mnist_shaped_input(one_thread):
    conf = load_conf("relu_isometry", "paper")
    members = [init_relu_mlp_(mlp(784, conf["train_width"], conf["train_depth"], 10), scheme, gen(i))
               for i, scheme in enumerate(["he", "ll_gaussian", "ll_orthogonal"])]
    n = 8  # the paper profile's models and optimizer on a small random batch (the full one is ~30 GFLOP)
    data = TensorData(torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,)), 10, "random")
    cfg = TrainConfig(epochs=1, lr=conf["lr"], momentum=conf["momentum"], batch_size=n, max_steps=1)
    history = train(Ensemble(members), data, data, cfg, progress=False)
    assert not history.diverged and history.step == [1]


def test_mean_field_kurtosis_test_rejects_where_ks_is_weak():
    # N = 10, L = 30, sw2 = 1.5, sb2 = 0.1: the exact law's scale mixture has heavy tails; the
    # one-sided kurtosis test rejects mean field's Gaussian by far, KS against N(0, v_MF) only weakly
    mc = signal_monte_carlo(10, 30, 1.5, 0.1, 2000, 300005, 2)
    assert mc.mean_field_kurtosis_pvalue < 1e-10 and mc.kurtosis > 4
    assert mc.mean_field_pvalue > 1e-3  # this seed: KS alone would not reject at 0.1%
    # under a true Gaussian the one-sided kurtosis test keeps its level
    from scipy import stats
    rng = np.random.default_rng(0)
    p = [stats.kurtosistest(rng.standard_normal(2000), alternative="greater").pvalue for _ in range(200)]
    assert np.mean(np.array(p) < 0.05) < 0.1


def test_ks_score_is_standard_normal_under_the_null_and_one_sided():
    import numpy as np
    from scipy import stats

    from initrepro.theory.relu_signal import ks_z

    p = np.random.default_rng(0).uniform(size=20000)
    z = np.array([ks_z(v) for v in p])
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    assert ks_z(1e-9) > 5 and ks_z(1 - 1e-9) < -5  # a good fit scores low, never folded up
    assert stats.kstest(z, "norm").pvalue > 0.001
