"""Fractional moment-preserving scales and the log-norm limit (Gurbuzbalaban & Hu, AISTATS 2021).

Setting: x_k = phi(W_k x_{k-1}) with W_ij ~ N(0, sigma^2) i.i.d., width d, no bias, phi
positively homogeneous (ReLU, leaky ReLU with slope a, linear). Given x, W x ~ N(0, sigma^2
||x||^2 I_d), so the per-layer norm ratio R = ||x_k|| / ||x_{k-1}|| satisfies

    R^2 = sigma^2 X,   X = A + a^2 B,   A ~ chi^2_N, B ~ chi^2_{d-N}, N ~ Bin(d, 1/2)

(linear: X ~ chi^2_d). Writing A + B = S ~ chi^2_d and U = A / S ~ Beta(N/2, (d-N)/2),
independent of S, gives X = S * (a^2 + (1 - a^2) U), which turns every quantity below into
closed forms (ReLU, linear) or one smooth Gauss-Jacobi quadrature (leaky ReLU):

    E X^(s/2) = 2^(s/2) G((d+s)/2) / G(d/2) * E_N E_U (a^2 + (1-a^2) U)^(s/2)
    sigma_s   = (E X^(s/2))^(-1/s)                          so that E R^s = 1
    log R     = log sigma + (1/2) [log S + log(a^2 + (1-a^2) U)]
    mu        = E log R,   rho2 = Var log R                  (per layer)

R_k are i.i.d. and independent of x_0, so (log||x_L|| - log||x_0|| - L mu) / sqrt(L rho2) -> N(0, 1).
For ReLU, N = 0 kills the network (probability 2^-d per layer); ``lognorm_limit`` conditions on
N >= 1, as the paper does.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special, stats

ACTIVATIONS = ("relu", "leaky_relu", "linear")
_QUAD_NODES = 48
_PMF_CUTOFF = 1e-17  # binomial terms below this change no float64 result


def check_args(d: int, s: float | None, activation: str, negative_slope: float) -> None:
    """ValueError naming the parameter and its allowed range."""
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"width d must be an integer >= 1, got {d!r}")
    if s is not None and not 0 < s <= 2:
        raise ValueError(f"moment order s must be in (0, 2], got {s!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if not 0 <= negative_slope < 1:
        raise ValueError(f"negative_slope must be in [0, 1), got {negative_slope!r}")


def _slope(activation: str, negative_slope: float) -> float:
    return {"relu": 0.0, "leaky_relu": negative_slope, "linear": 1.0}[activation]


@lru_cache(maxsize=None)
def _active_units(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Values n of N ~ Bin(d, 1/2) that carry probability, and their pmf."""
    n = np.arange(d + 1)
    pmf = stats.binom.pmf(n, d, 0.5)
    keep = pmf > _PMF_CUTOFF
    return n[keep], pmf[keep]


