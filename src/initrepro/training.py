"""One supervised training loop for every stage, readable top to bottom.

SGD with momentum, weight decay and a step lr schedule, seeded data order, optional
crop + flip augmentation, a progress bar, per-epoch test accuracy, and NaN detection that
ends the run and records it as diverged; an optional linear lr warmup (per step) and a
``device`` that the model and every batch move to. Stages customize it through two hooks:

- ``before_step(model, step)``: after ``backward()``, before ``optimizer.step()``
  (symmetry breakers that perturb gradients);
- ``after_step(model, step)``: after ``optimizer.step()`` (re-applying sparse masks,
  measuring symmetry).

A model may return logits of shape (members, batch, classes), as
``initrepro.models.ensemble.Ensemble`` does: every member is trained on its own mean loss in
the same pass, and accuracies are then per member (lists).

:func:`train_members` is the same SGD for an ensemble whose members differ in more than their
weights: member ``i`` has its own learning rate and its own data order (lr searches and seeds
in one vectorized pass; ZerO's runs differ in nothing else, since ZerO draws no random numbers).

    >>> cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05)
    >>> history = train(model, train_set, test_set, cfg)
    >>> history.final_test_acc
    >>> hist = train_members(Ensemble(nets), train_set, {"test": test_set}, lrs=[0.01, 0.1], seeds=[0, 1],
    ...                      epochs=5, batch_size=64)
    >>> hist.final["test"]  # per member, NaN where it diverged
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from initrepro.data import TensorData, batches, crop_flip
from initrepro.models.ensemble import Ensemble

Hook = Callable[[torch.nn.Module, int], None]


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = ()  # epochs at which lr is multiplied by ``gamma``
    gamma: float = 0.1
    augment: bool = False  # reflect-pad 4 + random crop + horizontal flip
    seed: int = 0
    max_steps: int | None = None  # stop early after this many optimizer steps
    warmup_epochs: float = 0.0  # linear lr warmup from lr/steps to lr over these epochs (per step)
    device: str = "cpu"  # model and batches move here ("cuda" on a GPU)
    # bf16 autocast of forward and loss on CUDA (the paper profile's speed option); off where
    # exact arithmetic decides a claim (ConstNet's symmetry)
    bf16: bool = False

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")
        if torch.device(self.device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device must be one available here ('cpu'), got {self.device!r}: no CUDA")
        if self.bf16 and torch.device(self.device).type != "cuda":
            raise ValueError(f"bf16 needs a CUDA device, got device {self.device!r}")


@dataclass
class History:
    epoch: list[int] = field(default_factory=list)
    step: list[int] = field(default_factory=list)  # optimizer steps done at each epoch's end
    train_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    diverged: bool = False

    @property
    def final_test_acc(self) -> float | list[float]:
        # A diverged run counts as chance-or-worse: its last accuracy is not trustworthy.
        return 0.0 if self.diverged or not self.test_acc else self.test_acc[-1]


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy; for (members, batch, classes) logits, the sum of the members' means."""
    members = logits.shape[0] if logits.dim() == 3 else 1
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(members), reduction="sum") / len(y)


