"""ZerO (Zhao et al. 2022): exact properties of the Hadamard initializer, the ZerO ResNet and
the training-degeneracy bound."""

import math

import pytest
import torch

from initrepro.init.zero import hadamard, zero_hadamard_, zero_matrix, zero_resnet_
from initrepro.models.resnet import INITIALIZERS, resnet
from initrepro.zero_degeneracy import init_widening_mlp_, update_ranks, widening_mlp

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
