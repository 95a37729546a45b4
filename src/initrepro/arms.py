"""Arms (e.g. initialization schemes) x seeds trained as one vectorized ensemble per setting.

A comparison of schemes trains every arm with every seed under the same configuration; here
they all become members of one :class:`initrepro.models.ensemble.Ensemble` and go through
:func:`initrepro.training.train` once (same data order for every member, so arms are paired by
seed). A member that diverges is isolated (it stops, the others go on) and its final accuracy
is NaN, which :func:`initrepro.verdicts.collapsed` counts as collapsed.

    >>> acc = train_arms(lambda arm, s: resnet(init=arm, seed=s), ["he", "fixup"], [0, 1],
    ...                  train_set, val_set, TrainConfig(epochs=2, lr=0.01))
    >>> acc["fixup"].shape  # (seeds, epochs)
    (2, 2)
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from initrepro.data import TensorData
from initrepro.models.ensemble import Ensemble
from initrepro.training import TrainConfig, train


def train_arms(build: Callable[[str, int], torch.nn.Module], arms: Sequence[str], seeds: Sequence[int],
               train_set: TensorData, eval_set: TensorData, cfg: TrainConfig, *, progress: bool = False,
               desc: str = "arms") -> dict[str, np.ndarray]:
    """Train ``build(arm, seed)`` for every arm and seed in one ensemble; return, per arm, the
    evaluation accuracy after every epoch as an array ``(seeds, epochs)``. The last epoch of a
    diverged member is NaN. Every model must have the same architecture (batch norm allowed).
    """
    arms, seeds = list(arms), list(seeds)
    if not arms or not seeds:
        raise ValueError(f"arms and seeds must be non-empty, got {arms} and {seeds}")
    ensemble = Ensemble([build(arm, s) for arm in arms for s in seeds], running_stats=True, isolate_diverged=True)
    history = train(ensemble, train_set, eval_set, cfg, progress=progress, desc=desc)
    acc = np.array(history.test_acc, dtype=float).T.reshape(len(arms), len(seeds), -1)
    acc[ensemble.diverged.numpy().reshape(len(arms), len(seeds)), -1] = np.nan
    return {arm: acc[i] for i, arm in enumerate(arms)}