def autocast(device: str | torch.device, bf16: bool):
    """bf16 autocast on CUDA when ``bf16``; a no-op context otherwise."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16 and torch.device(device).type == "cuda")


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: TensorData, batch_size: int = 1000,
             device: str | torch.device = "cpu", bf16: bool = False) -> float | list[float]:
    """Test accuracy; a list with one entry per member for an ensemble."""
    was_training = model.training
    model.eval()
    with autocast(device, bf16):
        correct = sum((model(x.to(device)).argmax(-1) == y.to(device)).sum(-1).cpu()
                      for x, y in batches(data, batch_size, shuffle=False))
    model.train(was_training)
    return (correct / len(data)).tolist()


def make_optimizer(params: Iterable, cfg: TrainConfig) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                           weight_decay=cfg.weight_decay)


def train(model: torch.nn.Module, train_set: TensorData, test_set: TensorData, cfg: TrainConfig, *,
          params: Iterable | None = None, before_step: Hook | None = None, after_step: Hook | None = None,
          progress: bool = True, desc: str = "train") -> History:
    """Train ``model`` in place; ``params`` may be parameter groups (e.g. scalars at lr/10)."""
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(cfg.device)  # in place: parameter groups keep pointing at the same tensors
    optimizer = make_optimizer(model.parameters() if params is None else params, cfg)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma)
    warmup_steps = math.ceil(cfg.warmup_epochs * math.ceil(len(train_set) / cfg.batch_size))
    history, step = History(), 0
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        total, count = 0.0, 0  # train loss summed over members for an ensemble
        for x, y in batches(train_set, cfg.batch_size, gen):
            if cfg.augment:
                x = crop_flip(x, gen)
            x, y = x.to(cfg.device, non_blocking=True), y.to(cfg.device, non_blocking=True)
            if step <= warmup_steps and warmup_steps:  # the step after warmup restores the scheduled lr
                decay = cfg.gamma ** sum(m <= epoch for m in cfg.milestones)
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * decay * min(1.0, (step + 1) / warmup_steps)
            with autocast(cfg.device, cfg.bf16):
                loss = loss_fn(model(x), y)
            if not math.isfinite(loss.item()):
                history.diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if before_step:
                before_step(model, step)
            optimizer.step()
            step += 1
            if after_step:
                after_step(model, step)
            total, count = total + loss.item() * len(y), count + len(y)
            if cfg.max_steps is not None and step >= cfg.max_steps:
                break
        if history.diverged:
            break
        schedule.step()
        history.epoch.append(epoch + 1)
        history.step.append(step)
        history.train_loss.append(total / max(count, 1))
        history.test_acc.append(accuracy(model, test_set, device=cfg.device, bf16=cfg.bf16))
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", acc=f"{np.mean(history.test_acc[-1]):.3f}", refresh=False)
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
    return history


@dataclass
class MemberHistory:
    """What :func:`train_members` records: the epochs after which it evaluated, every member's
    accuracy on every evaluation set then (``acc[name][k][member]``; NaN for a member marked
    diverged), which members diverged, the optimizer steps taken, and the stacked parameters
    before training (name -> ``(members, ...)``; the trained ones are the ensemble's)."""

    epoch: list[int] = field(default_factory=list)
    acc: dict[str, list[list[float]]] = field(default_factory=dict)
    diverged: list[bool] = field(default_factory=list)
    steps: int = 0
    initial: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def final(self) -> dict[str, list[float]]:
        """The last evaluation: name -> accuracy per member."""
        return {name: accs[-1] for name, accs in self.acc.items() if accs}


def member_accuracy(ens: Ensemble, data: TensorData, batch_size: int = 1000,
                    device: str | torch.device = "cpu") -> list[float]:
    """:func:`accuracy` of every member, NaN for a member marked in ``ens.diverged`` (an
    ensemble that isolates diverged members marks non-finite logits of this evaluation too)."""
    acc = accuracy(ens, data, batch_size, device)
    return [float("nan") if bad else a for a, bad in zip(acc, ens.diverged.tolist())]


def lr_factor(step: int, epoch: int, warmup_steps: int, milestones: Sequence[int], gamma: float) -> float:
    """The lr multiplier of :func:`train_members` at optimizer step ``step`` (0-based) in
    ``epoch``, :func:`train`'s schedule: ``gamma`` per milestone passed, times the linear warmup
    ``(step + 1) / warmup_steps`` during the first ``warmup_steps`` steps."""
    decay = gamma ** sum(m <= epoch for m in milestones)
    return decay * (min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0)


def train_members(ens: Ensemble, train_set: TensorData, evals: dict[str, TensorData], lrs: Sequence[float],
                  seeds: Sequence[int], *, epochs: int, batch_size: int, momentum: float = 0.9,
                  weight_decay: float = 0.0, warmup_epochs: float = 0.0, milestones: Sequence[int] = (),
                  gamma: float = 0.1, max_steps: int | None = None,
                  frozen: Callable[[int, str], bool] | None = None, eval_every_epoch: bool = False,
                  eval_batch_size: int = 1000, device: str | torch.device = "cpu") -> MemberHistory:
    """Train every member of ``ens`` in place, member ``i`` at learning rate ``lrs[i]`` on the
    data order of ``seeds[i]`` (a fresh permutation per epoch from its own generator), with one
    backward pass per step for all members.

    Per member, the update is ``torch.optim.SGD``'s (``b = m b + (g + wd p)``, the first ``b = g``;
    ``p -= lr b``) under :func:`train`'s schedule (:func:`lr_factor`: per-step linear warmup over
    ``warmup_epochs``, ``gamma`` at every milestone epoch); ``max_steps`` ends training early.
    ``frozen(i, name)`` True keeps that parameter of member ``i`` at its init (e.g. Fixup's
    scalars in a scheme that has none). Batch norm, in an ensemble with ``running_stats=True``,
    trains on batch statistics and keeps each member's running statistics.

    A member that diverges does not stop the others, in one of two ways:

    - an ensemble built with ``isolate_diverged=True`` handles it itself: once a member's logits
      are not finite (in training or in an evaluation) it outputs zeros, and its parameters go
      on following their momentum;
    - otherwise the trainer does: a member whose training loss is not finite is frozen from that
      step on (no update, its loss left out), and non-finite gradient entries count as zero.

    Either way the member is marked in ``ens.diverged`` and its accuracies are NaN. ``evals``
    (name -> data) are scored after the last epoch, and after every epoch if
    ``eval_every_epoch`` (with an isolating ensemble an evaluation can mark a member diverged,
    so that choice can change later epochs); ``eval_batch_size`` samples per forward pass.
    ``device``: where the ensemble and the batches go (the data orders are drawn on the CPU).
    """
    m = len(ens)
    if len(lrs) != m or len(seeds) != m:
        raise ValueError(f"lrs and seeds need one entry per member ({m}), got {len(lrs)} and {len(seeds)}")
    if not all(lr > 0 for lr in lrs):
        raise ValueError(f"lrs must be > 0, got {list(lrs)}")
    ens.to(device)
    isolate = ens.isolate_diverged  # else the trainer freezes a diverged member
    params = list(ens.stacked)
    dtype = params[0].dtype
    history = MemberHistory(acc={name: [] for name in evals},
                            initial={n: p.detach().clone() for n, p in zip(ens.names, params)})
    lr = torch.as_tensor([float(x) for x in lrs], dtype=dtype, device=device)
    keep = None if frozen is None else [
        torch.tensor([not frozen(i, name) for i in range(m)], dtype=p.dtype, device=device)
        for name, p in zip(ens.names, params)]
    bufs = [torch.zeros_like(p) for p in params]
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    x_all, y_all = train_set.x.to(device), train_set.y.to(device)
    n = len(train_set)
    warmup_steps = math.ceil(warmup_epochs * math.ceil(n / batch_size))
    step = 0
    ens.train()
    for epoch in range(epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
        for start in range(0, n, batch_size):
            idx = order[:, start:start + batch_size]
            logits = ens.forward_members(x_all[idx])
            loss = F.cross_entropy(logits.flatten(0, 1), y_all[idx].flatten(), reduction="none").view(m, -1).mean(1)
            if not isolate:
                with torch.no_grad():
                    ens.diverged |= ~torch.isfinite(loss)
                loss = torch.where(ens.diverged, torch.zeros((), dtype=loss.dtype), loss)
            grads = torch.autograd.grad(loss.sum(), params)
            scale = lr * lr_factor(step, epoch, warmup_steps, milestones, gamma)
            with torch.no_grad():
                live = None if isolate else (~ens.diverged).to(dtype)
                for k, (p, g, b) in enumerate(zip(params, grads, bufs)):
                    if not isolate:
                        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
                    if weight_decay:
                        g = g + weight_decay * p
                    b.mul_(momentum).add_(g) if step else b.copy_(g)  # torch.optim.SGD: first buffer = grad
                    rate = scale if keep is None else scale * keep[k]
                    rate = rate if live is None else rate * live
                    p.sub_(rate.view(-1, *[1] * (p.dim() - 1)) * b)
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        done = epoch == epochs - 1 or (max_steps is not None and step >= max_steps)
        if eval_every_epoch or done:
            history.epoch.append(epoch + 1)
            for name, data in evals.items():
                history.acc[name].append(member_accuracy(ens, data, eval_batch_size, device))
        if done:
            break
    history.steps, history.diverged = step, ens.diverged.tolist()
    return history
