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

    >>> cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05)
    >>> history = train(model, train_set, test_set, cfg)
    >>> history.final_test_acc
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from initrepro.data import TensorData, batches, crop_flip

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


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: TensorData, batch_size: int = 1000,
             device: str | torch.device = "cpu") -> float | list[float]:
    """Test accuracy; a list with one entry per member for an ensemble."""
    was_training = model.training
    model.eval()
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
        history.test_acc.append(accuracy(model, test_set, device=cfg.device))
        bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", acc=f"{np.mean(history.test_acc[-1]):.3f}", refresh=False)
        if cfg.max_steps is not None and step >= cfg.max_steps:
            break
    return history
