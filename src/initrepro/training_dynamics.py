"""What training does to weights that start at (padded) identities and zeros (Pan et al. 2025).

- :func:`unchanged_fraction`: the fraction of parameter entries that training left bitwise
  unchanged, per ensemble member (IDInit's "dead neurons", Sec. 3.2 and Fig. 5).
- :func:`update_rank`: the numerical rank of a weight's change ``W - W_init`` (Thm 3.1 and
  Fig. 4b bound ``rank(theta_k - I)`` for zero-padded identities).
- :func:`deep_linear_descent`: (stochastic) gradient descent, with or without momentum, of a
  deep linear network from the identity on ``y = A x`` (Sec. 3.1, Table 1), vectorized over
  independent data sets.

    >>> losses = deep_linear_descent(x, -x, steps=3000, lr=0.01, momentum=0.9)
    >>> losses[:, -1]  # final full-data loss per data set
"""

from __future__ import annotations

from typing import Iterable

import torch


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
