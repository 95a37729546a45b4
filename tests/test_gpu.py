"""GPU checks (marker ``gpu``, skipped without CUDA by tests/conftest.py).

- Per term of :mod:`initrepro.core.estimate`: one network of the paper profile's shape takes
  SGD steps on a batch of the paper's size on CUDA; the median seconds per step (after warm-up
  steps) go to ``reports/gpu_step_times.json`` with the device's name, from which
  ``python -m initrepro.core.estimate`` prints GPU hours. One network alone: an upper bound
  for the stages that train their members as one vectorized ensemble.
- The ConstNet ``cuda`` arm (cuDNN's non-deterministic kernels, no other breaker) trains a few
  steps and must end with more than one distinct filter in some 3x3 conv.
"""

from __future__ import annotations

import datetime
import json
import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from initrepro.core.estimate import STAGES, TIMES_FILE, stage_params, stage_terms

pytestmark = pytest.mark.gpu

WARMUP, TIMED = 3, 10


def _paper_net(key: str):
    """The network and one batch ``(x, y)`` shape of the paper profile for an estimate key."""
    from initrepro.models.class_unit_mlp import ClassUnitMLP
    from initrepro.models.deep_tanh import DeepTanhCNN, DeepTanhMLP
    from initrepro.models.mlp import mlp
    from initrepro.models.resnet import resnet
    from initrepro.models.wrn import wrn

    stage = key.split("/")[0]
    p = stage_params(stage)
    cifar, mnist = (3, 32, 32), (1, 28, 28)
    if stage in ("zero_init", "nondeterminism"):
        return wrn(p["depth"], p["widen_factor"], 10, 3, init="he"), cifar, p["batch_size"]
    if stage == "risotto_fixup":
        return resnet("conv", cifar, 10, widths=tuple(p["widths"]), blocks=tuple(p["blocks"]),
                      block_type=p["block_type"], init="fixup"), cifar, p["batch_size"]
    if key == "eoi_deep_sparse/mlp":
        return DeepTanhMLP(784, 10, depth=p["depth"], width=p["width"]), mnist, p["batch_size"]
    if key == "eoi_deep_sparse/cnn":
        return DeepTanhCNN(cifar, 10, depth=p["depth"], channels=p["cnn_channels"]), cifar, p["batch_size"]
    if stage == "fractional_lognorm":
        return mlp(784, p["train_width"], p["train_depth"], 10), mnist, p["batch_size"]
    if stage == "identity_init":
        shape = cifar if key.endswith("cifar10") else mnist
        return ClassUnitMLP(int(torch.tensor(shape).prod()), 10, p["depth"]), shape, p["batch_size"]
    if stage == "relu_isometry":
        return mlp(784, p["train_width"], p["train_depth"], 10), mnist, p["batch_size"]
    if key == "zero_hadamard/rank":
        widths = p["mlp_widths"]
        layers = [m for a, b in zip(widths[:-1], widths[1:]) for m in (torch.nn.Linear(a, b), torch.nn.ReLU())][:-1]
        return torch.nn.Sequential(torch.nn.Flatten(), *layers), mnist, p["rank_batch"]
    if stage == "zero_hadamard":
        kind = key.split("/")[1]
        return resnet(kind, cifar, 10, widths=tuple(p[f"{kind}_widths"]), blocks=tuple(p[f"{kind}_blocks"]),
                      block_type="C", init="he"), cifar, p["batch_size"]
    if stage == "idinit":
        return resnet(p["acc_kind"], cifar, 10, widths=tuple(p["acc_widths"]), blocks=tuple(p["acc_blocks"]),
                      block_type=p["block_type"], init="he"), cifar, p["batch_size"]
    raise KeyError(key)


def seconds_per_step(model: torch.nn.Module, shape, batch_size: int, device: str = "cuda") -> float:
    """Median wall time of one SGD step (forward, backward, update) after warm-up steps."""
    model = model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x, y = torch.randn(batch_size, *shape, device=device), torch.randint(0, 10, (batch_size,), device=device)
    times = []
    for step in range(WARMUP + TIMED):
        torch.cuda.synchronize()
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        torch.cuda.synchronize()
        if step >= WARMUP:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


KEYS = [term.key for stage in STAGES for term in stage_terms(stage)]


@pytest.fixture(scope="module")
def measured():
    """Collects this run's step times and writes them (merged with earlier keys) at the end."""
    times: dict[str, float] = {}
    yield times
    if times:
        old = json.loads(TIMES_FILE.read_text()) if TIMES_FILE.exists() else {}
        record = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                  "date": datetime.date.today().isoformat(),
                  "seconds_per_step": {**old.get("seconds_per_step", {}), **times}}
        TIMES_FILE.parent.mkdir(parents=True, exist_ok=True)
        TIMES_FILE.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("key", KEYS)
def test_paper_shaped_step_is_timed_on_cuda(key, measured):
    model, shape, batch_size = _paper_net(key)
    seconds = seconds_per_step(model, shape, batch_size)
    assert seconds > 0
    measured[key] = seconds


def test_constnet_cuda_arm_breaks_symmetry_in_a_few_steps():
    from initrepro.data import TensorData
    from initrepro.studies.constnet import train_arm
    from initrepro.training import TrainConfig

    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(512, 3, 32, 32, generator=g), torch.randint(0, 10, (512,), generator=g), 10, "rand")
    cfg = TrainConfig(epochs=1, batch_size=128, lr=0.03, momentum=0.9, weight_decay=5e-4, max_steps=4)
    result = train_arm("cuda", "constnet", data, data, cfg, depth=16, widen_factor=4, track_every=1, device="cuda",
                       progress=False)
    assert result.skipped is None and result.tracker.min_distinct[0] == 1  # identical filters at init
    assert result.tracker.max_distinct[-1] > 1, "cuDNN's kernels left every filter identical"


@pytest.mark.gpu
def test_bf16_training_runs_and_learns_on_cuda():
    from initrepro.data import load_dataset
    from initrepro.models.mlp import mlp
    from initrepro.training import TrainConfig, train

    train_set, test_set = load_dataset("digits", seed=0)
    history = train(mlp(64, 64, 2, 10), train_set, test_set,
                    TrainConfig(epochs=3, lr=0.1, device="cuda", bf16=True), progress=False)
    assert not history.diverged and history.test_acc[-1] > 0.8
