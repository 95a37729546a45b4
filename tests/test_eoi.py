"""EOI (exactly orthogonal sparse init), the sparse baselines, static masks and the deep tanh nets."""

import math

import pytest
import torch

from initrepro.data import TensorData
from initrepro.init.eoi import (eoi_, eoi_matrices, eoi_reference, eoi_stack, min_density,
                                orthogonality_error, sparse_delta_orthogonal_)
from initrepro.init.sparse import (SCHEMES, approximate_isometry_stack, erk_densities, masked_gaussian_stack,
                                   orthogonal_stack, sparse_init_, uniform_masks)
from initrepro.measures.isometry import jacobian_singular_values, jacobian_singular_values_batched, log_spread
from initrepro.models.deep_tanh import DeepTanhCNN, DeepTanhMLP
from initrepro.studies.eoi import StaticMasks, init_static_sparse
from initrepro.training import TrainConfig, train

TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- EOI matrices ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(32, 32), (16, 48), (48, 16), (5, 40), (40, 1)])
@pytest.mark.parametrize("density", [0.1, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_eoi_is_exactly_orthogonal_at_the_target_density(dtype, shape, density, seed):
    density = max(density, min_density(*shape))
    w, mask = eoi_(torch.empty(shape, dtype=dtype), density, generator=gen(seed))
    assert float(orthogonality_error(w[None])) <= TOL[dtype]
    assert torch.equal(mask, w != 0)
    # One rotation changes the count by at most 2 * min(shape); the closer of the last two is kept.
    assert abs(mask.float().mean().item() - density) <= min(shape) / math.prod(shape) + 1e-9


def test_eoi_gain_scales_the_gram_matrix():
    w, _ = eoi_(torch.empty(24, 24, dtype=torch.float64), 0.25, gain=1.5, generator=gen())
    assert torch.allclose(w @ w.T, 2.25 * torch.eye(24, dtype=torch.float64), atol=1e-12)


def test_eoi_fills_in_place_and_is_seeded():
    t = torch.empty(20, 30)
    out, _ = eoi_(t, 0.2, generator=gen(3))
    assert out is t
    assert torch.equal(t, eoi_(torch.empty(20, 30), 0.2, generator=gen(3))[0])
    assert not torch.equal(t, eoi_(torch.empty(20, 30), 0.2, generator=gen(4))[0])


def test_lowest_density_is_the_padded_identity():
    w, _ = eoi_(torch.empty(8, 12), min_density(8, 12), generator=gen())
    assert torch.equal(w, torch.eye(8, 12))


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (64, 64), (3, 40)])
@pytest.mark.parametrize("density", [0.125, 0.3, 1.0])
def test_batched_rounds_match_the_recount_reference_bitwise(shape, density):
    density = max(density, min_density(*shape))
    reference = eoi_reference(*shape, density, generator=gen(5))
    assert torch.equal(eoi_matrices(1, *shape, density, generator=gen(5), dtype=torch.float64)[0], reference)
    assert torch.equal(eoi_(torch.empty(shape, dtype=torch.float64), density, generator=gen(5))[0], reference)


def test_stack_and_per_layer_calls_share_one_core():
    g = gen(7)
    singles = [eoi_(torch.empty(24, 40), 0.2, generator=g)[0].clone() for _ in range(3)]
    stacked, masks = eoi_stack(3, (24, 40), 0.2, generator=gen(7))
    assert torch.equal(stacked, torch.stack(singles)) and torch.equal(masks, stacked != 0)


def test_per_layer_eoi_is_much_faster_than_the_recount_loop():
    """Issue 8 (loose guard; the stage checks 10x): 128x128 at density 0.125, CPU time."""
    import time

    w, g = torch.empty(128, 128), gen()
    start = time.process_time()
    for _ in range(20):
        eoi_(w, 0.125, generator=g)
    fast = (time.process_time() - start) / 20
    start = time.process_time()
    for _ in range(3):
        eoi_reference(128, 128, 0.125, generator=g)
    assert (time.process_time() - start) / 3 > 4 * fast


def test_stacked_matrices_are_independent_and_orthogonal():
    w = eoi_matrices(50, 64, 64, 0.125, generator=gen())
    assert orthogonality_error(w).max() <= 1e-6
    assert not torch.equal(w[0], w[1])
    assert ((w != 0).flatten(1).float().mean(1) - 0.125).abs().max() <= 0.01


