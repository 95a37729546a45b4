"""ZerO at reduced scale (Zhao et al. 2022): many ResNets trained in one vectorized pass, each
member on its own data order and learning rate; stable rank of weight updates; accuracy under
magnitude pruning.

ZerO draws no random numbers, so ZerO runs differ only in their data order: an
:class:`~initrepro.models.ensemble.Ensemble` that fed every member the same batches would
train identical ZerO copies. :class:`MemberEnsemble` gives each member its own batches and
:func:`train_members` its own seed (data order) and learning rate, with SGD, momentum, weight
decay, a per-step linear warmup and a step schedule exactly as ``initrepro.training.train``
applies them to one net (``torch.optim.SGD``'s update: ``b = m b + (g + wd p)``, ``p -= lr b``).

    >>> nets = [resnet("fc", (1, 8, 8), 10, widths=64, blocks=4, init=i, seed=s) for i, s in ...]
    >>> ens = MemberEnsemble(nets, isolate_diverged=True)
    >>> hist = train_members(ens, train, test, lrs=[0.01] * len(nets), seeds=[0, 1, ...], epochs=5, batch_size=64)
    >>> hist.final  # test accuracy per member (NaN where a member diverged)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from initrepro.data import TensorData
from initrepro.models.ensemble import Ensemble


class MemberEnsemble(Ensemble):
    """An :class:`Ensemble` whose members can each take their own batch:
    :meth:`forward_members` maps ``x`` of shape ``(members, batch, ...)`` to logits
    ``(members, batch, classes)``; ``forward`` (one batch for all members) is unchanged."""

    def forward_members(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != len(self):
            raise ValueError(f"x must have one leading entry per member ({len(self)}), got shape {tuple(x.shape)}")

        def one(params, buffers, inputs):
            return functional_call(self._skeleton[0], {**params, **buffers, **{
                n: b.to(inputs.device) for n, b in self.shared.items()}}, (inputs,))

        buffers = {n: getattr(self, f"member_buffer_{i}") for i, n in enumerate(self.buffer_names)}
        out = torch.vmap(one, in_dims=(0, 0, 0))(dict(zip(self.names, self.stacked)), buffers, x)
        if self.isolate_diverged:
            with torch.no_grad():
                self.diverged |= ~torch.isfinite(out).flatten(1).all(1)
            out = torch.where(self.diverged.view(-1, *[1] * (out.dim() - 1)), torch.zeros((), dtype=out.dtype), out)
        return out


@dataclass
class MemberHistory:
    """Per-epoch test accuracy of every member (``test_acc[epoch][member]``); NaN for a member
    from the epoch at which it diverged on."""

    epoch: list[int] = field(default_factory=list)
    test_acc: list[list[float]] = field(default_factory=list)
    diverged: list[bool] = field(default_factory=list)

    @property
    def final(self) -> list[float]:
        return list(self.test_acc[-1]) if self.test_acc else []


@torch.no_grad()
def member_accuracy(ens: Ensemble, data: TensorData, batch_size: int = 2000) -> list[float]:
    """Test accuracy of every member on the same data (eval mode); NaN for a member whose
    logits are not finite (or that diverged in training)."""
    was_training = ens.training
    ens.eval()
    correct, finite = torch.zeros(len(ens)), torch.ones(len(ens), dtype=torch.bool)
    for start in range(0, len(data), batch_size):
        x, y = data.x[start:start + batch_size], data.y[start:start + batch_size]
        logits = ens(x)
        finite &= torch.isfinite(logits).flatten(1).all(1)
        correct += (logits.argmax(-1) == y).sum(-1).float()
    ens.train(was_training)
    acc = correct / len(data)
    bad = ~finite | (ens.diverged if ens.isolate_diverged else torch.zeros_like(finite))
    return torch.where(bad, torch.full_like(acc, float("nan")), acc).tolist()


def lr_factor(step: int, epoch: int, warmup_steps: int, milestones: Sequence[int], gamma: float) -> float:
    """The lr multiplier of ``initrepro.training.train`` at optimizer step ``step`` (0-based) in
    ``epoch``: ``gamma`` per milestone passed, times the linear warmup ``(step + 1) / warmup_steps``
    during the first ``warmup_steps`` steps."""
    decay = gamma ** sum(m <= epoch for m in milestones)
    return decay * (min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0)


def train_members(ens: MemberEnsemble, train_set: TensorData, test_set: TensorData, lrs: Sequence[float],
                  seeds: Sequence[int], *, epochs: int, batch_size: int, momentum: float = 0.9,
                  weight_decay: float = 0.0, warmup_epochs: float = 0.0, milestones: Sequence[int] = (),
                  gamma: float = 0.1) -> MemberHistory:
    """Train every member of ``ens`` in place, member ``i`` at learning rate ``lrs[i]`` on the
    data order of ``seeds[i]`` (a fresh permutation per epoch from its own generator), and
    return the per-epoch test accuracies. One backward pass per step for all members."""
    m = len(ens)
    if len(lrs) != m or len(seeds) != m:
        raise ValueError(f"lrs and seeds need one entry per member ({m}), got {len(lrs)} and {len(seeds)}")
    if not all(lr > 0 for lr in lrs):
        raise ValueError(f"lrs must be > 0, got {list(lrs)}")
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    params = list(ens.stacked)
    bufs = [torch.zeros_like(p) for p in params]
    lr = torch.tensor([float(x) for x in lrs])
    n = len(train_set)
    warmup_steps = math.ceil(warmup_epochs * math.ceil(n / batch_size))
    history, step = MemberHistory(), 0
    ens.train()
    for epoch in range(epochs):
        perms = torch.stack([torch.randperm(n, generator=g) for g in gens])
        for start in range(0, n, batch_size):
            idx = perms[:, start:start + batch_size]
            x, y = train_set.x[idx], train_set.y[idx]
            logits = ens.forward_members(x)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(m, -1).mean(1)
            grads = torch.autograd.grad(loss.sum(), params)
            scale = lr * lr_factor(step, epoch, warmup_steps, milestones, gamma)
            with torch.no_grad():
                for p, g, b in zip(params, grads, bufs):
                    g = g + weight_decay * p if weight_decay else g
                    b.mul_(momentum).add_(g) if step else b.copy_(g)  # torch.optim.SGD: first buffer = grad
                    p.sub_(scale.view(-1, *[1] * (p.dim() - 1)) * b)
            step += 1
        history.epoch.append(epoch + 1)
        history.test_acc.append(member_accuracy(ens, test_set))
    history.diverged = (ens.diverged.tolist() if ens.isolate_diverged
                        else [not math.isfinite(a) for a in history.final])
    return history


def stable_rank(a: torch.Tensor) -> float:
    """``||A||_F^2 / ||A||_2^2`` of a matrix (a conv kernel ``(out, in, k, k)`` as ``(out, in k k)``);
    NaN for the zero matrix.

        >>> stable_rank(torch.eye(4))
        4.0
    """
    a = a.detach().double().reshape(a.shape[0], -1)
    top = torch.linalg.matrix_norm(a, ord=2)
    return float((a.square().sum() / top ** 2)) if top > 0 else float("nan")


def update_stable_ranks(ens: Ensemble, initial: dict[str, torch.Tensor], names: Sequence[str]) -> np.ndarray:
    """Stable rank of ``W - W_init`` of every named weight, per member: shape ``(members, layers)``."""
    out = np.empty((len(ens), len(names)))
    for j, name in enumerate(names):
        w = ens.stacked[ens.names.index(name)].detach()
        for i in range(len(ens)):
            out[i, j] = stable_rank(w[i] - initial[name][i])
    return out


@torch.no_grad()
def magnitude_prune_(ens: Ensemble, names: Sequence[str], fraction: float) -> Ensemble:
    """Set the ``fraction`` of smallest-magnitude entries of every named weight to zero, per member
    and per layer (ties at the threshold are pruned too); in place."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    for name in names:
        w = ens.stacked[ens.names.index(name)]
        flat = w.abs().flatten(1)
        k = int(fraction * flat.shape[1])
        if k == 0:
            continue
        threshold = flat.kthvalue(k, dim=1).values.view(-1, *[1] * (w.dim() - 1))
        w.masked_fill_(w.abs() <= threshold, 0.0)
    return ens


