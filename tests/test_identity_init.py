import math

import numpy as np
import pytest
import torch

from initrepro.init import identity_
from initrepro.models.class_unit_mlp import (ClassUnitMLP, init_class_unit_mlp_, layer_accuracy, relative_change,
                                              unstack)
from initrepro.models.ensemble import Ensemble
from initrepro.theory.identity import binomial_z, jjt_eigenvalues, two_point_law

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gain", [1.0, 0.9, -2.5])
def test_linear_is_gain_times_identity_exactly(dtype, gain):
    w = torch.randn(7, 7, dtype=dtype)
    out = identity_(w, gain)
    assert out is w and w.dtype == dtype
    assert torch.equal(w, torch.eye(7, dtype=dtype) * torch.tensor(gain, dtype=dtype))
    x = torch.randn(3, 7, dtype=dtype)
    assert torch.equal(x @ identity_(torch.empty(7, 7, dtype=dtype)).T, x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", [(1,), (3,), (3, 3), (5, 3), (3, 3, 3)])
def test_conv_is_identity_map_at_the_centre_tap(dtype, kernel):
    c = 4
    w = identity_(torch.randn(c, c, *kernel, dtype=dtype), gain=0.5)
    assert w.count_nonzero() == c
    centre = (slice(None), slice(None), *(k // 2 for k in kernel))
    assert torch.equal(w[centre], 0.5 * torch.eye(c, dtype=dtype))
    conv = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d, 3: torch.nn.functional.conv3d}[len(kernel)]
    x = torch.randn(2, c, *([6] * len(kernel)), dtype=dtype)
    assert torch.allclose(conv(x, w, padding=[k // 2 for k in kernel]), 0.5 * x, atol=0, rtol=0)


@pytest.mark.parametrize("shape, match", [((3, 4), "tensor must be square"), ((4, 3, 3, 3), "tensor must be square"),
                                          ((5,), "tensor must have at least 2"), ((2, 2, 2), "tensor kernel sizes"),
                                          ((3, 3, 3, 4), "tensor kernel sizes")])
def test_bad_shapes_name_the_argument(shape, match):
    with pytest.raises(ValueError, match=match):
        identity_(torch.empty(shape))


@pytest.mark.parametrize("gain", [math.inf, math.nan])
def test_bad_gain_is_rejected(gain):
    with pytest.raises(ValueError, match="gain"):
        identity_(torch.empty(3, 3), gain)


# --- theory: the two-point law ---------------------------------------------------------------

def test_two_point_law_values():
    assert two_point_law("relu", 1.3, 50, q0=7.0) == (1.3 ** 100, 0.5)
    assert two_point_law("hard_tanh", 1.0, 100, 1.0)[1] == pytest.approx(0.682689492137, abs=1e-12)
    assert two_point_law("hard_tanh", 1.0, 100, 0.1)[1] == pytest.approx(0.998435, abs=1e-6)
    assert two_point_law("hard_tanh", 0.9, 100, 1.0)[1] == pytest.approx(math.erf(1 / (0.9 * math.sqrt(2))))
    atom, alpha = two_point_law("hard_tanh", 1.05, 100, 1.0)
    assert atom == pytest.approx(1.05 ** 200) and alpha == pytest.approx(math.erf(1 / (1.05 ** 100 * math.sqrt(2))))
    assert two_point_law("relu", 0.9, 100)[0] == pytest.approx(7.055e-10, rel=1e-3)  # float64, no underflow


@pytest.mark.parametrize("kwargs, match", [(dict(activation="tanh"), "activation"), (dict(sigma=0.0), "sigma"),
                                           (dict(depth=0), "depth"), (dict(q0=-1.0), "q0")])
def test_two_point_law_bad_arguments(kwargs, match):
    args = dict(activation="relu", sigma=1.0, depth=10, q0=1.0) | kwargs
    with pytest.raises(ValueError, match=match):
        two_point_law(**args)


def _identity_body(width, depth, activation, sigma):
    return init_class_unit_mlp_(ClassUnitMLP(width, 0, depth, activation).double(), "identity", gain=sigma).body


@pytest.mark.parametrize("activation, sigma, q0", [("relu", 0.9, 1.0), ("relu", 1.05, 3.0), ("hard_tanh", 1.0, 1.0),
                                                   ("hard_tanh", 0.9, 0.5), ("hard_tanh", 1.05, 0.1)])
def test_spectrum_is_exactly_two_point_with_the_predicted_alive_set(activation, sigma, q0):
    depth, width = 20, 16
    u = torch.randn(12, width, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * q0 ** 0.5
    eig = jjt_eigenvalues(_identity_body(width, depth, activation, sigma), u)
    atom, _ = two_point_law(activation, sigma, depth, q0)
    alive = (u > 0) if activation == "relu" else (u.abs() < 1 / max(sigma, sigma ** depth))
    expected = torch.sort(alive.double() * atom, dim=1).values
    assert torch.allclose(eig, expected, rtol=1e-12, atol=1e-12 * atom)


def test_nonzero_fraction_matches_alpha_by_monte_carlo():
    # hard-tanh, sigma = 1: alpha = erf(1/sqrt(2)); 100 x 32 independent coordinates; |z| < 4 fails w.p. 6e-5
    u = torch.randn(100, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    eig = jjt_eigenvalues(_identity_body(32, 30, "hard_tanh", 1.0), u)
    atom, alpha = two_point_law("hard_tanh", 1.0, 30)
    assert abs(binomial_z(int((eig > atom / 2).sum()), eig.numel(), alpha)) < 4


def test_forward_at_init_relu_and_hard_tanh():
    u = torch.randn(5, 10, dtype=torch.float64)
    assert torch.allclose(_identity_body(10, 30, "relu", 1.1)(u), 1.1 ** 30 * torch.relu(u), rtol=1e-12)
    assert torch.equal(_identity_body(10, 30, "hard_tanh", 1.0)(u), u.clamp(-1, 1))


def test_binomial_z():
    assert binomial_z(50, 100, 0.5) == 0.0 and binomial_z(60, 100, 0.5) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="p must"):
        binomial_z(1, 10, 1.0)


# --- the class-unit MLP --------------------------------------------------------------------------

def test_class_unit_mlp_shapes_and_logits_are_last_class_units():
    net = init_class_unit_mlp_(ClassUnitMLP(64, 10, depth=7), "identity")
    x = torch.randn(5, 1, 8, 8)
    assert net(x).shape == (5, 10)
    h = net.preactivations(x)
    assert h.shape == (7, 5, 74)
    assert torch.equal(net(x), h[-1, :, 64:])
    assert all(layer.weight.shape == (74, 74) for layer in net.linears()) and len(net.linears()) == 7
    assert torch.equal(net(x), torch.zeros(5, 10))  # class units start at zero under the identity
    # hard-tanh, identity: every hidden layer sees the clipped input
    assert torch.equal(h[3, :, :64], x.flatten(1).clamp(-1, 1))


def test_hard_tanh_gradients_are_identical_across_hidden_layers_at_identity():
    net = init_class_unit_mlp_(ClassUnitMLP(16, 3, depth=6), "identity").double()
    x, y = torch.randn(20, 16, dtype=torch.float64), torch.randint(0, 3, (20,))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    grads = [layer.weight.grad for layer in net.linears()]
    assert grads[1].abs().sum() > 0
    for g in grads[2:-1]:
        assert torch.allclose(g, grads[1], rtol=1e-12, atol=1e-14)


def test_relu_class_units_get_no_gradient_in_hidden_layers():
    # the digest's pitfall: relu'(0) = 0 blocks the zero-valued class units
    net = init_class_unit_mlp_(ClassUnitMLP(16, 3, depth=4, activation="relu"), "identity")
    torch.nn.functional.cross_entropy(net(torch.randn(8, 16)), torch.randint(0, 3, (8,))).backward()
    assert net.linears()[0].weight.grad[16:].abs().sum() == 0


def test_random_schemes_and_helpers():
    net = init_class_unit_mlp_(ClassUnitMLP(20, 4, depth=3), "xavier", generator=torch.Generator().manual_seed(0))
    assert all(layer.bias.abs().sum() == 0 for layer in net.linears())
    assert torch.allclose(relative_change(net, net), torch.zeros(3))
    ident = init_class_unit_mlp_(ClassUnitMLP(20, 4, depth=3), "identity")
    ens = Ensemble([ident, net])
    a, b = unstack(ens, ident)
    x = torch.randn(6, 20)
    assert torch.allclose(ens(x)[1], b(x)) and torch.equal(a.linears()[0].weight, torch.eye(24))


def test_layer_accuracy_shape_and_range():
    from initrepro.data import TensorData

    data = TensorData(torch.randn(30, 1, 4, 4), torch.randint(0, 3, (30,)), 3, "random")
    acc = layer_accuracy(init_class_unit_mlp_(ClassUnitMLP(16, 3, depth=5), "xavier"), data)
    assert acc.shape == (5,) and ((acc >= 0) & (acc <= 1)).all()


@pytest.mark.parametrize("kwargs, match", [(dict(in_features=0), "in_features"), (dict(num_classes=-1), "num_classes"),
                                           (dict(depth=0), "depth"), (dict(activation="gelu"), "activation")])
def test_class_unit_mlp_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ClassUnitMLP(**(dict(in_features=4, num_classes=2, depth=2) | kwargs))


def test_paper_shape_one_step():
    # the paper profile's Fashion-MNIST net: 100 layers of width 784 + 10, one SGD step on random tensors
    from initrepro.training import loss_fn

    torch.manual_seed(0)
    with torch.device("meta"):  # skip the default init of 63M weights: identity_ overwrites them
        net = ClassUnitMLP(784, 10, depth=100)
    net = init_class_unit_mlp_(net.to_empty(device="cpu"), "identity")
    for layer in net.linears():
        torch.nn.init.zeros_(layer.bias)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    loss = loss_fn(net(torch.randn(8, 1, 28, 28)), torch.randint(0, 10, (8,)))
    loss.backward()
    opt.step()
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(np.log(10), rel=1e-6)
    eye = torch.eye(794)
    assert not any(torch.equal(layer.weight, eye) for layer in net.linears())  # hard-tanh: slope 1 at 0, all layers move


def test_contribution_maps_at_identity_init():
    net = init_class_unit_mlp_(ClassUnitMLP(64, 10, depth=6), "identity")
    x = torch.randn(3, 1, 8, 8)
    maps = net.contributions(x, [1, 6])
    assert maps.shape == (2, 3, 1, 8, 8)
    assert torch.equal(maps[0], x.clamp(-1, 1) - x) and torch.equal(maps[1], maps[0])
    assert torch.equal(net.contributions(x, [2, 6], base=1), torch.zeros(2, 3, 1, 8, 8))
    assert torch.equal(net.activations(x)[-1], torch.nn.functional.hardtanh(net.preactivations(x)[-1]))


def test_train_seed_returns_paired_results_per_scheme():
    from initrepro.data import TensorData
    from initrepro.studies.kubota import train_seed
    from initrepro.training import TrainConfig

    gen = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(64, 1, 4, 4, generator=gen), torch.randint(0, 3, (64,), generator=gen), 3, "random")
    run = train_seed(data, data, depth=4, activation="hard_tanh", schemes=["identity", "xavier"],
                     cfg=TrainConfig(epochs=1, lr=1e-3, momentum=0.0, batch_size=32), control_depth=2, progress=False)
    assert set(run.test_acc) == set(run.layer_acc) == set(run.change) == set(run.models) == {"identity", "xavier"}
    assert run.layer_acc["identity"].shape == run.change["xavier"].shape == (4,)
    assert run.diverged == {"identity": False, "xavier": False} and len(run.curves["identity"]) == 1
    assert run.change["identity"].max() > 0 and 0 <= run.control_acc <= 1


# --- the discriminating measures: image drift and the per-layer trend -------------------------

def _toy_runs(steps=30, lr=3e-3):
    """An identity and a random (LeCun) class-unit MLP, 12 layers of width 16 + 3, trained with the
    same lr, steps and batches on a toy 3-class problem."""
    from initrepro.training import loss_fn

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 1, 4, 4, generator=gen) * 1.5
    y = (x.flatten(1)[:, :3].argmax(1))
    nets = {s: init_class_unit_mlp_(ClassUnitMLP(16, 3, depth=12), s, generator=torch.Generator().manual_seed(1))
            for s in ("identity", "xavier")}
    for net in nets.values():
        opt = torch.optim.SGD(net.parameters(), lr=lr)
        for step in range(steps):
            idx = torch.arange(step * 32, step * 32 + 32) % len(x)
            opt.zero_grad()
            loss_fn(net(x[idx]), y[idx]).backward()
            opt.step()
    return nets, x


def test_image_drift_separates_identity_from_a_random_init():
    from initrepro.studies.kubota import image_drift

    nets, x = _toy_runs(steps=0)
    at_init = {s: image_drift(net, x) for s, net in nets.items()}
    assert at_init["identity"].shape == (12,) and torch.equal(at_init["identity"], torch.zeros(12))
    assert at_init["xavier"].min() > 0.9  # a random net embeds the input elsewhere at every layer
    nets, x = _toy_runs(steps=30)
    trained = {s: image_drift(net, x) for s, net in nets.items()}
    assert 0 < trained["identity"].max() < 0.5 < trained["xavier"].min()
    # the old measure, each net's weight change from its own init, is small for both: it cannot tell them apart
    fresh = init_class_unit_mlp_(ClassUnitMLP(16, 3, depth=12), "xavier", generator=torch.Generator().manual_seed(1))
    assert relative_change(nets["xavier"], fresh).median() < 0.05
    assert relative_change(nets["identity"], init_class_unit_mlp_(ClassUnitMLP(16, 3, depth=12), "identity")).median() < 0.05


def test_image_drift_fails_when_the_identity_net_is_moved_far():
    # the check can fail: an identity net whose image block was moved by a large step drifts past 0.5
    from initrepro.studies.kubota import image_drift

    net = init_class_unit_mlp_(ClassUnitMLP(16, 3, depth=6), "identity")
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for layer in net.linears():
            layer.weight.add_(0.4 * torch.randn(layer.weight.shape, generator=gen))
    assert image_drift(net, torch.randn(64, 1, 4, 4, generator=gen)).max() > 0.5


def test_layer_trend_tells_a_rising_curve_from_one_flat_after_a_few_layers():
    from initrepro.studies.kubota import layer_trend

    rng = np.random.default_rng(0)
    layers = np.arange(1, 101)
    rising = 0.5 + 0.004 * layers + rng.normal(0, 0.005, (5, 100))
    flat_after_5 = np.minimum(0.75 + 0.05 * layers, 0.95) + rng.normal(0, 0.005, (5, 100))
    assert layer_trend(rising).min() > 0.9
    assert np.abs(layer_trend(flat_after_5)).max() < 0.3
    # layer L against layer 1 (the old check, margin 0.05) passes both: each rises by more than 0.1
    assert (flat_after_5[:, -1] - flat_after_5[:, 0]).min() > 0.1 and (rising[:, -1] - rising[:, 0]).min() > 0.1
    assert np.array_equal(layer_trend(np.full((2, 10), 0.9)), np.zeros(2))  # a constant curve: no trend
    with pytest.raises(ValueError, match="layer_acc"):
        layer_trend(np.zeros((1, 3)))


def test_layer_trend_on_trained_toy_nets():
    # identity: the class units of layer l carry the sum of l layers' contributions, so the
    # per-layer accuracy orders by depth; the statistic is computed per net, in [-1, 1]
    from initrepro.data import TensorData
    from initrepro.studies.kubota import layer_trend

    nets, x = _toy_runs(steps=30)
    data = TensorData(x, x.flatten(1)[:, :3].argmax(1), 3, "toy")
    rho = layer_trend(np.stack([layer_accuracy(net, data).numpy() for net in nets.values()]))
    assert rho.shape == (2,) and np.all(np.abs(rho) <= 1)


# --- the stage's spectrum measurement (initrepro.studies.kubota) ------------------------------------

def test_identity_spectrum_is_the_two_point_law_at_the_drawn_inputs():
    from initrepro.studies.kubota import identity_spectrum

    eig = identity_spectrum("relu", 1.1, 2.0, torch.Generator().manual_seed(3), width=8, depth=10, inputs=5)
    u = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 2.0 ** 0.5
    atom, _ = two_point_law("relu", 1.1, 10, 2.0)
    assert eig.shape == (5, 8) and eig.dtype == torch.float64
    assert torch.allclose(eig, torch.sort((u > 0).double() * atom, dim=1).values, rtol=1e-12, atol=1e-12 * atom)


def test_count_z_counts_eigenvalues_above_half_the_atom_against_the_binomial():
    from initrepro.studies.kubota import count_z

    atom, alpha = two_point_law("relu", 1.3, 50, 7.0)  # (1.3^100, 0.5)
    eig = torch.cat([torch.full((60,), atom), torch.zeros(40)]).double().view(10, 10)
    assert count_z(eig, "relu", 1.3, 7.0, depth=50) == pytest.approx(2.0)  # (60 - 50) / sqrt(100 / 4)
    assert count_z(torch.full((10, 10), 0.51 * atom, dtype=torch.float64), "relu", 1.3, 7.0, depth=50) == 10.0
    assert count_z(torch.full((10, 10), 0.49 * atom, dtype=torch.float64), "relu", 1.3, 7.0, depth=50) == -10.0
    assert count_z(eig, "relu", 1.3, 7.0, depth=50) == binomial_z(60, 100, alpha)
