"""ZerO at reduced scale (Zhao et al. 2022): the training degeneracy of a partial identity
(Theorem 1); many ResNets trained in one vectorized pass, each member on its own data order and
learning rate; stable rank of weight updates; accuracy under magnitude pruning.

Training degeneracy: a ReLU MLP without biases whose widening layer ``Q -> P`` (``P > Q``)
starts as the padded identity ``[I_Q; 0]`` has ``P - Q`` hidden units with pre-activation
exactly 0 on every input. Since ReLU'(0) = 0 in PyTorch, those rows of the widening layer and
the matching columns of the next layer never get a gradient, so the update ``W - W_init`` of
the next (square) layer keeps rank at most ``Q`` forever. ZerO's cropped Hadamard matrix
(:func:`initrepro.init.zero.zero_hadamard_`) gives every hidden unit a non-zero input and
lifts that bound. The authors' notebook (``example_mnist.ipynb``) tracks ``rank(W3 - I)``.

    >>> net = init_widening_mlp_(widening_mlp((64, 64, 128, 128, 10)), "partial_identity")
    >>> w0 = net[5].weight.detach().clone()  # the 128 x 128 layer after the widening 64 -> 128
    >>> update_ranks(net[5].weight[None], w0[None])  # after training: <= 64
    [0]

ZerO draws no random numbers, so ZerO runs differ only in their data order: an
:class:`~initrepro.models.ensemble.Ensemble` trained by ``initrepro.training.train`` would feed
every member the same batches and train identical ZerO copies. :func:`train_runs` trains them
with ``initrepro.training.train_members`` instead, each run on its own seed (data order) and
learning rate.

    >>> acc, ens, hist, initial = train_runs(make_net, [("ZerO", 0.01, 0), ("ZerO", 0.01, 1)], train, test,
    ...                                      epochs=5, batch_size=64)
    >>> acc  # test accuracy per run (NaN where a run diverged)
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from initrepro.data import TensorData
from initrepro.init.zero import zero_hadamard_
from initrepro.models.ensemble import Ensemble
from initrepro.training import MemberHistory, member_accuracy, train_members


def widening_mlp(widths: Sequence[int]) -> nn.Sequential:
    """Flatten, then bias-free linear layers ``widths[i] -> widths[i+1]`` with ReLU between
    (the notebook's 784-784-n_h-n_h-10 net is ``widening_mlp((784, 784, n_h, n_h, 10))``)."""
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths must hold >= 2 positive sizes, got {tuple(widths)}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out, bias=False))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@torch.no_grad()
def _partial_identity_(weight: torch.Tensor) -> torch.Tensor:
    # The rectangular identity: [I 0] when shrinking, the zero-padded [I; 0] when widening.
    return weight.copy_(torch.eye(*weight.shape, dtype=weight.dtype))


def _kaiming_(weight: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)


#: scheme -> fills one weight matrix (the notebook's three arms)
SCHEMES: dict[str, Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]] = {
    "partial_identity": lambda w, g: _partial_identity_(w),
    "zero": lambda w, g: zero_hadamard_(w),
    "kaiming": _kaiming_,
}


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def init_widening_mlp_(net: nn.Module, scheme: str, generator: torch.Generator | None = None) -> nn.Module:
    """Initialize every linear layer of ``net`` by ``scheme`` (one of ``SCHEMES``) in place."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
    for layer in linear_layers(net):
        SCHEMES[scheme](layer.weight, generator)
    return net


def update_ranks(weights: torch.Tensor, initial: torch.Tensor, tol: float = 1e-4) -> list[int]:
    """``rank(W - W_init)`` of each matrix in a stack ``(members, P, Q)``, singular values
    above the absolute tolerance ``tol`` (the notebook's ``matrix_rank(..., tol=1e-4)``)."""
    if tol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    delta = (weights - initial).detach().double()
    return torch.linalg.matrix_rank(delta, atol=tol, rtol=0.0).tolist()


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
    return member_accuracy(magnitude_prune_(pruned, names, fraction), test_set, batch_size=2000)


def branch_weight_names(ens: Ensemble) -> list[str]:
    """The residual branches' weight layers (``blocks.i.conv1/2.weight``) of a ResNet ensemble."""
    return [n for n in ens.names if n.startswith("blocks.") and n.endswith(("conv1.weight", "conv2.weight"))]


def prunable_weight_names(ens: Ensemble) -> list[str]:
    """Every conv/linear weight but the classifier's (stem, branches, projections)."""
    return [n for n in ens.names if n.endswith("weight") and ens.stacked[ens.names.index(n)].dim() >= 3
            and not n.startswith("classifier")]


def train_runs(make_net, runs: Sequence[tuple[str, float, int]], train_set: TensorData, test_set: TensorData, *,
               running_stats: bool = False, **cfg) -> tuple[list[float], Ensemble, MemberHistory, dict]:
    """Train one member per run ``(arm, lr, seed)`` in one vectorized pass: the net
    ``make_net(arm, seed)`` (``seed`` seeds its init, where it draws any, and its data order),
    at learning rate ``lr``; ``cfg`` goes to ``train_members``. A diverging run is isolated by
    the ensemble; test accuracy after every epoch (``hist.acc["test"]``). Returns the final test
    accuracies (NaN: diverged), the trained ensemble, its history and the initial stacked
    weights (name -> tensor)."""
    if not runs:
        raise ValueError("runs must be non-empty")
    ens = Ensemble([make_net(arm, seed) for arm, _, seed in runs], running_stats=running_stats, isolate_diverged=True)
    hist = train_members(ens, train_set, {"test": test_set}, [lr for _, lr, _ in runs], [s for _, _, s in runs],
                         eval_every_epoch=True, eval_batch_size=2000, **cfg)
    return hist.final["test"], ens, hist, hist.initial


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


def rng_untouched(fn: Callable[[], object]) -> bool:
    """Whether calling ``fn`` leaves torch's global (CPU) RNG state exactly as it was: ZerO's
    claim that its initializer draws no random numbers, tested on the state itself (a drawn
    number advances it), not on the weights."""
    state = torch.get_rng_state()
    fn()
    return bool(torch.equal(state, torch.get_rng_state()))


def param_diffs(a: nn.Module, b: nn.Module) -> dict[str, float]:
    """``max |a - b|`` per parameter tensor of two nets of one architecture, by ``a``'s parameter
    names: where two runs differ, if at all (0.0 exactly where a tensor is bitwise equal)."""
    return {n: float((p - q).detach().abs().max()) for (n, p), q in zip(a.named_parameters(), b.parameters())}


def max_param_diff(a: nn.Module, b: nn.Module) -> float:
    """The largest ``|a - b|`` over every parameter of two nets of one architecture: 0.0 exactly
    when the nets are bitwise equal, ZerO's determinism claim (same init under any global seed,
    same weights after training on the same data order)."""
    return max(param_diffs(a, b).values())
