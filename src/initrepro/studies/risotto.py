"""Arms (e.g. initialization schemes) x seeds trained as one vectorized ensemble per setting.

A comparison of schemes trains every arm with every seed under the same configuration; here
they all become members of one :class:`initrepro.models.ensemble.Ensemble` and go through
:func:`initrepro.training.train` once (same data order for every member, so arms are paired by
seed). A member that diverges is isolated (it stops, the others go on) and its final accuracy
is NaN, which :func:`initrepro.core.verdicts.collapsed` counts as collapsed. A member whose logits
pass ``logit_limit`` in magnitude counts as diverged too: its cross-entropy would overflow
float32 and end the run of every member.

    >>> acc = train_arms(lambda arm, s: resnet(init=arm, seed=s), ["he", "fixup"], [0, 1],
    ...                  train_set, val_set, TrainConfig(epochs=2, lr=0.01))
    >>> acc["fixup"].shape  # (seeds, epochs)
    (2, 2)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np
import torch

from initrepro.data import TensorData
from initrepro.models.ensemble import Ensemble
from initrepro.training import TrainConfig, train

#: the scalar parameters of ``initrepro.models.resnet`` (Fixup's multipliers and scalar biases,
#: RISOTTO's alpha, SkipInit's gate): the Fixup reference code trains them at lr / 10
SCALAR_NAMES = ("bias1a", "bias1b", "bias2a", "bias2b", "stem_bias", "head_bias", "branch_scale")
#: logits beyond this magnitude mark a member as diverged (its loss is ~ this large)
LOGIT_LIMIT = 1e4


class _Guarded(torch.nn.Module):
    """An ensemble whose members with non-finite or huge logits are isolated (output zeros)."""

    def __init__(self, ensemble: Ensemble, limit: float):
        super().__init__()
        self.ensemble, self.limit = ensemble, limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ensemble(x)
        with torch.no_grad():  # a new tensor: the ensemble's own mask is saved for backward
            self.ensemble.diverged = self.ensemble.diverged | ~(out.abs().flatten(1).amax(1) <= self.limit)
        return torch.where(self.ensemble.diverged.view(-1, *[1] * (out.dim() - 1)), torch.zeros((), dtype=out.dtype),
                           out)


def param_groups(ensemble: Ensemble, lr: float, scalar_lr_factor: float) -> list[dict]:
    """Two SGD parameter groups: the scalars of :data:`SCALAR_NAMES` at ``lr * scalar_lr_factor``,
    every other parameter at ``lr`` (Fixup's cifar_train.py: biases and scales at base_lr / 10)."""
    scalar = [p for n, p in zip(ensemble.names, ensemble.stacked) if n.split(".")[-1] in SCALAR_NAMES]
    ids = {id(p) for p in scalar}
    groups = [{"params": [p for p in ensemble.stacked if id(p) not in ids]}]
    if scalar:
        groups.append({"params": scalar, "lr": lr * scalar_lr_factor})
    return groups


def train_arms(build: Callable[[str, int], torch.nn.Module], arms: Sequence[str], seeds: Sequence[int],
               train_set: TensorData, eval_set: TensorData, cfg: TrainConfig, *, progress: bool = False,
               desc: str = "arms", scalar_lr_factor: float = 1.0,
               logit_limit: float = LOGIT_LIMIT,
               device: str | torch.device | None = None) -> dict[str, np.ndarray]:
    """Train ``build(arm, seed)`` for every arm and seed in one ensemble; return, per arm, the
    evaluation accuracy after every epoch as an array ``(seeds, epochs)``. The last epoch of a
    diverged member is NaN (and every epoch the run did not reach). Every model must have the
    same architecture (batch norm allowed). ``scalar_lr_factor`` scales the learning rate of the
    scalar parameters (:data:`SCALAR_NAMES`; 0.1 in the Fixup reference code). Every model is
    built (and drawn) on the CPU, then the ensemble and every batch move to ``device`` (None:
    ``cfg.device``, whose default is the CPU).
    """
    arms, seeds = list(arms), list(seeds)
    if not arms or not seeds:
        raise ValueError(f"arms and seeds must be non-empty, got {arms} and {seeds}")
    if not scalar_lr_factor > 0:
        raise ValueError(f"scalar_lr_factor must be > 0, got {scalar_lr_factor}")
    if device is not None:
        cfg = replace(cfg, device=str(device))
    ensemble = Ensemble([build(arm, s) for arm in arms for s in seeds], running_stats=True, isolate_diverged=True)
    model = _Guarded(ensemble, logit_limit)
    history = train(model, train_set, eval_set, cfg, params=param_groups(ensemble, cfg.lr, scalar_lr_factor),
                    progress=progress, desc=desc)
    acc = np.full((cfg.epochs, len(ensemble)), np.nan)
    if history.test_acc:
        acc[:len(history.test_acc)] = np.array(history.test_acc, dtype=float)
    acc = acc.T.reshape(len(arms), len(seeds), -1)
    acc[ensemble.diverged.cpu().numpy().reshape(len(arms), len(seeds)), -1] = np.nan
    return {arm: acc[i] for i, arm in enumerate(arms)}
