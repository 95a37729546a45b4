"""Experiment helpers of the IDInit stage (Pan et al. 2025): the arms of the accuracy
comparison, the Table 4 ablation nets and the rank probe, each vectorized over arms, learning
rates and seeds with :func:`initrepro.studies.idinit_dynamics.train_members`.

    >>> arms = accuracy_arms()
    >>> scores = run_arms(arms, lrs={a: [0.01] for a in arms}, seeds=[0, 1, 2], ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from initrepro.init.idinit import channel_identity_, idinit_
from initrepro.init.zero import zero_hadamard_
from initrepro.layers import relu_grad_at_zero
from initrepro.models.resnet import resnet
from initrepro.studies.idinit_dynamics import train_members

#: Fixup's scalar parameters in ``initrepro.models.resnet`` (biases before every layer and the
#: branch multiplier); schemes other than Fixup have none, so they stay frozen at 0 and 1
FIXUP_SCALARS = ("bias1a", "bias1b", "bias2a", "bias2b", "branch_scale", "stem_bias", "head_bias")


def is_scalar(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in FIXUP_SCALARS


@dataclass(frozen=True)
class Arm:
    """One scheme of the accuracy comparison: init, options, batch norm, activation, and
    whether Fixup's scalars train."""

    init: str
    options: dict = field(default_factory=dict)
    batch_norm: bool = False
    activation: str = "relu"  # or "relu_grad_at_zero" (the ZerO authors' ReLU)
    train_scalars: bool = False

    @property
    def group(self) -> tuple:
        """Arms of one group share an architecture and train in one vmapped pass."""
        return (self.batch_norm, self.activation)


ACTIVATIONS = {"relu": F.relu, "relu_grad_at_zero": relu_grad_at_zero}


def accuracy_arms() -> dict[str, Arm]:
    """IDInit (no Fixup scalars: the plain ResNet), Fixup (its scalars train), ZerO with the
    ZerO authors' ReLU (gradient 1 at exactly 0), Kaiming without and with batch norm."""
    return {"IDInit": Arm("idinit"), "Fixup": Arm("fixup", train_scalars=True),
            "ZerO": Arm("zero", activation="relu_grad_at_zero"), "Kaiming": Arm("he"),
            "Kaiming + BN": Arm("he", batch_norm=True)}


def build(arm: Arm, kind: str, in_shape, num_classes: int, widths, blocks, block_type: str, seed: int):
    return resnet(kind, in_shape, num_classes, widths=widths, blocks=blocks, block_type=block_type,
                  batch_norm=arm.batch_norm, init=arm.init, init_options=dict(arm.options), seed=seed,
                  activation=ACTIVATIONS[arm.activation])


def run_arms(arms: dict[str, Arm], runs: list[tuple[str, float, int]], train, evals: dict, *, kind: str,
             widths, blocks, block_type: str, epochs: int, batch_size: int, momentum: float,
             weight_decay: float, eval_every_epoch: bool = False) -> dict:
    """Train every run ``(arm, lr, seed)`` (seed: init and data order), grouped so that arms of
    one architecture share one vmapped pass. Returns ``{(arm, lr, seed): {eval: accuracy}}``
    (NaN where the run diverged), plus ``curves`` per run when ``eval_every_epoch``."""
    out = {}
    groups: dict[tuple, list] = {}
    for run in runs:
        groups.setdefault(arms[run[0]].group, []).append(run)
    for group_runs in groups.values():
        models = [build(arms[a], kind, train.input_shape, train.num_classes, widths, blocks, block_type, s)
                  for a, _, s in group_runs]
        res = train_members(models, train.x, train.y, evals, lrs=[lr for _, lr, _ in group_runs],
                            seeds=[s for _, _, s in group_runs], epochs=epochs, batch_size=batch_size,
                            momentum=momentum, weight_decay=weight_decay,
                            frozen=lambda i, n: is_scalar(n) and not arms[group_runs[i][0]].train_scalars,
                            eval_every_epoch=eval_every_epoch)
        for i, run in enumerate(group_runs):
            out[run] = {k: float(v[i]) for k, v in res["acc"].items()}
            if eval_every_epoch:
                out[run]["curve"] = {k: v[:, i].tolist() for k, v in res["curves"].items()}
    return out


def rank_mlp(sizes, fill, generator: torch.Generator, dtype=torch.float64) -> nn.Sequential:
    """A ReLU MLP ``sizes[0] -> ... -> sizes[-1]`` with zero biases, every weight filled by
    ``fill(weight, generator)``."""
    layers = [nn.Linear(a, b, dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    for layer in layers:
        fill(layer.weight, generator)
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*[m for layer in layers for m in (layer, nn.ReLU())][:-1])


#: the rank probe's arms: how every weight of the MLP starts (the widening layer decides)
RANK_FILLS = {
    "padded identity (IDI)": lambda w, g: idinit_(w),
    "zero-padded identity": lambda w, g: channel_identity_(w),
    "Hadamard (ZerO)": lambda w, g: zero_hadamard_(w),
    "Kaiming": lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g),
}


def singular_tail(weight_change: torch.Tensor, at: int) -> dict:
    """The singular values of a weight change around index ``at`` (1-based ranks), relative to
    the largest: ``s_at / s_1`` and ``s_(at+1) / s_1`` (the first past the bound) and the last."""
    s = torch.linalg.svdvals(weight_change)
    s = (s / s[0]).tolist()
    pick = lambda i: s[i - 1] if 1 <= i <= len(s) else float("nan")  # noqa: E731
    return {f"s{at}/s1": pick(at), f"s{at + 1}/s1": pick(at + 1), "s_last/s1": s[-1]}