def pruned_accuracy(ens: Ensemble, test_set: TensorData, names: Sequence[str], fraction: float) -> list[float]:
    """Test accuracy per member after magnitude pruning of ``names`` (on a copy; ``ens`` is kept)."""
    import copy

    pruned = copy.deepcopy(ens)
    return member_accuracy(magnitude_prune_(pruned, names, fraction), test_set)


def branch_weight_names(ens: Ensemble) -> list[str]:
    """The residual branches' weight layers (``blocks.i.conv1/2.weight``) of a ResNet ensemble."""
    return [n for n in ens.names if n.startswith("blocks.") and n.endswith(("conv1.weight", "conv2.weight"))]


def prunable_weight_names(ens: Ensemble) -> list[str]:
    """Every conv/linear weight but the classifier's (stem, branches, projections)."""
    return [n for n in ens.names if n.endswith("weight") and ens.stacked[ens.names.index(n)].dim() >= 3
            and not n.startswith("classifier")]


def train_runs(make_net, runs: Sequence[tuple[str, float, int]], train_set: TensorData, test_set: TensorData, *,
               running_stats: bool = False, **cfg) -> tuple[list[float], MemberEnsemble, MemberHistory, dict]:
    """Train one member per run ``(arm, lr, seed)`` in one vectorized pass: the net
    ``make_net(arm, seed)`` (``seed`` seeds its init, where it draws any, and its data order),
    at learning rate ``lr``. Returns the final test accuracies (NaN: diverged), the trained
    ensemble, its history and the initial stacked weights (name -> tensor)."""
    if not runs:
        raise ValueError("runs must be non-empty")
    ens = MemberEnsemble([make_net(arm, seed) for arm, _, seed in runs], running_stats=running_stats,
                         isolate_diverged=True)
    initial = {n: p.detach().clone() for n, p in zip(ens.names, ens.stacked)}
    hist = train_members(ens, train_set, test_set, [lr for _, lr, _ in runs], [s for _, _, s in runs], **cfg)
    return hist.final, ens, hist, initial