@pytest.mark.parametrize("density", [0.0, 0.05, 1.01, -1.0])
def test_bad_density_raises_with_the_lowest_reachable(density):
    with pytest.raises(ValueError, match=r"density must be in \[0.0625, 1\]"):
        eoi_(torch.empty(16, 8), density)


@pytest.mark.parametrize("shape", [(4,), (2, 3, 4), (2, 2, 2, 2, 2)])
def test_bad_shape_raises(shape):
    with pytest.raises(ValueError, match="shape must be 2-D"):
        eoi_(torch.empty(shape), 0.5)


def test_bad_gain_and_count_raise():
    with pytest.raises(ValueError, match="gain"):
        eoi_(torch.empty(4, 4), 0.5, gain=0.0)
    with pytest.raises(ValueError, match="count"):
        eoi_matrices(0, 4, 4, 0.5)


# --- sparse delta-orthogonal convs ------------------------------------------------------------


@pytest.mark.parametrize("shape", [(16, 16, 3, 3), (8, 16, 3, 3), (16, 8, 5, 5)])
def test_conv_kernel_has_centre_support_and_target_mask_density(shape):
    w, mask = sparse_delta_orthogonal_(torch.empty(shape), 0.2, generator=gen())
    centre = w[:, :, shape[2] // 2, shape[3] // 2]
    off_centre = w.clone()
    off_centre[:, :, shape[2] // 2, shape[3] // 2] = 0
    assert torch.count_nonzero(off_centre) == 0
    assert float(orthogonality_error(centre[None])) <= 1e-6
    assert int(mask.sum()) == round(0.2 * w.numel())
    assert bool(mask[w != 0].all())  # every nonzero is trainable


def test_conv_is_an_isometry_under_circular_padding():
    conv = torch.nn.Conv2d(6, 6, 3, padding=1, padding_mode="circular", bias=False).double()
    sparse_delta_orthogonal_(conv.weight, 0.5, gain=1.3, generator=gen())
    sv = jacobian_singular_values(conv, torch.randn(6, 5, 5, dtype=torch.float64))
    assert torch.allclose(sv, torch.full_like(sv, 1.3), atol=1e-12)


def test_conv_bad_arguments_raise():
    with pytest.raises(ValueError, match="odd"):
        eoi_(torch.empty(4, 4, 2, 2), 0.5)
    with pytest.raises(ValueError, match="tensor must be a 4-D"):
        sparse_delta_orthogonal_(torch.empty(4, 4), 0.5)
    with pytest.raises(ValueError, match="density"):
        eoi_stack(1, (8, 8, 3, 3), 0.1)


# --- masks and baselines --------------------------------------------------------------------


def test_uniform_masks_have_exact_counts():
    m = uniform_masks(10, (16, 8, 3, 3), 0.1, gen())
    assert m.shape == (10, 16, 8, 3, 3)
    assert (m.flatten(1).sum(1) == round(0.1 * 16 * 8 * 9)).all()
    with pytest.raises(ValueError, match="density"):
        uniform_masks(1, (4, 4), 0.0)


def test_erk_keeps_global_density_and_favours_small_layers():
    shapes = [(128, 64), (128, 128), (128, 128), (10, 128), (64, 64, 3, 3)]
    d = erk_densities(shapes, 0.125)
    sizes = [math.prod(s) for s in shapes]
    assert sum(di * n for di, n in zip(d, sizes)) == pytest.approx(0.125 * sum(sizes))
    assert all(0 < di <= 1 for di in d)
    assert d[3] > d[1] > d[4]
    assert erk_densities([(4, 4), (1000, 1000)], 0.5)[0] == 1.0  # capped, budget moved on


def test_orthogonal_and_delta_orthogonal_stacks():
    assert orthogonality_error(orthogonal_stack(5, (12, 7), generator=gen())).max() <= 1e-6
    conv = orthogonal_stack(3, (8, 8, 3, 3), gain=2.0, generator=gen())
    assert orthogonality_error(conv[:, :, :, 1, 1], gain=2.0).max() <= 1e-5
    assert torch.count_nonzero(conv[:, :, :, 0]) == 0


def test_masked_gaussian_variance_is_rescaled_by_density():
    w, mask = masked_gaussian_stack(20, (64, 256), 0.25, gain=2.0, generator=gen())
    assert torch.count_nonzero(w[~mask]) == 0
    assert w[mask].std().item() == pytest.approx(2.0 / math.sqrt(256 * 0.25), rel=0.05)


def test_approximate_isometry_keeps_the_mask_and_reduces_the_error():
    w0, m0 = approximate_isometry_stack(4, (32, 32), 0.3, generator=gen(), steps=0)
    w1, m1 = approximate_isometry_stack(4, (32, 32), 0.3, generator=gen(), steps=200, lr=0.02)
    assert torch.equal(m0, m1) and torch.count_nonzero(w1[~m1]) == 0
    assert orthogonality_error(w1).max() < 0.5 * orthogonality_error(w0).max()
    with pytest.raises(ValueError, match="steps"):
        approximate_isometry_stack(1, (4, 4), 0.5, steps=-1)


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_every_scheme_initializes_a_small_mlp(scheme):
    net = DeepTanhMLP(12, 3, depth=5, width=16)
    masks = sparse_init_(net.weight_layers(), scheme, 0.25, gain=1.1, bias_std=0.01, generator=gen(),
                         **({"steps": 5} if scheme == "approximate_isometry" else {}))
    for layer, mask in zip(net.weight_layers(), masks):
        assert mask.shape == layer.weight.shape and mask.dtype == torch.bool
        assert torch.count_nonzero(layer.weight[~mask]) == 0
    density = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)
    assert density == pytest.approx(1.0 if scheme == "dense_orthogonal" else 0.25, abs=0.03)


def test_sparse_init_bad_arguments_raise():
    layers = DeepTanhMLP(4, 2, depth=3, width=4).weight_layers()
    with pytest.raises(ValueError, match="scheme"):
        sparse_init_(layers, "snip", 0.5)
    with pytest.raises(ValueError, match="density"):
        sparse_init_(layers, "eoi", 0.0)
    with pytest.raises(ValueError, match="bias_std"):
        sparse_init_(layers, "eoi", 0.5, bias_std=-1.0)


# --- static sparse training -----------------------------------------------------------------


def random_data(n, shape, classes, seed=0):
    g = gen(seed)
    return TensorData(torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g),
                      classes, "random")


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_pruned_weights_stay_zero_under_momentum_and_weight_decay(kind):
    net = (DeepTanhMLP(64, 4, depth=6, width=16) if kind == "mlp"
           else DeepTanhCNN((1, 8, 8), 4, depth=6, channels=8))
    masks = init_static_sparse(net.weight_layers(), "eoi", 0.25, gain=1.0247, bias_std=0.01, generator=gen())
    saved = [m.clone() for m in masks.masks]
    data = random_data(64, (1, 8, 8), 4)
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)
    train(net, data, data, cfg, after_step=masks, progress=False)
    for weight, mask, before in zip(masks.weights, masks.masks, saved):
        assert torch.equal(mask, before)
        assert torch.count_nonzero(weight[mask == 0]) == 0
        assert torch.count_nonzero(weight[mask == 1]) > 0.5 * mask.sum()  # the unmasked ones trained
    # Without the hook, momentum and weight decay revive pruned weights: the hook is what keeps them 0.
    net2 = DeepTanhMLP(64, 4, depth=6, width=16)
    masks2 = init_static_sparse(net2.weight_layers(), "eoi", 0.25, generator=gen())
    train(net2, data, data, cfg, progress=False)
    assert any(torch.count_nonzero(w[m == 0]) for w, m in zip(masks2.weights, masks2.masks))


