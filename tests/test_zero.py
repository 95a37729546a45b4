"""ZerO (Zhao et al. 2022): exact properties of the Hadamard initializer, the ZerO ResNet,
the training-degeneracy bound and the stage's helpers (``initrepro.studies.zero``)."""

import math

import pytest
import torch

from initrepro.init.zero import hadamard, zero_hadamard_, zero_matrix, zero_resnet_
from initrepro.models.resnet import INITIALIZERS, resnet
from initrepro.studies.zero import init_widening_mlp_, update_ranks, widening_mlp

DTYPES = [torch.float32, torch.float64]


def test_hadamard_is_sylvester():
    h1 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    h3 = torch.kron(torch.kron(h1, h1), h1)
    assert torch.equal(hadamard(8, 8), h3)
    assert torch.equal(hadamard(5, 3), h3[:5, :3])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 3, 16, 17])
def test_square_is_identity(dtype, n):
    w = zero_hadamard_(torch.randn(n, n, dtype=dtype))
    assert w.dtype == dtype and torch.equal(w, torch.eye(n, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 7), (1, 5), (16, 64)])
def test_shrinking_is_partial_identity(dtype, shape):
    w = zero_hadamard_(torch.randn(*shape, dtype=dtype))
    assert torch.equal(w, torch.eye(*shape, dtype=dtype))
    assert torch.equal(w @ w.T, torch.eye(shape[0], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p, q", [(4, 2), (8, 3), (12, 5), (64, 10), (100, 64), (66, 65), (128, 64)])
def test_expanding_is_cropped_scaled_hadamard(dtype, p, q):
    w = zero_hadamard_(torch.randn(p, q, dtype=dtype))
    m = math.ceil(math.log2(p))
    c = 2.0 ** (-m / 2)
    assert torch.equal(w, (hadamard(2 ** m, 2 ** m)[:p, :q] * c).to(dtype))  # cropping of H_m
    assert torch.equal(w.abs(), torch.full_like(w, c))  # entries +-c, c rounded once to dtype
    s = torch.linalg.svdvals(w.double())
    assert s.max() <= 1 + 1e-12 and torch.linalg.matrix_rank(w.double()) == q
    if p == 2 ** m:  # whole columns of an orthogonal matrix: W^T W = I (exactly when c = 2^(-m/2) is exact)
        gram, eye = w.T @ w, torch.eye(q, dtype=dtype)
        assert torch.equal(gram, eye) if m % 2 == 0 else torch.allclose(gram, eye, atol=4 * torch.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_full_hadamard_is_orthogonal_up_to_scale(dtype):
    h = hadamard(32, 32, dtype)
    assert torch.equal(h @ h.T, 32 * torch.eye(32, dtype=dtype))


def test_documented_singular_values():
    assert torch.linalg.svdvals(zero_matrix(12, 5)).min() == pytest.approx(2 ** -0.5, abs=1e-12)
    assert torch.linalg.svdvals(zero_matrix(100, 64)).min() == pytest.approx(2 ** -0.5, abs=1e-12)
    assert torch.linalg.svdvals(zero_matrix(66, 65)).min() == pytest.approx(0.125, abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 8, 3, 3), (16, 3, 3, 3), (4, 12, 1, 1), (6, 2, 5, 3), (5, 5, 3), (2, 3, 3, 3, 3)])
def test_conv_centre_tap_only(dtype, shape):
    w = zero_hadamard_(torch.randn(*shape, dtype=dtype))
    centre = (slice(None), slice(None)) + tuple(k // 2 for k in shape[2:])
    assert torch.equal(w[centre], zero_matrix(*shape[:2]).to(dtype))
    w[centre] = 0
    assert not w.any()


def test_conv_centre_tap_passes_the_matrix():
    w = zero_hadamard_(torch.empty(12, 5, 3, 3, dtype=torch.float64))
    x = torch.randn(2, 5, 6, 6, dtype=torch.float64)
    y = torch.nn.functional.conv2d(x, w, padding=1)
    assert torch.allclose(y, torch.einsum("oi,bihw->bohw", zero_matrix(12, 5), x), atol=1e-12)


def test_no_random_numbers_drawn():
    state = torch.get_rng_state()
    zero_hadamard_(torch.empty(40, 7, 3, 3))
    zero_hadamard_(torch.empty(7, 40))
    assert torch.equal(state, torch.get_rng_state())
    net = resnet("conv", (1, 8, 8), 10, widths=(4, 8), blocks=1, init="he")
    state = torch.get_rng_state()
    zero_resnet_(net)
    assert torch.equal(state, torch.get_rng_state())


def test_same_result_under_any_seed():
    a = resnet("conv", (3, 8, 8), 10, widths=(8, 16), blocks=1, init="zero", seed=0)
    b = resnet("conv", (3, 8, 8), 10, widths=(8, 16), blocks=1, init="zero", seed=123)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("shape", [(5,), (), (4, 0), (4, 4, 2, 2), (4, 4, 3, 4)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match="tensor"):
        zero_hadamard_(torch.empty(shape))


def test_hadamard_bad_size_raises():
    with pytest.raises(ValueError, match="rows and cols"):
        hadamard(0, 3)


@pytest.mark.parametrize("kind, shape", [("conv", (1, 8, 8)), ("fc", (64,))])
def test_zero_resnet_recipe(kind, shape):
    assert INITIALIZERS["zero"] is zero_resnet_
    net = resnet(kind, shape, 10, widths=(8, 16), blocks=2, init="zero", batch_norm=True)
    for block in net.blocks:
        assert not block.conv2.weight.any()  # each branch starts at zero: the block is its skip
        assert torch.equal(block.conv1.weight, zero_hadamard_(block.conv1.weight.clone()))
        assert block.skip is None or torch.equal(block.skip.weight, zero_hadamard_(block.skip.weight.clone()))
        assert block.branch_scale.item() == 1 and block.skip_scale.item() == 1
    assert torch.equal(net.classifier.weight, torch.eye(10, 16))  # Algorithm 1: [I 0]
    assert not net.classifier.bias.any() and not any(b.any() for b in net.scalar_biases())
    bn = net.stem_norm
    assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and not bn.bias.any()


def test_zero_resnet_starts_as_its_skips():
    # Every branch is zero, so the stream after the blocks equals relu of the skips alone.
    net = resnet("fc", (16,), 10, widths=32, blocks=3, init="zero", dtype=torch.float64)
    x = torch.randn(5, 16, dtype=torch.float64)
    h = net.embed(x)
    assert torch.equal(h, torch.relu(x @ zero_matrix(32, 16).T))
    for block in net.blocks:
        branch, skip = block.parts(h)
        assert not branch.any()
        h = block(h)
    assert torch.equal(net(x), h[:, :10])


@pytest.mark.parametrize("dtype", DTYPES)
def test_partial_identity_update_rank_bound(dtype):
    """Theorem 1: after SGD steps, the padded rows of the widening layer stay exactly zero and
    the next layer's update has rank <= Q; the Hadamard arm exceeds Q."""
    torch.manual_seed(0)
    q, p = 4, 32
    x, y = torch.randn(256, 12, dtype=dtype), torch.randint(0, 10, (256,))
    ranks = {}
    for scheme in ("partial_identity", "zero"):
        net = init_widening_mlp_(widening_mlp((12, q, p, p, 10)).to(dtype), scheme)
        w0 = net[5].weight.detach().clone()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for i in list(range(0, 256, 32)) * 3:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
        ranks[scheme] = update_ranks(net[5].weight[None], w0[None])[0]
        if scheme == "partial_identity":
            assert not net[3].weight[q:].any()
            assert not (net[5].weight - w0)[:, q:].any()
    assert ranks["partial_identity"] <= q < ranks["zero"]


def test_widening_mlp_bad_inputs():
    with pytest.raises(ValueError, match="widths"):
        widening_mlp((5,))
    with pytest.raises(ValueError, match="scheme"):
        init_widening_mlp_(widening_mlp((4, 8)), "xavier")
    with pytest.raises(ValueError, match="tol"):
        update_ranks(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), tol=0)


# --- the authors' ReLU and the reduced-scale studies (the trainer: tests/test_members.py) -------------------------------------------

from initrepro.layers import ReLUGradAtZero, relu_grad_at_zero  # noqa: E402
from initrepro.models.ensemble import Ensemble  # noqa: E402
from initrepro.studies.zero import (  # noqa: E402
    branch_weight_names, fallback_lr, magnitude_prune_, prunable_weight_names, pruned_accuracy, search_lrs, split,
    stable_rank, train_runs, update_stable_ranks)
from initrepro.training import member_accuracy, train_members  # noqa: E402
from toy_nets import toy_data, toy_fc  # noqa: E402


def test_authors_relu_gradient_is_one_at_exactly_zero_and_zero_below():
    x = torch.tensor([-1.0, -1e-30, 0.0, 0.0, 2.0], requires_grad=True)
    y = relu_grad_at_zero(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 0.0, 0.0, 0.0, 2.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))
    z = torch.zeros(3, requires_grad=True)
    torch.relu(z).sum().backward()
    assert torch.equal(z.grad, torch.zeros(3))  # PyTorch's ReLU: 0 at 0 (what made ZerO channels dead)
    m = torch.zeros(2, requires_grad=True)
    ReLUGradAtZero()(m).sum().backward()
    assert torch.equal(m.grad, torch.ones(2))


def test_resnet_activation_option_reaches_every_relu():
    x = torch.randn(4, 1, 8, 8)
    default = resnet("conv", (1, 8, 8), 10, widths=(4,), blocks=1, init="he", seed=0)
    same = resnet("conv", (1, 8, 8), 10, widths=(4,), blocks=1, init="he", seed=0, activation=torch.relu)
    assert torch.equal(default(x), same(x))  # the default is unchanged
    calls = []

    def counting(t):
        calls.append(1)
        return relu_grad_at_zero(t)

    resnet("conv", (1, 8, 8), 10, widths=(4,), blocks=2, init="he", activation=counting)(x)
    assert len(calls) == 1 + 2 * 2  # stem, and two per block


def test_zero_channels_train_with_the_authors_relu():
    """A ZerO ResNet on a one-dimensional input has units that are exactly zero at init (every
    stem unit is the same map, and the widening Hadamard sums them to exact zeros); under the
    authors' ReLU they get a gradient, under PyTorch's they do not (fc: the sums are exact)."""
    x, y = torch.rand(32, 1, 1, 1, dtype=torch.float64) + 0.1, torch.randint(0, 10, (32,))
    rows = {}
    for name, act in (("torch", torch.relu), ("authors", relu_grad_at_zero)):
        net = resnet("fc", (1, 1, 1), 10, widths=(4, 8), blocks=1, block_type="C", init="zero",
                     activation=act, dtype=torch.float64)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        g = net.blocks[1].skip.weight.grad  # the projection 4 -> 8 (cropped Hadamard)
        rows[name] = int((g.abs().sum(1) > 0).sum())
    assert rows == {"torch": 2, "authors": 8}


def test_zero_members_differ_only_by_data_order():
    data = toy_data()
    ens = Ensemble([toy_fc("zero", 0), toy_fc("zero", 1), toy_fc("zero", 2)])
    train_members(ens, data, {}, [0.05] * 3, [7, 7, 8], epochs=1, batch_size=16)
    w = ens.stacked[ens.names.index("stem.weight")]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_stable_rank():
    assert stable_rank(torch.eye(5)) == pytest.approx(5.0)
    assert stable_rank(torch.outer(torch.arange(1.0, 4), torch.ones(6))) == pytest.approx(1.0)
    assert math.isnan(stable_rank(torch.zeros(3, 3)))
    k = torch.zeros(2, 3, 3, 3)
    k[0, 0, 1, 1], k[1, 1, 1, 1] = 1.0, 1.0
    assert stable_rank(k) == pytest.approx(2.0)  # a kernel as (out, in k k)


def test_update_stable_ranks_and_names():
    ens = Ensemble([toy_fc("zero", 0), toy_fc("he", 1)])
    initial = {n: p.detach().clone() for n, p in zip(ens.names, ens.stacked)}
    names = branch_weight_names(ens)
    assert names == ["blocks.0.conv1.weight", "blocks.0.conv2.weight", "blocks.1.conv1.weight",
                     "blocks.1.conv2.weight"]
    assert "classifier.weight" not in prunable_weight_names(ens) and "stem.weight" in prunable_weight_names(ens)
    with torch.no_grad():
        ens.stacked[ens.names.index(names[0])][1] += torch.outer(torch.ones(16), torch.arange(16.0))
    sr = update_stable_ranks(ens, initial, names[:1])
    assert sr.shape == (2, 1) and math.isnan(sr[0, 0]) and sr[1, 0] == pytest.approx(1.0)


def test_magnitude_pruning_per_member_and_layer():
    ens = Ensemble([toy_fc("he", 0), toy_fc("he", 1)])
    data = toy_data()
    before = member_accuracy(ens, data)
    acc = pruned_accuracy(ens, data, ["stem.weight"], 0.5)
    assert member_accuracy(ens, data) == before and len(acc) == 2  # a copy is pruned
    magnitude_prune_(ens, ["stem.weight"], 0.75)
    w = ens.stacked[ens.names.index("stem.weight")]
    assert [int((w[i] == 0).sum()) for i in range(2)] == [192, 192]  # 0.75 of 16 x 16
    with pytest.raises(ValueError):
        magnitude_prune_(ens, ["stem.weight"], 1.0)


def test_search_lrs_and_train_runs():
    data = toy_data(80)
    fit, val = split(data, 0.25, 0)
    assert len(val) == 20 and len(fit) == 60
    cfg = dict(epochs=2, batch_size=16, momentum=0.9)
    choice = search_lrs(toy_fc, ["zero", "he"], [0.01, 0.03, 0.1], [0, 1, 2], fit, val, 0.25, **cfg)
    assert set(choice) == {"zero", "he"}
    for c in choice.values():
        assert len(c.lrs) >= 3 and c.evidence.checks
        assert fallback_lr(c) in c.lrs
    acc, ens, hist, initial = train_runs(toy_fc, [("zero", 0.03, 0), ("he", 1e6, 0)], data, data, **cfg)
    assert len(acc) == 2 and set(initial) == set(ens.names) and hist.epoch == [1, 2] and len(hist.acc["test"]) == 2
    assert ens.isolate_diverged and hist.diverged == [False, True] and math.isnan(acc[1])
    with pytest.raises(ValueError):
        train_runs(toy_fc, [], data, data, **cfg)
    with pytest.raises(ValueError):
        split(data, 1.0, 0)


# --- determinism measurements of the stage ---------------------------------------------------------

def test_rng_untouched_tells_a_drawing_call_from_zero_init():
    from initrepro.studies.zero import rng_untouched

    assert rng_untouched(lambda: zero_hadamard_(torch.empty(8, 4)))
    net = resnet("fc", (4,), 3, widths=8, blocks=1, init="he", seed=0)  # building it draws; ZerO's init does not
    assert rng_untouched(lambda: zero_resnet_(net))
    assert not rng_untouched(lambda: resnet("fc", (4,), 3, widths=8, blocks=1, init="he", seed=0))
    assert not rng_untouched(lambda: torch.randn(1))


def test_max_param_diff_is_zero_exactly_for_identical_nets_and_names_the_tensor_that_differs():
    import copy

    from initrepro.studies.zero import max_param_diff, param_diffs

    a = resnet("fc", (4,), 3, widths=8, blocks=1, init="he", seed=0)
    b = copy.deepcopy(a)
    assert max_param_diff(a, b) == 0.0
    assert set(param_diffs(a, b)) == {n for n, _ in a.named_parameters()} and not any(param_diffs(a, b).values())
    with torch.no_grad():
        b.classifier.weight[0, 0] += 0.5
    diffs = param_diffs(a, b)
    assert diffs["classifier.weight"] == pytest.approx(0.5) and max_param_diff(a, b) == diffs["classifier.weight"]
    assert all(v == 0.0 for n, v in diffs.items() if n != "classifier.weight")
    assert max_param_diff(resnet("fc", (4,), 3, widths=8, blocks=1, init="he", seed=0),
                          resnet("fc", (4,), 3, widths=8, blocks=1, init="he", seed=1)) > 0