@lru_cache(maxsize=None)
def _beta_nodes(alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Jacobi nodes and weights (summing to 1) for U ~ Beta(alpha, beta)."""
    x, w = special.roots_jacobi(_QUAD_NODES, beta - 1, alpha - 1)
    return (1 + x) / 2, w / w.sum()


def _mixture_mean(d: int, a: float, f) -> float:
    """E_N E_U f(a^2 + (1 - a^2) U) over N ~ Bin(d, 1/2), U | N ~ Beta(N/2, (d-N)/2)."""
    total = 0.0
    for n, p in zip(*_active_units(d)):
        if n == 0:
            total += p * f(np.float64(a * a))
        elif n == d:
            total += p * f(np.float64(1.0))
        else:
            u, w = _beta_nodes(n / 2, (d - n) / 2)
            total += p * float(w @ f(a * a + (1 - a * a) * u))
    return total


def _log_chi_moment(d: int, s: float) -> float:
    """log E (chi^2_d)^(s/2)."""
    return s / 2 * math.log(2) + special.gammaln((d + s) / 2) - special.gammaln(d / 2)


def sigma_s(d: int, s: float, activation: str = "relu", negative_slope: float = 0.0) -> float:
    """Exact weight std that keeps E ||x_k||^s = ||x_{k-1}||^s for a width-``d`` layer.

    ReLU: sigma_s = [2^(s/2) sum_n C(d,n) 2^-d G((n+s)/2) / G(n/2)]^(-1/s); linear:
    sigma_s = [2^(s/2) G((d+s)/2) / G(d/2)]^(-1/s); leaky ReLU by quadrature (module docstring).
    s = 2 gives He (sqrt(2/d)) and LeCun (sqrt(1/d)) exactly.

        >>> round(sigma_s(64, 2.0) ** 2 * 64, 12)
        2.0
    """
    check_args(d, s, activation, negative_slope)
    a = _slope(activation, negative_slope)
    if activation == "relu":
        n, p = _active_units(d)
        n, p = n[n > 0], p[n > 0]  # G(n/2) = inf at n = 0: a dead layer contributes 0
        log_terms = np.log(p) + s / 2 * math.log(2) + special.gammaln((n + s) / 2) - special.gammaln(n / 2)
        log_moment = special.logsumexp(log_terms)
    else:
        log_moment = _log_chi_moment(d, s)
        if a != 1.0:
            log_moment += math.log(_mixture_mean(d, a, lambda v: v ** (s / 2)))
    return math.exp(-log_moment / s)


def sigma_s_closed_form(d: int, s: float, activation: str = "relu", negative_slope: float = 0.0) -> float:
    """The authors' 1/d expansions of sigma_s (their ``frac_init.py``):
    ReLU 2/d + 5(2-s)/(2d^2); linear 1/d + (2-s)/(2d^2); leaky ReLU (slope a)
    2/((1+a^2) d) + (2-s)((5s-24)a^2 + 10) / ((2(s+2)a^2 + 4) d^2); returns the std."""
    check_args(d, s, activation, negative_slope)
    a2 = negative_slope ** 2
    variance = {
        "relu": 2 / d + 5 * (2 - s) / (2 * d ** 2),
        "linear": 1 / d + (2 - s) / (2 * d ** 2),
        "leaky_relu": 2 / ((1 + a2) * d) + (2 - s) * ((5 * s - 24) * a2 + 10) / ((2 * (s + 2) * a2 + 4) * d ** 2),
    }[activation]
    return math.sqrt(variance)


def he_sigma(d: int, activation: str = "relu", negative_slope: float = 0.0) -> float:
    """The classical second-moment scale (He for (leaky) ReLU, LeCun for linear)."""
    check_args(d, None, activation, negative_slope)
    a = _slope(activation, negative_slope)
    return math.sqrt(2 / ((1 + a * a) * d))


def lognorm_limit(d: int, s: float | None = None, activation: str = "relu", negative_slope: float = 0.0,
                  sigma: float | None = None) -> tuple[float, float]:
    """Per-layer mean ``mu`` and variance ``rho2`` of log R = log(||x_k|| / ||x_{k-1}||).

    (log||x_L|| - log||x_0|| - L mu) / sqrt(L rho2) -> N(0, 1) as L grows. The weight std is
    ``sigma`` if given, else ``sigma_s(d, s, ...)``. rho2 depends on neither s nor sigma.

    ReLU: mu = log sigma + [log 2 + E psi(N/2)] / 2, rho2 = [E psi'(N/2) + Var psi(N/2)] / 4
    with N ~ Bin(d, 1/2) given N >= 1; linear: mu = log sigma + [log 2 + psi(d/2)] / 2,
    rho2 = psi'(d/2) / 4.
    """
    check_args(d, s if sigma is None else None, activation, negative_slope)
    if sigma is None:
        if s is None:
            raise ValueError("give either the moment order s or the weight std sigma")
        sigma = sigma_s(d, s, activation, negative_slope)
    a = _slope(activation, negative_slope)
    if activation == "relu":
        n, p = _active_units(d)
        n, p = n[n > 0], p[n > 0] / p[n > 0].sum()
        psi = special.digamma(n / 2)
        mean_log_x = math.log(2) + p @ psi
        var_log_x = p @ special.polygamma(1, n / 2) + p @ (psi - p @ psi) ** 2
    else:
        mean_log_x = math.log(2) + special.digamma(d / 2)
        var_log_x = special.polygamma(1, d / 2)
        if a != 1.0:
            m1 = _mixture_mean(d, a, np.log)
            mean_log_x += m1
            var_log_x += _mixture_mean(d, a, lambda v: np.log(v) ** 2) - m1 ** 2
    return math.log(sigma) + mean_log_x / 2, float(var_log_x) / 4


def small_output_probability(depth, d: int, t: float, s: float | None = None, activation: str = "relu",
                             negative_slope: float = 0.0, sigma: float | None = None):
    """Gaussian-limit P(log||x_L|| - log||x_0|| < -t) at each depth L in ``depth``."""
    mu, rho2 = lognorm_limit(d, s, activation, negative_slope, sigma)
    L = np.asarray(depth, dtype=float)
    return stats.norm.cdf((-t - L * mu) / np.sqrt(L * rho2))