def search_lrs(make_net, arms: Sequence[str], lrs: Sequence[float], search_seeds: Sequence[int],
               search_train: TensorData, search_val: TensorData, chance: float, *, running_stats: bool = False,
               **cfg) -> dict:
    """``verdicts.select_lr`` for every arm: one pass trains every arm x lr x search seed on
    ``search_train`` and scores it on ``search_val``; a best lr at an end of the grid is
    extended (one more pass of that arm's search seeds per extension). Returns arm -> LrChoice."""
    from initrepro.core.verdicts import select_lr

    runs = [(a, lr, s) for a in arms for lr in lrs for s in search_seeds]
    acc, *_ = train_runs(make_net, runs, search_train, search_val, running_stats=running_stats, **cfg)
    scores = dict(zip(runs, acc))

    def extend(arm):
        return lambda lr: train_runs(make_net, [(arm, lr, s) for s in search_seeds], search_train, search_val,
                                     running_stats=running_stats, **cfg)[0]

    return {a: select_lr(lrs, [[scores[a, lr, s] for s in search_seeds] for lr in lrs], chance, name=a,
                         extend=extend(a)) for a in arms}


def split(data: TensorData, fraction: float, seed: int) -> tuple[TensorData, TensorData]:
    """(fit, validation) parts of ``data``: a seeded random ``fraction`` is held out."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(data) * fraction)
    val, fit = (TensorData(data.x[i], data.y[i], data.num_classes, data.name) for i in (order[:n_val], order[n_val:]))
    return fit, val


def fallback_lr(choice) -> float:
    """The lr to train the confirmatory runs at: the chosen one, or, where every lr of the grid
    collapsed on some search seed (``choice.lr is None``, a failed precondition that leaves the
    claim inconclusive), the lr of the best mean validation score, so that the record still
    shows what the arm reaches."""
    if choice.lr is not None:
        return choice.lr
    means = np.nan_to_num(np.asarray(choice.mean_score, dtype=float), nan=-np.inf)
    return float(choice.lrs[int(np.argmax(means))])
