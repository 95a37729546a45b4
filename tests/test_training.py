import pytest
import torch

from initrepro.data import load_dataset
from initrepro.models import mlp
from initrepro.models.ensemble import Ensemble
from initrepro.training import TrainConfig, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _models(k):
    torch.manual_seed(0)
    return [mlp(64, 32, 3, 10) for _ in range(k)]


def test_ensemble_member_trains_exactly_like_the_network_alone(digits):
    models = _models(3)
    ensemble = Ensemble(models)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, momentum=0.9, weight_decay=1e-4, seed=1)
    history = train(ensemble, *digits, cfg, progress=False)
    alone = train(models[1], *digits, cfg, progress=False)
    assert len(history.test_acc[-1]) == 3
    assert history.test_acc[-1][1] == pytest.approx(alone.test_acc[-1], abs=1e-2)
    x = digits[0].x[:32]
    assert torch.allclose(ensemble(x)[1], models[1](x), atol=1e-4)


def test_ensemble_rejects_batch_norm():
    with pytest.raises(ValueError, match="buffers"):
        Ensemble([torch.nn.Sequential(torch.nn.Flatten(), torch.nn.BatchNorm1d(4))])


def test_training_is_seeded(digits):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(train(mlp(64, 16, 2, 10), *digits, TrainConfig(epochs=1, lr=0.1, seed=3), progress=False))
    assert runs[0].test_acc == runs[1].test_acc and runs[0].train_loss == runs[1].train_loss


def test_divergence_is_recorded_not_raised(digits):
    model = mlp(64, 16, 2, 10)
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    history = train(model, *digits, TrainConfig(epochs=3, lr=0.1), progress=False)
    assert history.diverged and history.final_test_acc == 0.0


@pytest.mark.parametrize("kwargs, name", [(dict(epochs=0), "epochs"), (dict(lr=0.0), "lr"),
                                          (dict(momentum=1.0), "momentum"), (dict(weight_decay=-1.0), "weight_decay"),
                                          (dict(bf16=True), "bf16 needs a CUDA device")])
def test_bad_config_names_the_option(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)


def test_hooks_run_around_every_step(digits):
    calls = []
    cfg = TrainConfig(epochs=1, batch_size=500, lr=0.1, max_steps=2)
    train(mlp(64, 16, 2, 10), *digits, cfg, before_step=lambda m, s: calls.append(("before", s)),
          after_step=lambda m, s: calls.append(("after", s)), progress=False)
    assert calls == [("before", 0), ("after", 1), ("before", 1), ("after", 2)]


def test_warmup_ramps_the_lr_per_step_then_follows_the_schedule():
    from initrepro.data import TensorData

    gen = torch.Generator().manual_seed(0)
    data = TensorData(torch.randn(40, 4, generator=gen), torch.randint(0, 2, (40,), generator=gen), 2, "toy")
    model = torch.nn.Linear(4, 2, bias=False)
    seen = []  # the weights before each step, then (weights, gradient) after it
    cfg = TrainConfig(epochs=4, batch_size=10, lr=0.1, warmup_epochs=1, milestones=(3,), momentum=0.0)
    history = train(model, data, data, cfg, progress=False,
                    before_step=lambda m, s: seen.append(m.weight.detach().clone()),
                    after_step=lambda m, s: seen.append((m.weight.detach().clone(), m.weight.grad.clone())))
    # the lr that plain SGD applied: weight change over gradient
    lrs = [float(((w0 - w1) / g).median()) for w0, (w1, g) in zip(seen[::2], seen[1::2])]
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1], rel=1e-4)  # 4 steps an epoch
    assert lrs[4:12] == pytest.approx([0.1] * 8, rel=1e-4) and lrs[12:] == pytest.approx([0.01] * 4, rel=1e-4)
    assert len(history.test_acc) == 4


def test_train_config_rejects_bad_warmup_and_device():
    with pytest.raises(ValueError, match="warmup_epochs"):
        TrainConfig(epochs=2, warmup_epochs=3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device"):
            TrainConfig(device="cuda")
