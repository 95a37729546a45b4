"""``initrepro.training.train_members``: many nets in one vectorized pass, each its own learning
rate and data order. Exact properties: every member's trajectory is that of the net trained
alone with ``torch.optim.SGD`` on its lr, schedule and data order; a diverging member changes
no other member's numbers (with either way of isolating it); frozen parameters stay at init."""

import math

import pytest
import torch

from initrepro.layers import relu_grad_at_zero
from initrepro.models.ensemble import Ensemble
from initrepro.models.resnet import resnet
from initrepro.training import lr_factor, member_accuracy, train_members
from toy_nets import toy_data, toy_fc


def _alone(net, data, lr, seed, *, epochs, batch_size, momentum, weight_decay, warmup_steps, milestones, gamma=0.1,
           frozen=()):
    """``net`` trained alone by torch.optim.SGD under :func:`lr_factor`, on the data order of ``seed``."""
    for name, p in net.named_parameters():
        p.requires_grad_(name not in frozen)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    gen, step = torch.Generator().manual_seed(seed), 0
    for epoch in range(epochs):
        perm = torch.randperm(len(data), generator=gen)
        for start in range(0, len(data), batch_size):
            idx = perm[start:start + batch_size]
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor(step, epoch, warmup_steps, milestones, gamma)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(data.x[idx]), data.y[idx]).backward()
            opt.step()
            step += 1
    return net


@pytest.mark.parametrize("isolate", [True, False])
def test_each_member_is_the_net_trained_alone_with_torch_sgd(isolate):
    data = toy_data()
    cfg = dict(epochs=2, batch_size=16, momentum=0.9, weight_decay=1e-3)
    runs = [("he", 0.05, 3), ("he", 0.02, 4), ("zero", 0.1, 5)]
    ens = Ensemble([toy_fc(a, s) for a, _, s in runs], isolate_diverged=isolate)
    frozen = {"classifier.bias"}
    hist = train_members(ens, data, {"train": data}, [lr for _, lr, _ in runs], [s for *_, s in runs],
                         warmup_epochs=1.0, milestones=(1,), frozen=lambda i, n: i == 2 and n in frozen,
                         eval_every_epoch=True, **cfg)
    for i, (arm, lr, seed) in enumerate(runs):
        net = _alone(toy_fc(arm, seed), data, lr, seed, warmup_steps=4, milestones=(1,),
                     frozen=frozen if i == 2 else (), **cfg)
        for name, p in net.named_parameters():
            assert torch.allclose(ens.stacked[ens.names.index(name)][i], p, atol=1e-5), (i, name)
    assert torch.equal(ens.stacked[ens.names.index("classifier.bias")][2], hist.initial["classifier.bias"][2])
    assert hist.epoch == [1, 2] and hist.steps == 8 and hist.diverged == [False] * 3
    assert len(hist.acc["train"]) == 2 and hist.final["train"] == member_accuracy(ens, data)


def test_lr_factor_warmup_per_step_and_milestones():
    assert [lr_factor(s, 0, 4, (), 0.1) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_factor(10, 2, 4, (1, 2), 0.1) == pytest.approx(0.01)
    assert lr_factor(3, 1, 4, (1,), 0.1) == pytest.approx(0.1)  # milestone and warmup multiply
    assert lr_factor(0, 0, 0, (), 0.1) == 1.0


@pytest.mark.parametrize("isolate", [True, False])
def test_a_diverging_member_changes_no_other_member(isolate):
    """Member 0 at lr 1e6 diverges; members 1 and 2 end bitwise where they end when member 0
    trains at a harmless lr. Isolated by the ensemble, the diverged member outputs zeros; frozen
    by the trainer, it keeps the (finite) parameters of the step before its loss turned non-finite."""
    data = toy_data()
    runs = {}
    for lr0 in (1e6, 0.01):
        ens = Ensemble([toy_fc("he", 0), toy_fc("he", 1), toy_fc("zero", 0)], isolate_diverged=isolate)
        runs[lr0] = ens, train_members(ens, data, {"t": data}, [lr0, 0.05, 0.02], [0, 1, 2], epochs=2,
                                       batch_size=16, momentum=0.9, weight_decay=1e-3)
    (bad, hist), (good, ref) = runs[1e6], runs[0.01]
    assert hist.diverged == [True, False, False] and ref.diverged == [False] * 3
    assert math.isnan(hist.final["t"][0]) and hist.final["t"][1:] == ref.final["t"][1:]
    for p, q in zip(bad.stacked, good.stacked):
        assert torch.equal(p[1:], q[1:])
    if not isolate:
        assert all(bool(torch.isfinite(p[0]).all()) for p in bad.stacked)


def test_max_steps_ends_training_and_evaluates_once():
    data = toy_data()
    ens = Ensemble([toy_fc("he", 0), toy_fc("he", 1)])
    hist = train_members(ens, data, {"t": data}, [0.05, 0.05], [0, 1], epochs=10, batch_size=16, max_steps=6)
    assert hist.steps == 6 and hist.epoch == [2] and len(hist.acc["t"]) == 1


def test_forward_members_takes_one_batch_per_member():
    nets = [resnet("conv", (1, 4, 4), 4, widths=(4,), blocks=1, batch_norm=True, init=a, seed=0,
                   activation=relu_grad_at_zero) for a in ("zero", "he")]
    ens = Ensemble(nets, running_stats=True).eval()
    x = torch.randn(2, 5, 1, 4, 4)
    out = ens.forward_members(x)
    assert out.shape == (2, 5, 4)
    assert torch.allclose(out[1], nets[1].eval()(x[1]), atol=1e-5)
    with pytest.raises(ValueError):
        ens.forward_members(torch.randn(3, 5, 1, 4, 4))


def test_train_members_bad_inputs():
    ens = Ensemble([toy_fc("he", 0), toy_fc("he", 1)])
    data = toy_data()
    with pytest.raises(ValueError, match="lrs and seeds"):
        train_members(ens, data, {}, [0.1], [0, 1], epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="lrs must"):
        train_members(ens, data, {}, [0.1, -1.0], [0, 1], epochs=1, batch_size=8)
