"""ConstNet (Blumenfeld et al. 2020): the init, the WRN, the symmetry measures, the breakers."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from initrepro.data import TensorData
from initrepro.init.constnet import channel_average_
from initrepro.models.wrn import probe_init, wrn
from initrepro.measures.symmetry import (SymmetryTracker, conv_layers, distinct_rows, diversity,
                                mean_pairwise_correlation, relative_spread)
from initrepro.studies.constnet import (BREAKERS, KERNELS, build_arm, channel_uniform_kernels,
                                         first_asymmetric_step, kernel_set, onednn, permuted_weight_grad,
                                         probe_kernels, seconds_per_step, skip_reason, train_arm, train_arms,
                                         uniform_conv2d, uniform_convs_, uniform_im2col)
from initrepro.training import TrainConfig, train


def small_data(n=64, size=8, channels=1, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, size, size, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return TensorData(x, y, classes, "random")


# --- the ConstNet init ---------------------------------------------------------------------

def test_channel_average_centre_tap_only():
    w = channel_average_(torch.randn(5, 3, 3, 3))
    assert torch.all(w[:, :, 1, 1] == 1 / 3)
    w[:, :, 1, 1] = 0
    assert torch.all(w == 0)
    assert torch.all(channel_average_(torch.randn(4, 8, 1, 1)) == 1 / 8)


@pytest.mark.parametrize("shape", [(4, 3), (4, 3, 2, 2)])
def test_channel_average_rejects_bad_tensor(shape):
    with pytest.raises(ValueError, match="tensor"):
        channel_average_(torch.empty(shape))


@pytest.mark.parametrize("size,channels", [(8, 1), (28, 1), (32, 3)])
def test_constnet_zero_logits_and_identical_channels(size, channels):
    model = wrn(10, 2, num_classes=10, in_channels=channels, init="constnet")
    x = torch.randn(6, channels, size, size, generator=torch.Generator().manual_seed(1))
    assert model(x).abs().max() == 0
    for out in model.layer_outputs(x):
        assert distinct_rows(out, dim=1) == 1
    for w in conv_layers(model).values():
        assert distinct_rows(w) == 1


def test_constnet_weights_are_the_authors():
    model = wrn(16, 2, num_classes=10, in_channels=3, init="constnet")
    assert len(model.blocks) == 12  # (16 - 4) / 3 one-conv blocks
    assert torch.all(model.stem.weight[:, :, 1, 1] == 1 / 3)
    for block in model.blocks:
        assert torch.all(block.conv.weight == 0)
        assert torch.all(block.bn.weight == 1) and torch.all(block.bn.bias == 0)
        if block.shortcut is not None:
            assert torch.all(block.shortcut.weight == 1 / block.shortcut.in_channels)
    assert torch.all(model.fc.weight == 0) and torch.all(model.fc.bias == 0)
    assert sum(b.shortcut is not None for b in model.blocks) == 3


def test_he_init_fan_out_moments():
    model = wrn(10, 8, num_classes=10, in_channels=3, init="he", generator=torch.Generator().manual_seed(0))
    conv = model.blocks[-1].conv.weight  # 512 x 512 x 3 x 3
    assert conv.mean().abs() < 1e-3
    assert conv.std().item() == pytest.approx(math.sqrt(2 / (9 * 512)), rel=0.01)
    assert torch.all(model.fc.weight == 0)


def test_he_init_is_seeded():
    a, b = (wrn(10, 1, 10, 1, init="he", generator=torch.Generator().manual_seed(3)) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_probe_init_constnet():
    data = small_data(n=32)
    probe = probe_init(wrn(10, 1, 4, 1, init="constnet"), data.x, data.y)
    assert probe.max_abs_logit == 0
    assert probe.distinct_channels == [1] * 7
    assert all(g > 0 for g in probe.grad_norms)


@pytest.mark.parametrize("kwargs,name", [
    (dict(depth=12), "depth"), (dict(depth=4), "depth"), (dict(depth=13), "depth"),
    (dict(widen_factor=0), "widen_factor"), (dict(init="xavier"), "init"), (dict(dropout=1.0), "dropout"),
    (dict(num_classes=0), "num_classes"),
])
def test_wrn_rejects_bad_arguments(kwargs, name):
    args = dict(depth=10, widen_factor=1, num_classes=10, in_channels=1) | kwargs
    with pytest.raises(ValueError, match=name):
        wrn(**args)


def test_paper_profile_one_step_on_cifar_shaped_tensors():
    data = small_data(n=4, size=32, channels=3, classes=10)
    model = wrn(16, 10, num_classes=10, in_channels=3, init="constnet")
    before = model.fc.weight.clone()
    cfg = TrainConfig(epochs=1, batch_size=4, lr=0.03, momentum=0.9, weight_decay=5e-4,
                      milestones=(160, 220, 260), gamma=0.2, augment=True, max_steps=1)
    history = train(model, data, data, cfg, progress=False)
    assert history.step == [1] and not history.diverged
    assert not torch.equal(model.fc.weight, before)


# --- symmetry measures on hand-made weights ---------------------------------------------------

def test_distinct_rows_counts_exact_bits():
    w = torch.zeros(4, 2, 3, 3)
    w[1] += 1.0
    assert distinct_rows(w) == 2 and distinct_rows(w, dim=1) == 1
    w[3, 0, 0, 0] = torch.nextafter(torch.tensor(0.0), torch.tensor(1.0))  # one denormal apart
    assert distinct_rows(w) == 3


def test_mean_pairwise_correlation_matches_numpy():
    rows = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 2.0, 1.0], [0.5, -1.0, 2.0]])
    expected = np.corrcoef(rows.numpy())[np.tril_indices(4, -1)].mean()
    assert mean_pairwise_correlation(rows) == pytest.approx(expected)
    assert mean_pairwise_correlation(rows[:3]) == pytest.approx(-1 / 3)
    assert mean_pairwise_correlation(rows.T, dim=1) == pytest.approx(expected)


def test_constant_rows_count_as_correlation_one():
    assert mean_pairwise_correlation(torch.zeros(5, 4)) == 1.0
    assert math.isnan(mean_pairwise_correlation(torch.ones(1, 4)))


def test_relative_spread_float64():
    w = torch.full((8, 3, 3, 3), 0.1)  # 0.1 is inexact in float32: a float32 mean would show spread
    assert relative_spread(w) == 0.0
    rows = torch.tensor([[1.0, 0.0], [1.0, 2.0]])  # mean (1, 1), deviations (0, -1), (0, 1)
    assert relative_spread(rows) == pytest.approx(1 / math.sqrt(2))
    assert relative_spread(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == math.inf


def test_diversity_bounds():
    identical = torch.ones(4, 6, 3, 3)
    assert diversity([identical]) == pytest.approx(0.5 * math.log(2.0 ** -52))
    g = torch.Generator().manual_seed(0)
    assert diversity([torch.randn(256, 64, 3, 3, generator=g)]) == pytest.approx(0.0, abs=1e-3)


def test_tracker_records_every_k_steps():
    model = wrn(10, 1, 4, 1, init="constnet")
    tracker = SymmetryTracker(every=2)
    for step in range(5):
        tracker(model, step)
    assert tracker.step == [0, 2, 4]
    assert tracker.max_distinct == [1, 1, 1] and tracker.median_spread == [0.0, 0.0, 0.0]
    assert tracker.first_step_spread_above(1e-3) is None
    with pytest.raises(ValueError, match="every"):
        SymmetryTracker(every=0)


# --- symmetry breakers ---------------------------------------------------------------------

@pytest.mark.parametrize("stride,padding,blocks", [(1, 1, 32), (2, 1, 7), (1, 0, 1000)])
def test_permuted_weight_grad_is_the_conv_weight_gradient(stride, padding, blocks):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, 9, 9, generator=g, dtype=torch.float64)
    w = torch.randn(4, 5, 3, 3, generator=g, dtype=torch.float64)
    out = F.conv2d(x, w, stride=stride, padding=padding)
    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    expected = torch.nn.grad.conv2d_weight(x, w.shape, grad_out, stride=stride, padding=padding)
    got = permuted_weight_grad(x, grad_out, w.shape, (stride, stride), (padding, padding), g, blocks=blocks)
    torch.testing.assert_close(got, expected)


def test_permuted_weight_grad_rounds_channels_differently():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 8, 8, generator=g)
    grad_out = torch.randn(64, 1, 8, 8, generator=g).expand(64, 16, 8, 8)  # identical channels
    got = permuted_weight_grad(x, grad_out, torch.Size([16, 3, 3, 3]), (1, 1), (1, 1), g)
    assert distinct_rows(got) > 1
    assert relative_spread(got) < 1e-5  # rounding-size differences only


def run_steps(breaker, steps=6):
    data = small_data(n=64)
    model, before_step = build_arm(breaker, "constnet", depth=10, widen_factor=1, num_classes=4, in_channels=1)
    train(model, data, data, TrainConfig(epochs=1, batch_size=16, lr=0.1, max_steps=steps),
          before_step=before_step, progress=False)
    return [distinct_rows(w) for w in conv_layers(model).values()]


def test_none_keeps_constnet_bitwise_symmetric():
    assert run_steps("none") == [1] * 7


def test_reduction_order_breaks_bitwise_symmetry():
    counts = run_steps("reduction_order")
    assert all(c > 1 for c in counts)


def test_ulp_jitter_moves_each_nonzero_gradient_by_one_ulp():
    model, before_step = build_arm("ulp_jitter", "constnet", depth=10, widen_factor=1, num_classes=4,
                                   in_channels=1)
    grad = torch.randn(model.fc.weight.shape)
    grad[0] = 0.0
    model.fc.weight.grad = grad.clone()
    before_step(model, 0)
    new = model.fc.weight.grad
    assert torch.all(new[0] == 0)
    up, down = torch.nextafter(grad, torch.tensor(math.inf)), torch.nextafter(grad, torch.tensor(-math.inf))
    moved = (new == up) | (new == down)
    assert torch.all(moved[1:])
    assert 0.3 < (new[1:] > grad[1:]).float().mean() < 0.7


def test_dropout_breaker_builds_dropout_model():
    model, before_step = build_arm("dropout", "constnet", depth=10, widen_factor=1, num_classes=4, in_channels=1)
    assert before_step is None and all(b.dropout == 0.01 for b in model.blocks)


def test_cuda_breaker_is_skipped_without_cuda():
    assert skip_reason("cuda", "cpu") is not None
    assert skip_reason("none", "cpu") is None
    data = small_data(n=16)
    result = train_arm("cuda", "constnet", data, data, TrainConfig(epochs=1), depth=10, widen_factor=1)
    assert result.skipped and result.history is None and math.isnan(result.final_test_acc)


@pytest.mark.parametrize("call", [
    lambda: skip_reason("gpu"),
    lambda: build_arm("atomic", "constnet", depth=10, widen_factor=1, num_classes=2, in_channels=1),
])
def test_unknown_breaker_raises(call):
    with pytest.raises(ValueError, match="breaker"):
        call()


def test_breaker_registry_names():
    assert set(BREAKERS) == {"none", "cuda", "reduction_order", "ulp_jitter", "dropout"}


def test_train_arm_tracks_and_is_repeatable():
    data = small_data(n=32)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.1, seed=3)
    a, b = (train_arm("ulp_jitter", "constnet", data, data, cfg, depth=10, widen_factor=1, track_every=1,
                      progress=False) for _ in range(2))
    assert a.tracker.step == [0, 1, 2]
    assert a.tracker.median_spread == b.tracker.median_spread and a.history.test_acc == b.history.test_acc


def test_seconds_per_step_positive():
    data = small_data(n=16)
    assert seconds_per_step("reduction_order", data.x, data.y, depth=10, widen_factor=1, num_classes=4,
                            steps=1) > 0
    with pytest.raises(ValueError, match="steps"):
        seconds_per_step("none", data.x, data.y, depth=10, widen_factor=1, num_classes=4, steps=0)


def test_diversity_is_exactly_constant_on_identical_rows():
    same_inputs = torch.randn(8, 1, 3, 3, generator=torch.Generator().manual_seed(0)).expand(8, 6, 3, 3)
    assert diversity([same_inputs]) == 0.5 * math.log(2.0 ** -52)
    assert diversity([torch.randn(8, 1, 3, 3)]) == 0.0  # one input channel: no pair


# --- channel-uniform kernels, parallel arms, the kernel probe --------------------------------

def test_channel_uniform_kernels_turn_onednn_off_and_restore():
    before = torch.backends.mkldnn.enabled
    with channel_uniform_kernels():
        assert not torch.backends.mkldnn.enabled
    with channel_uniform_kernels(False):
        assert torch.backends.mkldnn.enabled == before
    assert torch.backends.mkldnn.enabled == before
    with onednn(True):
        assert torch.backends.mkldnn.enabled
    assert torch.backends.mkldnn.enabled == before


def test_constnet_arms_train_with_channel_uniform_kernels(monkeypatch):
    import initrepro.studies.constnet as sb

    seen = []
    real_train = sb.train
    monkeypatch.setattr(sb, "train", lambda *a, **k: (seen.append(torch.backends.mkldnn.enabled), real_train(*a, **k))[1])
    data = small_data(n=16)
    cfg = TrainConfig(epochs=1, batch_size=16, max_steps=1)
    for init in ("constnet", "he"):
        train_arm("none", init, data, data, cfg, depth=10, widen_factor=1, progress=False)
    assert seen == [False, torch.backends.mkldnn.enabled]


def test_constnet_arms_record_their_kernels_and_device():
    data = small_data(n=16)
    cfg = TrainConfig(epochs=1, batch_size=16, max_steps=1)
    const = train_arm("none", "constnet", data, data, cfg, depth=10, widen_factor=1, progress=False)
    he = train_arm("none", "he", data, data, cfg, depth=10, widen_factor=1, progress=False, device="cpu")
    assert const.kernels == "uniform" and he.kernels in ("onednn", "onednn_off")


def test_none_keeps_constnet_symmetric_in_both_directions_with_tracking():
    data = small_data(n=64)
    result = train_arm("none", "constnet", data, data, TrainConfig(epochs=2, batch_size=16, lr=0.1), depth=10,
                       widen_factor=1, track_every=3, progress=False)
    assert result.tracker.step == [0, 3, 6, 8]  # the final step is always recorded
    assert set(result.tracker.max_distinct) == {1} and set(result.tracker.max_distinct_inputs) == {1}


def test_test_acc_at_epoch():
    data = small_data(n=32)
    result = train_arm("dropout", "constnet", data, data, TrainConfig(epochs=2, batch_size=16), depth=10,
                       widen_factor=1, track_every=None, progress=False)
    assert result.test_acc_at(2) == result.final_test_acc and result.test_acc_at(1) == result.history.test_acc[0]
    with pytest.raises(ValueError, match="epoch"):
        result.test_acc_at(3)
    result.history.diverged = True
    assert result.test_acc_at(3) == 0.0


def test_train_arms_in_processes_equals_in_process():
    data = small_data(n=32)
    jobs = [dict(breaker=b, init="constnet", train_set=data, test_set=data, depth=10, widen_factor=1,
                 track_every=2, cfg=TrainConfig(epochs=1, batch_size=16, seed=1)) for b in ("ulp_jitter", "dropout")]
    here, there = train_arms(jobs, workers=1), train_arms(jobs, workers=2)
    for a, b in zip(here, there):
        assert a.history.test_acc == b.history.test_acc and a.tracker.median_spread == b.tracker.median_spread
    with pytest.raises(ValueError, match="workers"):
        train_arms(jobs, workers=0)


def test_first_asymmetric_step_none_with_channel_uniform_kernels():
    data = small_data(n=64)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.1, max_steps=4)
    assert first_asymmetric_step(data, data, cfg, depth=10, widen_factor=1, kernels="uniform") is None
    with pytest.raises(ValueError, match="kernels"):
        first_asymmetric_step(data, data, cfg, depth=10, widen_factor=1, kernels="mkl")


def test_probe_kernels_runs_each_environment_in_a_fresh_interpreter():
    probe = probe_kernels({"default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}},
                          dataset="digits", seed=0, steps=2, depth=10, widen_factor=1, batch_size=32, lr=0.1,
                          kernels=("uniform", "onednn_off"))
    assert probe["default"]["cpu_capability"] == "DEFAULT"
    assert probe["default"]["ATEN_CPU_CAPABILITY"] == "default"
    assert probe["default"]["uniform"] is None and probe["default"]["onednn_off"] is None
    with pytest.raises(ValueError, match="steps"):
        probe_kernels({}, dataset="digits", seed=0, steps=0, depth=10, widen_factor=1, batch_size=32, lr=0.1)


# --- the channel-uniform convolution ---------------------------------------------------------

@pytest.mark.parametrize("kernel,stride,padding", [(3, 1, 1), (3, 2, 1), (1, 2, 0), (1, 1, 0), (3, 1, 0)])
def test_uniform_conv2d_is_conv2d_with_its_gradients(kernel, stride, padding):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 7, 6, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, 4, kernel, kernel, generator=g, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(uniform_conv2d(x, w, stride, padding), F.conv2d(x, w, stride=stride, padding=padding))
    assert torch.autograd.gradcheck(lambda a, b: uniform_conv2d(a, b, stride, padding), (x, w))


def test_uniform_im2col_matches_unfold_up_to_the_column_order():
    x = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    patches, ho, wo = uniform_im2col(x, 3, 2, 1)
    ref = F.unfold(x, 3, padding=1, stride=2)  # (N, C*9, L), channel slowest
    ref = ref.view(2, 3, 9, ho * wo).permute(0, 3, 2, 1).reshape(2 * ho * wo, 27)  # (N*L, (tap, C))
    assert torch.equal(patches, ref)


def test_uniform_conv2d_keeps_identical_channels_identical():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=g).expand(64, 16, 8, 8).contiguous().requires_grad_()
    w = torch.randn(1, 1, 3, 3, generator=g).expand(32, 16, 3, 3).contiguous().requires_grad_()
    out = uniform_conv2d(x, w, 2, 1)
    assert distinct_rows(out, dim=1) == 1
    out.backward(torch.randn(64, 1, 4, 4, generator=g).expand_as(out))
    assert distinct_rows(w.grad) == 1 and distinct_rows(w.grad, dim=1) == 1 and distinct_rows(x.grad, dim=1) == 1


def test_uniform_convs_replace_every_conv_and_reject_biased_ones():
    model = uniform_convs_(wrn(10, 1, 4, 1, init="he", generator=torch.Generator().manual_seed(0)))
    ref = wrn(10, 1, 4, 1, init="he", generator=torch.Generator().manual_seed(0))
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    assert all(getattr(m, "uniform_conv", False) for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    torch.testing.assert_close(model(x), ref(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="bias-free"):
        uniform_convs_(torch.nn.Conv2d(2, 2, 3, bias=True))
    with pytest.raises(ValueError, match="kernels"):
        with kernel_set(model, "mkl"):
            pass


def test_uniform_kernels_keep_constnet_symmetric_on_every_cpu_kernel_path():
    """The property the ConstNet arms rest on: on the channel-uniform kernels a ConstNet without
    breaker keeps one distinct filter (and input channel) per conv on every CPU kernel path,
    each in a fresh interpreter (the variables are read once per process)."""
    envs = {"this machine": {},
            "AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
            "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
            "MKL AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"}}
    probe = probe_kernels(envs, dataset="digits", seed=0, steps=25, depth=10, widen_factor=2, batch_size=64, lr=0.1,
                          kernels=("uniform",))
    assert {name: p["uniform"] for name, p in probe.items()} == {name: None for name in envs}
    assert probe["AVX2"]["cpu_capability"] in ("AVX2", "DEFAULT") and probe["default"]["cpu_capability"] == "DEFAULT"
    assert KERNELS[0] == "uniform"