def test_static_masks_bad_arguments_raise():
    layers = DeepTanhMLP(4, 2, depth=3, width=4).weight_layers()
    with pytest.raises(ValueError, match="masks must have one entry per layer"):
        StaticMasks(layers, [torch.ones(4, 4, dtype=torch.bool)])
    with pytest.raises(ValueError, match=r"masks\[0\]"):
        StaticMasks(layers, [torch.ones(2, 2, dtype=torch.bool)] * 3)


# --- models -----------------------------------------------------------------------------------


def test_models_count_weight_layers_and_use_circular_padding():
    assert len(DeepTanhMLP(784, 10, depth=7, width=8).weight_layers()) == 7
    cnn = DeepTanhCNN((3, 32, 32), 10, depth=9, channels=4)
    layers = cnn.weight_layers()
    assert len(layers) == 9 and layers[-1].in_features == 4 * 4 * 4
    assert all(c.padding_mode == "circular" for c in layers[:-1])
    assert [c.stride for c in layers[:3]] == [(1, 1), (2, 2), (2, 2)]


def test_models_bad_arguments_raise():
    with pytest.raises(ValueError, match="depth"):
        DeepTanhMLP(4, 2, depth=1)
    with pytest.raises(ValueError, match="width"):
        DeepTanhMLP(4, 2, depth=3, width=0)
    with pytest.raises(ValueError, match="depth"):
        DeepTanhCNN((1, 8, 8), 2, depth=3)
    with pytest.raises(ValueError, match="channels"):
        DeepTanhCNN((1, 8, 8), 2, channels=0)
    with pytest.raises(ValueError, match="input_shape"):
        DeepTanhCNN((1, 12, 12), 2)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_paper_profile_one_step(kind):
    """The authors' setups (MLP on MNIST, CNN on CIFAR-10), one SGD step on random tensors."""
    torch.set_flush_denormal(True)
    shape, net = {"mlp": ((1, 28, 28), lambda: DeepTanhMLP(784, 10, depth=1000, width=128)),
                  "cnn": ((3, 32, 32), lambda: DeepTanhCNN((3, 32, 32), 10, depth=1000, channels=128))}[kind]
    net = net()
    masks = init_static_sparse(net.weight_layers(), "eoi", 0.125, gain=1.0247, bias_std=0.00448, generator=gen())
    assert masks.density == pytest.approx(0.125, abs=0.01)
    data = random_data(2, shape, 10)
    cfg = TrainConfig(epochs=1, batch_size=2, lr=1e-4, momentum=0.9, nesterov=True, weight_decay=1e-4,
                      milestones=(50, 75), augment=kind == "cnn", max_steps=1)
    history = train(net, data, data, cfg, after_step=masks, progress=False)
    assert history.step == [1] and not history.diverged
    assert all(torch.count_nonzero(w[m == 0]) == 0 for w, m in zip(masks.weights, masks.masks))


