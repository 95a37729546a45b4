"""Experiment helpers of the IDInit stage (Pan et al. 2025): what training does to weights that
start at (padded) identities and zeros, and the arms of the accuracy comparison, the Table 4
ablation nets and the rank probe, each vectorized over arms, learning rates and seeds with
:func:`initrepro.training.train_members`.

- :func:`unchanged_fraction`: the fraction of parameter entries that training left bitwise
  unchanged, per ensemble member (IDInit's "dead neurons", Sec. 3.2 and Fig. 5).
- :func:`update_rank`: the numerical rank of a weight's change ``W - W_init`` (Thm 3.1 and
  Fig. 4b bound ``rank(theta_k - I)`` for zero-padded identities).
- :func:`deep_linear_descent`: (stochastic) gradient descent, with or without momentum, of a
  deep linear network from the identity on ``y = A x`` (Sec. 3.1, Table 1), vectorized over
  independent data sets.
- :func:`live_coordinates`, :func:`standardize_live`: the structural bound of an update's rank
  (the live coordinates of a layer's input) and inputs in which every coordinate is live.
- :func:`run_arms`, :func:`rank_mlp`, :func:`singular_tail`: the accuracy comparison's runs,
  the rank probe's nets and the singular values around its bound.

    >>> losses = deep_linear_descent(x, -x, steps=3000, lr=0.01, momentum=0.9)
    >>> losses[:, -1]  # final full-data loss per data set
    >>> arms = accuracy_arms()
    >>> scores = run_arms(arms, [(a, 0.01, s) for a in arms for s in (0, 1, 2)], train, {"test": test}, ...)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from initrepro.init.idinit import channel_identity_, idinit_
from initrepro.init.zero import zero_hadamard_
from initrepro.layers import relu_grad_at_zero
from initrepro.models.ensemble import Ensemble
from initrepro.models.resnet import resnet
from initrepro.training import train_members

@torch.no_grad()
def unchanged_fraction(before: Iterable[torch.Tensor], after: Iterable[torch.Tensor]) -> torch.Tensor:
    """Per member, the fraction of entries equal in ``before`` and ``after`` (bitwise).

    Both are sequences of stacked tensors ``(members, ...)`` (e.g. ``Ensemble.stacked`` before
    and after training), paired in order.
    """
    same = total = 0
    for b, a in zip(before, after, strict=True):
        if b.shape != a.shape or b.dim() < 1:
            raise ValueError(f"before and after must pair stacked tensors of equal shape, got {tuple(b.shape)} "
                             f"and {tuple(a.shape)}")
        same = same + (b == a).flatten(1).sum(1)
        total += b[0].numel()
    if not total:
        raise ValueError("before must hold at least one tensor")
    return same / total


@torch.no_grad()
def update_rank(weight: torch.Tensor, initial: torch.Tensor, rtol: float) -> int:
    """Numerical rank of ``weight - initial``: singular values above ``rtol * s_max``."""
    if weight.shape != initial.shape or weight.dim() != 2:
        raise ValueError(f"weight and initial must be matrices of one shape, got {tuple(weight.shape)} "
                         f"and {tuple(initial.shape)}")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol}")
    return int(torch.linalg.matrix_rank(weight - initial, rtol=rtol))


def deep_linear_descent(x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, momentum: float = 0.0,
                        depth: int = 3, batch_size: int | None = None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Train ``W_depth ... W_1`` from ``W_l = I`` on ``(x, y)`` and return the full-data losses.

    ``x`` and ``y`` are ``(sets, n, d)``: independent data sets trained side by side (one net
    each). Loss ``0.5 mean_i ||W x_i - y_i||^2`` (0.5 d at the zero product for ``y = -x``).
    ``batch_size=None`` is full-batch gradient descent; otherwise each step uses ``batch_size``
    samples drawn without replacement (per set, with ``generator``). SGD with heavy-ball
    ``momentum`` as in ``torch.optim.SGD``. Returns ``(sets, steps + 1)`` losses (the first at init).
    """
    if x.dim() != 3 or x.shape != y.shape:
        raise ValueError(f"x and y must be (sets, n, d) of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if steps < 1 or depth < 1:
        raise ValueError(f"steps and depth must be >= 1, got {steps} and {depth}")
    sets, n, d = x.shape
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] or None, got {batch_size}")
    weights = torch.eye(d, dtype=x.dtype).expand(sets, depth, d, d).clone().requires_grad_(True)
    optimizer = torch.optim.SGD([weights], lr=lr, momentum=momentum)

    def moments(xb, yb):  # the loss is quadratic: second moments (sets, d, d) decide it
        m = len(xb[0])
        return xb.transpose(1, 2) @ xb / m, xb.transpose(1, 2) @ yb / m, (yb ** 2).sum((1, 2)) / m

    def loss(sxx, sxy, syy):  # 0.5 E||W x - y||^2, per set
        w = weights[:, 0]
        for layer in range(1, depth):
            w = weights[:, layer] @ w
        return 0.5 * ((w @ sxx * w).sum((1, 2)) - 2 * (w * sxy.transpose(1, 2)).sum((1, 2)) + syy)

    full_moments = moments(x, y)
    losses = torch.empty(sets, steps + 1, dtype=x.dtype)
    for step in range(steps + 1):
        full = loss(*full_moments)
        losses[:, step] = full.detach()
        if step == steps:
            break
        if batch_size is None:
            objective = full.sum()
        else:
            idx = torch.rand(sets, n, generator=generator).argsort(1)[:, :batch_size, None].expand(-1, -1, d)
            objective = loss(*moments(x.gather(1, idx), y.gather(1, idx))).sum()
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
    return losses


