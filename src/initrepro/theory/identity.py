"""The spectrum of J J^T for a deep MLP initialized at ``W_l = sigma I`` (zero biases).

With ``x_l = phi(sigma x_{l-1})`` and input ``u ~ N(0, q0 I)``, the Jacobian is diagonal,
``J = prod_l sigma D_l`` with ``D_l = diag(phi'(h_l))``, so the eigenvalues of ``J J^T`` are
``J_ii^2 = sigma^(2L) prod_l phi'(h_l,i)^2`` exactly, at any width (Kubota et al., ICASSP 2021;
derivation in the digest). For ``phi' in {0, 1}`` this is the two-point law

    (1 - alpha) delta_0 + alpha delta_{sigma^(2L)},   nonzero count ~ Binomial(N, alpha),

- ReLU: a coordinate lives iff ``u_i > 0``: ``alpha = 1/2`` for every ``sigma > 0`` and ``q0``;
- hard-tanh: it lives iff ``|sigma^l u_i| < 1`` for ``l = 1..L``:
  ``alpha = erf(1 / (m sqrt(2 q0)))``, ``m = max(sigma, sigma^L)``.

tanh has ``phi' in (0, 1)``: no two-point law. Everything is computed in float64
(``1.05^200 = 1.7e4``, ``0.9^200 = 7e-10``).

    >>> two_point_law("relu", sigma=1.0, depth=100)
    (1.0, 0.5)
"""

from __future__ import annotations

import math

import torch


def _relu_alive(sigma: float, depth: int, q0: float) -> float:
    return 0.5


def _hard_tanh_alive(sigma: float, depth: int, q0: float) -> float:
    m = max(sigma, sigma ** depth)
    return math.erf(1.0 / (m * math.sqrt(2.0 * q0)))


#: activations with phi' in {0, 1}: probability that a coordinate's Jacobian entry survives all layers
ALIVE = {"relu": _relu_alive, "hard_tanh": _hard_tanh_alive}


def two_point_law(activation: str, sigma: float, depth: int, q0: float = 1.0) -> tuple[float, float]:
    """``(sigma^(2L), alpha)``: the nonzero atom of the spectrum of J J^T and its weight."""
    if activation not in ALIVE:
        raise ValueError(f"activation must be one of {sorted(ALIVE)} (phi' in {{0, 1}}), got {activation!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if not q0 > 0:
        raise ValueError(f"q0 must be > 0, got {q0}")
    return float(sigma) ** (2 * depth), ALIVE[activation](float(sigma), depth, float(q0))


def binomial_z(count: int, n: int, p: float) -> float:
    """z-score of a Binomial(n, p) count (normal approximation)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    return (count - n * p) / math.sqrt(n * p * (1 - p))


def jjt_eigenvalues(body: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (ascending) of ``J J^T`` of ``body`` at every row of ``inputs``, shape ``(batch, N)``.

    The full Jacobian by autodiff, vmapped over the inputs, in the dtype of ``body`` (use float64):
    a Monte Carlo check that assumes nothing about the structure of J.
    """
    from torch.func import functional_call, jacrev, vmap

    params = {k: v.detach() for k, v in body.named_parameters()}
    jac = vmap(jacrev(lambda u: functional_call(body, params, (u[None],))[0]))(inputs.to(next(iter(params.values())).dtype))
    return torch.linalg.eigvalsh(jac @ jac.transpose(-1, -2))