def test_sparse_net_is_a_function_of_the_seed():
    from initrepro.studies.eoi import sparse_net

    build = lambda: DeepTanhMLP(12, 3, depth=5, width=16)  # noqa: E731
    (a, ma), (b, _), (c, _) = (sparse_net(build, "eoi", 0.25, s, gain=1.1) for s in (3, 3, 4))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.body[0].weight, c.body[0].weight)
    assert ma.density == pytest.approx(0.25, abs=0.03)


# --- seeds batched as one ensemble; the Jacobian spread measure --------------------------------


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_stacked_sparse_nets_train_exactly_as_alone(kind):
    from initrepro.studies.eoi import sparse_ensemble, sparse_net

    build = ((lambda: DeepTanhMLP(64, 4, depth=5, width=16)) if kind == "mlp"
             else (lambda: DeepTanhCNN((1, 8, 8), 4, depth=5, channels=16)))
    cells = [("eoi", 0), ("uniform_gaussian", 1), ("dense_orthogonal", 2)]
    data = random_data(48, (1, 8, 8), 4)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)
    ens, ens_masks = sparse_ensemble(build, cells, 0.25, gain=1.0247, bias_std=0.01)
    assert ens_masks.density[2] == 1.0 and ens_masks.density[0] == pytest.approx(0.25, abs=0.05)
    together = train(ens, data, data, cfg, after_step=ens_masks, progress=False)
    for k, (scheme, seed) in enumerate(cells):
        net, masks = sparse_net(build, scheme, 0.25, seed, gain=1.0247, bias_std=0.01)
        alone = train(net, data, data, cfg, after_step=masks, progress=False)
        assert together.test_acc[-1][k] == pytest.approx(alone.test_acc[-1], abs=1e-6)
        for name, stacked in zip(ens.names, ens.stacked):
            assert torch.allclose(stacked[k], dict(net.named_parameters())[name], atol=1e-5)
        for weight, mask in zip(masks.weights, masks.masks):
            assert torch.count_nonzero(weight[~mask]) == 0


def test_ensemble_masks_reject_mismatched_masks():
    from initrepro.models.ensemble import Ensemble
    from initrepro.studies.eoi import EnsembleMasks

    ens = Ensemble([DeepTanhMLP(4, 2, depth=3, width=4) for _ in range(2)])
    with pytest.raises(ValueError, match="one entry per member"):
        EnsembleMasks(ens, [{"stem.1.weight": torch.ones(4, 4, dtype=torch.bool)}])
    with pytest.raises(ValueError, match="not in the ensemble"):
        EnsembleMasks(ens, [{"nope.weight": torch.ones(4, 4, dtype=torch.bool)}] * 2)