@torch.no_grad()
def live_coordinates(x: torch.Tensor) -> int:
    """Coordinates (columns of ``x``, samples in rows) that are non-zero for some sample: the
    dimension available to a weight change behind them. For a layer fed ``x``, every update is
    a sum of outer products ``delta x^T``, so ``rank(W - W_init) <= live_coordinates(x)``
    (and ``<= rank(x)``); a zero-filled (dead) coordinate adds nothing."""
    if x.dim() != 2:
        raise ValueError(f"x must be (samples, coordinates), got shape {tuple(x.shape)}")
    return int((x != 0).any(0).sum())


def live_pixels(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the flattened input coordinates that vary over the samples ``x``
    (N, ...): constant pixels carry no information and bound every rank by their absence."""
    flat = x.flatten(1)
    return flat.std(0) > 0


def standardize_live(train_x: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Flatten, drop the pixels that are constant on the training split, and standardize every
    remaining pixel with its training mean and sd, so that every coordinate is live (takes both
    signs over the data, hence passes a ReLU behind an identity for some sample)."""
    keep = live_pixels(train_x)
    flat = train_x.flatten(1)[:, keep]
    mean, sd = flat.mean(0), flat.std(0)
    return tuple(((t.flatten(1)[:, keep] - mean) / sd).to(t.dtype) for t in (train_x, *others))


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
             weight_decay: float, eval_every_epoch: bool = False, device: str = "cpu") -> dict:
    """Train every run ``(arm, lr, seed)`` (seed: init and data order) on ``train`` and score it
    on ``evals`` (name -> data), grouped so that arms of one architecture share one vmapped pass;
    a diverging run is frozen by the trainer. Returns ``{(arm, lr, seed): {eval: accuracy}}``
    (NaN where the run diverged), plus ``curve`` per run when ``eval_every_epoch``. Models
    are built on the CPU (the same draws everywhere) and trained on ``device``."""
    out = {}
    groups: dict[tuple, list] = {}
    for run in runs:
        groups.setdefault(arms[run[0]].group, []).append(run)
    for group_runs in groups.values():
        ens = Ensemble([build(arms[a], kind, train.input_shape, train.num_classes, widths, blocks, block_type, s)
                        for a, _, s in group_runs], running_stats=True)
        hist = train_members(ens, train, evals, [lr for _, lr, _ in group_runs], [s for _, _, s in group_runs],
                             epochs=epochs, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay,
                             frozen=lambda i, n: is_scalar(n) and not arms[group_runs[i][0]].train_scalars,
                             eval_every_epoch=eval_every_epoch, device=device)
        for i, run in enumerate(group_runs):
            out[run] = {k: v[i] for k, v in hist.final.items()}
            if eval_every_epoch:
                out[run]["curve"] = {k: [acc[i] for acc in v] for k, v in hist.acc.items()}
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


#: the layers IDIZ fills (the last layer of each branch and the classifier)
IDIZ_LAYERS = ("conv2.weight", "classifier.weight")


def dead_parameter_ablation(arms: dict[str, Arm], nets: dict[str, list], train, test, *, seeds, blocks,
                            block_type: str, lr: float, epochs: int, batch_size: int, momentum: float,
                            last_layers=IDIZ_LAYERS, device: str = "cpu", progress=lambda nets: nets):
    """The dead-parameter ablation (Table 4, Fig. 5 of IDInit): for every net ``kind -> widths``
    of ``nets`` (``"conv"``, ``"fc"``), every arm x seed trains in one vmapped pass at ``lr``
    without Fixup's scalars (frozen) or weight decay, so a weight ends unchanged exactly when it
    never received a gradient; then it measures per run the fraction of weights never changed,
    over all trained weights and over ``last_layers`` alone (the layers IDIZ fills), and the
    test accuracy. ``progress`` wraps the loop over nets (a progress bar).

    Returns ``(unchanged, unchanged_last, test_acc, n_weights)``: the first three
    ``{net: {arm: [value per seed]}}``, ``n_weights`` ``{net: number of weights a fraction is
    counted over}`` (what floors a comparison of fractions by its binomial sd)."""
    unchanged, unchanged_last, test_acc = ({net: {arm: [] for arm in arms} for net in nets} for _ in range(3))
    n_weights = {}
    for net in progress(nets):
        runs = [(a, s) for a in arms for s in seeds]
        models = [build(arms[a], net, train.input_shape, train.num_classes, nets[net], blocks, block_type, s)
                  for a, s in runs]
        ens = Ensemble(models, running_stats=True)
        res = train_members(ens, train, {"test": test}, lrs=[lr] * len(runs), seeds=[s for _, s in runs],
                            epochs=epochs, batch_size=batch_size, momentum=momentum,
                            frozen=lambda i, n: is_scalar(n), device=device)
        weights = dict(zip(ens.names, ens.stacked))
        trained = [n for n in ens.names if not is_scalar(n)]
        n_weights[net] = sum(weights[n][0].numel() for n in trained)
        last = [n for n in trained if n.endswith(tuple(last_layers))]
        frac = unchanged_fraction([res.initial[n] for n in trained], [weights[n] for n in trained]).tolist()
        frac_last = unchanged_fraction([res.initial[n] for n in last], [weights[n] for n in last]).tolist()
        for i, (arm, _) in enumerate(runs):
            unchanged[net][arm].append(frac[i])
            unchanged_last[net][arm].append(frac_last[i])
            test_acc[net][arm].append(res.final["test"][i])
    return unchanged, unchanged_last, test_acc, n_weights
