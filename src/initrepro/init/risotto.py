"""RISOTTO: Residual dynamical ISOmetry by initial orThogonaliTy (Gadhikar & Burkholz 2022).

Gadhikar & Burkholz, "Dynamical Isometry for Residual Networks", arXiv 2210.02411 (the RISOTTO
construction for residual blocks of type B and C).
Every weight layer is a looks-linear copy of an orthogonal-derived matrix, so a post-activation
ReLU block ``relu(alpha * W2 relu(W1 x) + beta * h(x))`` maps the stream ``[relu(v); relu(-v)]``
to ``[relu(Vv); relu(-Vv)]`` for a random orthogonal ``V``: the whole net is an exact isometry
at initialization for any finite depth and width, while the residual branch stays of the same
order as the skip (the "balance" that Fixup and SkipInit give up).

- Type B (projection skip ``h = LL(Us)``): ``W1 = LL(U1)``, ``W2 = LL(M)`` with
  ``M = alpha^-1 (V - beta Us) U1^T``, so ``alpha M U1 + beta Us = V``.
- Type C (identity skip): ``W1 = LL(I)`` (then ``relu(W1 x) = x`` on the stream) and
  ``W2 = alpha^-1 (LL(V) - beta I)``, so ``alpha W2 x + beta x = LL(V) x``.

The paper's text was not available to us; this is the construction of our paper digest,
checked numerically (tests/test_risotto.py): singular values 1 within 1e-9 in float64.

    >>> net = resnet("fc", (8,), 8, widths=16, blocks=16, init="risotto", dtype=torch.float64)
    >>> jacobian_singular_values(net, torch.randn(8, dtype=torch.float64))  # all 1
"""

from __future__ import annotations

import math

import torch

from initrepro.init.looks_linear import LAYOUTS, delta_, looks_linear_


def _orthogonal(rows: int, cols: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.nn.init.orthogonal_(torch.empty(rows, cols, dtype=torch.float64), generator=generator)


def risotto_block_(block, alpha: float = 1.0, beta: float = 1.0,
                   generator: torch.Generator | None = None):
    """Initialize one ``ResidualBlock`` in place (type B where it has a projection, else type C;
    the two constructions of the module docstring) and return it.

    Example: ``risotto_block_(net.blocks[0], alpha=1.0, beta=1.0, generator=g)``.
    """
    out2, in2 = block.conv1.weight.shape[:2]
    if out2 % 2 or in2 % 2:
        raise ValueError(f"RISOTTO needs even widths (mirrored halves), got block {in2} -> {out2}")
    m_out, m_in = out2 // 2, in2 // 2
    v = _orthogonal(m_out, m_in, generator)
    if block.skip is not None:
        if m_out < m_in:
            raise ValueError(f"RISOTTO type B needs non-decreasing widths, got block {in2} -> {out2}")
        u1, us = _orthogonal(m_out, m_in, generator), _orthogonal(m_out, m_in, generator)
        looks_linear_(block.conv1.weight, u1)
        looks_linear_(block.skip.weight, us)
        looks_linear_(block.conv2.weight, (v - beta * us) @ u1.T / alpha)
    else:
        looks_linear_(block.conv1.weight, torch.eye(m_in, dtype=torch.float64))
        mirrored_v = torch.kron(LAYOUTS["block"].to(v), v)
        delta_(block.conv2.weight, (mirrored_v - beta * torch.eye(out2, dtype=torch.float64)) / alpha)
    with torch.no_grad():
        block.branch_scale.fill_(alpha)
        block.skip_scale.fill_(beta)
    return block


def risotto_(model, alpha: float = 1.0, beta: float = 1.0, generator: torch.Generator | None = None):
    """RISOTTO-initialize a ``ResNet`` in place and return it.

    ``alpha`` weights the residual branch, ``beta`` the skip; ``alpha = beta = 1`` balances
    them. Stem ``[U0; -U0]``, every block as above, head ``[UL, -UL]`` with zero bias; batch
    norms and scalar biases at their identity values. Widths must be even and non-decreasing.

    Example: ``risotto_(resnet(init="he"), alpha=1.0, beta=1.0, generator=g)``.
    """
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a finite number > 0, got {alpha}")
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")
    if model.stem.weight.shape[0] % 2:
        raise ValueError(f"RISOTTO needs even widths (mirrored halves), got stem width {model.stem.weight.shape[0]}")
    model.reset_parameters(generator)
    looks_linear_(model.stem.weight, layout="stem", generator=generator)
    for block in model.blocks:
        risotto_block_(block, alpha, beta, generator)
    looks_linear_(model.classifier.weight, layout="head", generator=generator)
    return model