def test_log_spread_is_zero_for_an_isometry_and_grows_with_collapse():
    assert log_spread([0.3] * 10) == pytest.approx(0.0, abs=1e-12)
    assert log_spread([1.0, math.e]) == pytest.approx(0.5)
    assert log_spread([1.0, 0.0]) > 300  # an exact zero counts as the floor, never NaN
    with pytest.raises(ValueError):
        log_spread([1.0, float("nan")])


def test_jacobian_spread_tells_eoi_from_sparse_gaussian_at_depth():
    """The registered measure can tell the arms apart: at depth 200 the sparse Gaussian net's
    ln-spectrum is several nats wider than EOI's, EOI's within ln 2 of the dense orthogonal net's."""
    from initrepro.studies.eoi import sparse_net

    torch.set_flush_denormal(True)
    build = lambda: DeepTanhMLP(16, 10, depth=200, width=64)  # noqa: E731
    x = torch.randn(16, generator=gen())
    spread = {s: log_spread(jacobian_singular_values(sparse_net(build, s, 0.125, 0, gain=1.0247)[0], x))
              for s in ("eoi", "dense_orthogonal", "uniform_gaussian")}
    assert abs(spread["eoi"] - spread["dense_orthogonal"]) < math.log(2)
    assert spread["uniform_gaussian"] - spread["eoi"] > math.log(10)


def test_eoi_at_its_lowest_density_is_the_identity_so_a_narrow_cnn_does_not_mix_channels():
    """At 8 channels, density 0.125 = 1/8 is EOI's lowest: the centre tap is the identity and no
    rotation mixes channels (why the 8-channel CNN's Jacobian collapsed)."""
    w, _ = sparse_delta_orthogonal_(torch.empty(8, 8, 3, 3), 0.125, generator=gen())
    assert torch.equal(w[:, :, 1, 1], torch.eye(8))
    w16, _ = sparse_delta_orthogonal_(torch.empty(16, 16, 3, 3), 0.125, generator=gen())
    assert int((w16[:, :, 1, 1] != 0).sum()) > 16  # 16 channels: rotations mix pairs of channels


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_batched_jacobian_matches_jacrev(kind):
    from initrepro.studies.eoi import sparse_net

    build = ((lambda: DeepTanhMLP(64, 10, depth=30, width=32)) if kind == "mlp"
             else (lambda: DeepTanhCNN((1, 8, 8), 10, depth=8, channels=16)))
    net, _ = sparse_net(build, "eoi", 0.25, 0, gain=1.0247, bias_std=0.01)
    x = torch.randn(1, 8, 8, generator=gen()) if kind == "cnn" else torch.randn(64, generator=gen())
    assert torch.allclose(jacobian_singular_values_batched(net, x), jacobian_singular_values(net, x),
                          rtol=1e-9, atol=1e-14)


def test_accuracy_trace_records_curves_without_changing_the_run():
    from initrepro.studies.eoi import AccuracyTrace, merge_curve, sparse_ensemble

    build = lambda: DeepTanhMLP(64, 4, depth=5, width=16)  # noqa: E731
    cells = [("eoi", 0), ("uniform_gaussian", 1)]
    data = random_data(48, (1, 8, 8), 4)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2, max_steps=5)
    runs = []
    for every in (0, 2):
        ens, masks = sparse_ensemble(build, cells, 0.25, gain=1.0247, bias_std=0.01)
        trace = AccuracyTrace(masks, data, every=every, last=cfg.max_steps)
        trace.record(ens, 0)  # at init
        hist = train(ens, data, data, cfg, after_step=trace, progress=False)
        runs.append((ens, trace, hist))
    (plain, _, plain_hist), (traced, trace, hist) = runs
    assert all(torch.equal(a, b) for a, b in zip(plain.stacked, traced.stacked))
    assert plain_hist.test_acc == hist.test_acc and trace.step == [0, 2, 4]
    steps, accs = merge_curve(trace, hist)
    assert steps == [0, 2, 4, 5] and accs[-1] == hist.test_acc[-1] and len(accs[0]) == len(cells)
    with pytest.raises(ValueError, match="every"):
        AccuracyTrace(None, data, every=-1, last=5)
