"""Device plumbing: ``device="cpu"`` given explicitly reaches every model and batch.

No GPU is needed: spies record where models and tensors are sent (``nn.Module.to``,
``torch.Tensor.to``, the ``TrainConfig`` a study hands to ``train``, the generators a sampler
draws from) and forward hooks check that every batch meets its model's parameters on the
device. With a GPU the same calls run with ``device="cuda"`` (tests/test_gpu.py).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import initrepro.studies.kubota as kubota
import initrepro.studies.risotto as risotto
from initrepro.data import TensorData
from initrepro.training import TrainConfig, train as real_train

CPU = torch.device("cpu")


def rand_data(n: int = 32, shape=(1, 8, 8), classes: int = 10, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    return TensorData(torch.randn(n, *shape, generator=g), torch.arange(n) % classes, classes, "rand")


class Spy:
    """Records the devices that ``nn.Module.to``, ``torch.Tensor.to`` and forward passes see."""

    def __init__(self):
        self.module_to: list[torch.device] = []
        self.tensor_to: list[torch.device] = []
        self.forward: list[set[torch.device]] = []  # per forward: devices of inputs, params, buffers
        self.train_devices: list[str] = []

    def watch(self, model: nn.Module) -> None:
        def hook(module, inputs):
            tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
            tensors += list(module.parameters()) + list(module.buffers())
            self.forward.append({t.device for t in tensors})
        model.register_forward_pre_hook(hook)


def _device_arg(args, kwargs):
    target = kwargs.get("device", args[0] if args else None)
    return torch.device(target) if isinstance(target, (str, torch.device)) else None


@pytest.fixture
def spy(monkeypatch) -> Spy:
    spy = Spy()
    module_to, tensor_to = nn.Module.to, torch.Tensor.to

    def spy_module_to(self, *args, **kwargs):
        if (device := _device_arg(args, kwargs)) is not None:
            spy.module_to.append(device)
        return module_to(self, *args, **kwargs)

    def spy_tensor_to(self, *args, **kwargs):
        if (device := _device_arg(args, kwargs)) is not None:
            spy.tensor_to.append(device)
        return tensor_to(self, *args, **kwargs)

    monkeypatch.setattr(nn.Module, "to", spy_module_to)
    monkeypatch.setattr(torch.Tensor, "to", spy_tensor_to)
    return spy


def spy_train(monkeypatch, module, spy: Spy) -> None:
    """Route ``module.train`` through a wrapper that records the config's device and watches
    every forward pass of the model it trains."""
    def train(model, train_set, test_set, cfg, **kwargs):
        spy.train_devices.append(cfg.device)
        spy.watch(model)
        return real_train(model, train_set, test_set, cfg, **kwargs)
    monkeypatch.setattr(module, "train", train)


def assert_all_on_cpu(spy: Spy, batches: int) -> None:
    assert spy.forward and all(devices == {CPU} for devices in spy.forward)
    assert CPU in spy.module_to  # the model was sent to the device
    assert spy.tensor_to.count(CPU) >= 2 * batches  # x and y of every training batch


def test_tensor_data_to_moves_both_tensors_and_is_a_no_op_in_place():
    data = rand_data()
    assert data.to("cpu") is data
    meta = data.to("meta")
    assert meta.x.device.type == meta.y.device.type == "meta" and meta.num_classes == 10 and meta.name == "rand"


def test_risotto_train_arms_device_reaches_ensemble_and_batches(monkeypatch, spy):
    spy_train(monkeypatch, risotto, spy)
    data = rand_data()

    def build(arm, seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    acc = risotto.train_arms(build, ["a", "b"], [0, 1], data, data, TrainConfig(epochs=1, batch_size=16, lr=0.01),
                             device="cpu")
    assert spy.train_devices == ["cpu"] and acc["a"].shape == (2, 1)
    assert_all_on_cpu(spy, batches=2)


def test_risotto_train_arms_keeps_cfg_device_when_none_is_given(monkeypatch, spy):
    spy_train(monkeypatch, risotto, spy)
    data = rand_data()
    risotto.train_arms(lambda arm, seed: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), ["a"], [0], data, data,
                       TrainConfig(epochs=1, batch_size=32, lr=0.01, device="cpu"))
    assert spy.train_devices == ["cpu"]


def test_kubota_train_seed_device_reaches_both_nets_and_every_measure(monkeypatch, spy):
    spy_train(monkeypatch, kubota, spy)
    data = rand_data(n=40)
    run = kubota.train_seed(data, data, depth=3, activation="hard_tanh", schemes=["identity", "xavier"],
                            cfg=TrainConfig(epochs=1, batch_size=20, lr=1e-3), control_depth=2, progress=False,
                            device="cpu")
    assert spy.train_devices == ["cpu", "cpu"]  # the ensemble and the shallow control
    assert_all_on_cpu(spy, batches=2 * 2)
    assert all(p.device == CPU for m in run.models.values() for p in m.parameters())
    assert run.layer_acc["identity"].shape == (3,)


def test_eoi_sparse_nets_and_ensembles_land_on_the_device_with_their_masks(spy):
    from initrepro.models.deep_tanh import DeepTanhMLP
    from initrepro.studies.eoi import sparse_ensemble, sparse_net

    build = lambda: DeepTanhMLP(64, 10, depth=4, width=16)  # noqa: E731
    net, masks = sparse_net(build, "eoi", 0.5, seed=0, device="cpu")
    assert CPU in spy.module_to and all(p.device == CPU for p in net.parameters())
    alone, _ = sparse_net(build, "eoi", 0.5, seed=0)  # the default device draws the same net
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), alone.parameters()))
    spy.module_to.clear()
    ensemble, ens_masks = sparse_ensemble(build, [("eoi", 0), ("eoi", 1)], 0.5, device="cpu")
    assert CPU in spy.module_to
    assert all(t.device == CPU for t in [*ensemble.parameters(), *ensemble.buffers()])
    assert all(pruned.device == CPU for _, pruned in ens_masks.pairs)


def test_masks_follow_weights_that_training_moved():
    from initrepro.models.deep_tanh import DeepTanhMLP
    from initrepro.studies.eoi import sparse_net

    net, masks = sparse_net(lambda: DeepTanhMLP(64, 10, depth=4, width=16), "eoi", 0.5, seed=0)
    net.to("meta")  # a device other than the masks': apply() must move them, not fail
    masks.apply()
    assert all(w.device.type == "meta" for w in masks.weights)


def test_jacobian_measures_move_the_input_to_the_model_and_return_on_the_cpu(spy):
    from initrepro.measures.isometry import device_of, jacobian_singular_values, jacobian_singular_values_batched
    from initrepro.studies.relu_isometry import active_units

    net = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 4))
    x = torch.randn(6)
    assert device_of(net) == CPU and device_of(nn.ReLU()) == CPU
    exact, batched = jacobian_singular_values(net, x), jacobian_singular_values_batched(net, x)
    assert exact.device == batched.device == CPU and torch.allclose(exact, batched)
    assert len(active_units(net, x)) == 1
    assert spy.tensor_to.count(CPU) >= 3  # each measure sent x to the model's device


@pytest.mark.parametrize("sampler", ["log_norm_ratios", "rotational_log_ratios", "rotational_log_norms"])
def test_fractional_samplers_draw_on_the_device_and_change_no_number(monkeypatch, sampler):
    from initrepro.studies import fractional

    fn = getattr(fractional, sampler)
    args = (5, 8, 3, 0.5)
    default = fn(*args, generator=torch.Generator().manual_seed(0))
    seen, real_generator = [], torch.Generator

    def generator(device="cpu"):
        seen.append(torch.device(device))
        return real_generator(device)

    monkeypatch.setattr(torch, "Generator", generator)
    explicit = fn(*args, generator=real_generator().manual_seed(0), device="cpu")
    assert seen and set(seen) == {CPU}  # every chunk's generator lives on the device
    assert explicit.device == CPU and torch.equal(explicit, default)


def test_constnet_train_arm_device_reaches_model_and_batches(monkeypatch, spy):
    import initrepro.studies.constnet as constnet

    spy_train(monkeypatch, constnet, spy)
    data = rand_data(n=16, shape=(3, 8, 8))
    result = constnet.train_arm("none", "constnet", data, data, TrainConfig(epochs=1, batch_size=8, max_steps=2),
                                depth=10, widen_factor=1, track_every=None, device="cpu", progress=False)
    assert spy.train_devices == ["cpu"] and result.history.step == [2]
    assert_all_on_cpu(spy, batches=2)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the failure without CUDA")
def test_paper_profile_without_cuda_stops_in_one_line_within_5_s():
    import subprocess
    import sys
    import time

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "initrepro.core.pipeline", "zero_init", "--profile", "paper"],
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "no CUDA device" in proc.stderr and elapsed < 5
