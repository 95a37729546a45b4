"""What ReLU masks do to a network's input-output Jacobian (Burkholz & Dubatovka 2019).

At an input ``x`` the Jacobian of a plain ReLU MLP is ``W_L D_{L-1} W_{L-1} ... D_1 W_1`` with
0/1 masks ``D_l``, so ``rank J <= min_l K_l``, the fewest active units of any layer (about
half the width under any symmetric weight law). The singular values come from
:func:`initrepro.measures.isometry.jacobian_singular_values`.

    >>> s = jacobian_singular_values(net, x)
    >>> numerical_rank(s) <= min(active_units(net, x))
    True
"""

from __future__ import annotations

import torch
import torch.nn as nn

from initrepro.measures.isometry import device_of


def active_units(model: nn.Module, x: torch.Tensor) -> list[int]:
    """Number of positive outputs of every ``nn.ReLU`` of ``model`` at the single input ``x``
    (no batch dimension), in forward order; ``x`` moves to the model's device and dtype."""
    counts: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: counts.append(int((out > 0).sum())))
             for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(x[None].to(device_of(model), next(model.parameters()).dtype))
    finally:
        for h in hooks:
            h.remove()
    return counts


def numerical_rank(singular_values: torch.Tensor) -> int:
    """Singular values above ``max * n * eps(float64)`` (NumPy's ``matrix_rank`` rule)."""
    s = singular_values.double()
    tol = s.max() * len(s) * torch.finfo(torch.float64).eps
    return int((s > tol).sum())


def isometry_fraction(singular_values: torch.Tensor, factor: float = 2.0) -> float:
    """Fraction of singular values within ``[1 / factor, factor]``: 1 under dynamical isometry."""
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor}")
    s = singular_values.double()
    return float(((s >= 1 / factor) & (s <= factor)).double().mean())
