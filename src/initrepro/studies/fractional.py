"""Monte Carlo of the log-norm ratios of many random networks at once, by two samplers.

Both simulate x_k = phi(W_k x_{k-1}) with W_ij ~ N(0, sigma^2) i.i.d. (width d, no bias,
phi positively homogeneous) and return log R_k = log(||x_k|| / ||x_{k-1}||).

- :func:`log_norm_ratios` (the *matrix path*): every network carries its state through a
  d x d Gaussian matrix per layer, one batched matmul per layer, the state renormalized to
  unit norm after every layer (this changes no ratio), so nothing under- or overflows.
- :func:`rotational_log_ratios` / :func:`rotational_log_norms` (the *rotational sampler*):
  for a fresh Gaussian W, W x ~ N(0, sigma^2 ||x||^2 I_d) whatever x is, so
  R_k = ||phi(sigma g_k)|| with g_k ~ N(0, I_d) independent of everything before: one
  d-vector of normals per layer instead of a d x d matrix (d times fewer normals, no matmul).
  Work is split into chunks of networks, each with its own generator seeded from
  ``generator``, so the result does not depend on the number of threads.

A ReLU network whose units all die (probability 2^-d per layer) gets log R = -inf.

Every sampler takes a ``device`` on which its normals are drawn (each chunk's generator lives
there) and returns its result on the CPU. A CUDA generator draws other numbers than a CPU
one with the same seed: the law is the same, the sample is not.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from initrepro.theory.fractional import check_args

_PHI = {
    "relu": lambda z, a: torch.relu(z),
    "leaky_relu": lambda z, a: torch.nn.functional.leaky_relu(z, a),
    "linear": lambda z, a: z,
}
#: float32 normals per chunk of the rotational sampler (64 MiB): fixed, so results do not
#: depend on the number of threads
CHUNK_NORMALS = 1 << 24
#: networks per chunk of the matrix path (a chunk draws 4096 x this many normals per layer at
#: width 64): fixed, so results do not depend on the number of threads
MATRIX_CHUNK_NETWORKS = 256


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _matrix_chunk(seed: int, num_networks: int, width: int, depth: int, sigma: float, activation: str,
                  negative_slope: float, device: str | torch.device) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(seed)
    phi = _PHI[activation]
    x = torch.randn(num_networks, width, 1, generator=gen, device=device)
    x = x / x.norm(dim=1, keepdim=True)
    out = torch.empty(num_networks, depth, dtype=torch.float64, device=device)
    for k in range(depth):
        w = torch.randn(num_networks, width, width, generator=gen, device=device).mul_(sigma)
        x = phi(torch.bmm(w, x), negative_slope)
        norm = x.norm(dim=1, keepdim=True)
        out[:, k] = norm.view(-1).double().log()
        x = x / norm.clamp_min(torch.finfo(x.dtype).tiny)
    return out.cpu()


def log_norm_ratios(num_networks: int, width: int, depth: int, sigma: float, activation: str = "relu",
                    negative_slope: float = 0.0, generator: torch.Generator | None = None,
                    progress: bool = False, device: str | torch.device = "cpu") -> torch.Tensor:
    """The matrix path: log(||x_k|| / ||x_{k-1}||) for k = 1..depth, shape (num_networks, depth),
    float64. Each network has its own i.i.d. N(0, sigma^2) weights (width x width, no bias) and
    a random unit input, carried through the layers as a real network (one batched matmul per
    layer). Networks are split into chunks of :data:`MATRIX_CHUNK_NETWORKS`, each with its own
    generator seeded from ``generator`` (a CPU generator) and run on a thread pool, so the
    result does not depend on the number of threads. The matrices are drawn on ``device``."""
    check_args(width, None, activation, negative_slope)
    _check_sizes(num_networks=num_networks, depth=depth)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    sizes = [min(MATRIX_CHUNK_NETWORKS, num_networks - i) for i in range(0, num_networks, MATRIX_CHUNK_NETWORKS)]
    seeds = torch.randint(0, 2 ** 62, (len(sizes),), generator=generator).tolist()
    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
        parts = pool.map(lambda job: _matrix_chunk(job[0], job[1], width, depth, sigma, activation, negative_slope,
                                                   device), zip(seeds, sizes))
        return torch.cat(list(tqdm(parts, total=len(sizes), desc="matrix-path chunks", disable=not progress,
                                   leave=False)))


def _rotational_chunk(seed: int, num_networks: int, width: int, depth: int, sigma: float, activation: str,
                      negative_slope: float, reduce: bool, device: str | torch.device) -> torch.Tensor:
    gen = torch.Generator(device=device).manual_seed(seed)
    g = torch.empty(num_networks, depth, width, device=device).normal_(generator=gen)
    if activation == "relu":
        g.clamp_min_(0)
    elif activation == "leaky_relu":
        g = torch.nn.functional.leaky_relu_(g, negative_slope)
    log_r = torch.linalg.vector_norm(g, dim=-1).log_().double().add_(math.log(sigma))
    return (log_r.sum(1) if reduce else log_r).cpu()


def _rotational(num_networks: int, width: int, depth: int, sigma: float, activation: str, negative_slope: float,
                generator: torch.Generator | None, reduce: bool, progress: bool,
                device: str | torch.device) -> torch.Tensor:
    check_args(width, None, activation, negative_slope)
    _check_sizes(num_networks=num_networks, depth=depth)
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    per_chunk = max(1, CHUNK_NORMALS // (depth * width))
    sizes = [min(per_chunk, num_networks - i) for i in range(0, num_networks, per_chunk)]
    seeds = torch.randint(0, 2 ** 62, (len(sizes),), generator=generator).tolist()
    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
        parts = pool.map(lambda job: _rotational_chunk(job[0], job[1], width, depth, sigma, activation,
                                                       negative_slope, reduce, device), zip(seeds, sizes))
        return torch.cat(list(tqdm(parts, total=len(sizes), desc="network chunks", disable=not progress,
                                   leave=False)))


def rotational_log_ratios(num_networks: int, width: int, depth: int, sigma: float, activation: str = "relu",
                          negative_slope: float = 0.0, generator: torch.Generator | None = None,
                          progress: bool = False, device: str | torch.device = "cpu") -> torch.Tensor:
    """The rotational sampler: log R_k = log ||phi(sigma g_k)||, g_k ~ N(0, I_width), for
    k = 1..depth, shape (num_networks, depth), float64 -- the same law as :func:`log_norm_ratios`;
    the normals are drawn on ``device``.

        >>> rotational_log_ratios(3, 64, 10, 0.18, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 10])
    """
    return _rotational(num_networks, width, depth, sigma, activation, negative_slope, generator, False, progress,
                       device)


def rotational_log_norms(num_networks: int, width: int, depth: int, sigma: float, activation: str = "relu",
                         negative_slope: float = 0.0, generator: torch.Generator | None = None,
                         progress: bool = False, device: str | torch.device = "cpu") -> torch.Tensor:
    """log||x_L|| - log||x_0|| at L = ``depth`` for each network, shape (num_networks,), float64,
    by the rotational sampler in memory-bounded chunks (10^5 networks of depth 1000 take
    6.4e9 normals at width 64 but never more than a chunk of memory), drawn on ``device``."""
    return _rotational(num_networks, width, depth, sigma, activation, negative_slope, generator, True, progress,
                       device)


def ks_z(x, y=None) -> float:
    """Kolmogorov-Smirnov test as a one-sided score ``Phi^-1(1 - p)``: N(0, 1) when the null
    holds (p uniform), large when it fails; one-sample against N(0, 1) when ``y`` is None, else
    two-sample ``x`` against ``y``. Families of such scores use ``two_stage(one_sided=True)``:
    a folded two-sided z would fail there about twice too often."""
    x = np.asarray(x, dtype=float)
    p = stats.kstest(x, "norm").pvalue if y is None else stats.ks_2samp(x, np.asarray(y, dtype=float)).pvalue
    return float(stats.norm.isf(max(p, 1e-300)))


def two_sided_score(z: float) -> float:
    """A two-sided z test as the one-sided score of its p-value, ``Phi^-1(2 (1 - Phi(|z|)))``,
    so that it pools with :func:`ks_z` scores in one one-sided family."""
    return float(stats.norm.isf(max(2 * stats.norm.sf(abs(z)), 1e-300)))


def moment_z(log_ratios: torch.Tensor, s: float) -> tuple[float, float, float]:
    """Mean of R^s over all (network, layer) samples, its standard error, and the z-score of
    ``mean - 1``. The R_k are i.i.d., so every layer of every network is one sample; moments
    are tested layer by layer because depth-wise moments have variance growing like
    (E R^(2s))^L."""
    r_s = (s * log_ratios.flatten()).exp()
    mean, se = r_s.mean().item(), (r_s.std() / r_s.numel() ** 0.5).item()
    return mean, se, (mean - 1) / se


def layer_moments(log_ratios: torch.Tensor, s: float) -> tuple[list[float], list[float]]:
    """Per layer k, the mean of R_k^s over the networks (rows of ``log_ratios``, shape
    (networks, depth)) and its standard error: the layer-by-layer view of :func:`moment_z`,
    whose pooled mean is the mean of these means. Under sigma_s every mean is 1 within a few
    standard errors, at every depth."""
    r_s = (s * log_ratios).exp()
    return r_s.mean(0).tolist(), (r_s.std(0) / r_s.shape[0] ** 0.5).tolist()


def standardized_lognorm(log_norms: torch.Tensor, depth: int, mu: float, rho2: float) -> torch.Tensor:
    """(log||x_L|| - log||x_0|| - L mu) / sqrt(L rho2) per network (dead networks dropped);
    ``log_norms`` holds log||x_L|| - log||x_0|| per network, L = ``depth``."""
    g = log_norms[torch.isfinite(log_norms)]
    return (g - depth * mu) / (depth * rho2) ** 0.5


def gaussianity_z(z: torch.Tensor) -> dict[str, float]:
    """Three one-sided scores of "``z`` is a sample of N(0, 1)", each N(0, 1) when it is and
    large when it is not: the mean (sqrt(M) mean), the variance ((var - 1) / se, se from the
    sample's fourth central moment, sqrt((m4 - var^2) / M), so the test stays calibrated when
    the tails are not yet Gaussian), both two-sided tests as :func:`two_sided_score`, and the
    KS shape test (:func:`ks_z`)."""
    z = np.asarray(z, dtype=float)
    m = len(z)
    var = z.var(ddof=1)
    m4 = float(((z - z.mean()) ** 4).mean())
    return {"mean": two_sided_score(z.mean() * math.sqrt(m)),
            "var": two_sided_score((var - 1) / math.sqrt(max(m4 - var ** 2, 0) / m)), "ks": ks_z(z)}


def moment_difference_z(log_ratios_a: torch.Tensor, log_ratios_b: torch.Tensor, s: float) -> dict[str, float]:
    """Two-sample z of E R^s between two independent samples of log R (e.g. the matrix path
    against the rotational sampler): (mean_a - mean_b) / sqrt(se_a^2 + se_b^2), every (network,
    layer) a sample, with each side's mean and standard error (see :func:`moment_z`)."""
    mean_a, se_a, _ = moment_z(log_ratios_a, s)
    mean_b, se_b, _ = moment_z(log_ratios_b, s)
    return {"mean_a": mean_a, "mean_b": mean_b, "se_a": se_a, "se_b": se_b,
            "z": (mean_a - mean_b) / math.sqrt(se_a ** 2 + se_b ** 2)}


def variance_difference_z(x, y) -> float:
    """Two-sample z of Var(x) - Var(y), each variance's standard error from its own sample's
    fourth central moment, sqrt((m4 - var^2) / n) (valid for non-Gaussian samples)."""
    def var_se(v):
        v = np.asarray(v, dtype=float)
        v = v[np.isfinite(v)]
        var = v.var(ddof=1)
        return var, math.sqrt(max(float(((v - v.mean()) ** 4).mean()) - var ** 2, 0.0) / len(v))

    (vx, sx), (vy, sy) = var_se(x), var_se(y)
    return float((vx - vy) / math.sqrt(sx ** 2 + sy ** 2))


def pooled_power(effect: float, n_a: float, n_b: float, critical_z: float) -> float:
    """Power of the pooled two-sample z test of :func:`initrepro.core.verdicts.two_stage` (two stages
    pooled, so ``n_a`` and ``n_b`` are the totals over both stages) to detect a difference of
    ``effect`` standard deviations of one sample: P(|Z + ncp| > critical_z) with
    ncp = effect / sqrt(1/n_a + 1/n_b)."""
    ncp = effect / math.sqrt(1 / n_a + 1 / n_b)
    return float(stats.norm.sf(critical_z - ncp) + stats.norm.cdf(-critical_z - ncp))


def samples_for_power(effect: float, critical_z: float, ratio: float = 1.0, power: float = 0.8) -> int:
    """The smallest total ``n_a`` (``n_b = ratio * n_a``) at which :func:`pooled_power` reaches
    ``power``.

        >>> samples_for_power(0.01, 1.959964, ratio=1e12) > 78000
        True
    """
    if not (effect > 0 and ratio > 0 and 0 < power < 1):
        raise ValueError(f"effect and ratio must be > 0 and power in (0, 1), got {effect}, {ratio}, {power}")
    ncp = critical_z + stats.norm.ppf(power)  # the far tail adds < 1e-6 at the critical values used here
    n = math.ceil((1 + 1 / ratio) * (ncp / effect) ** 2)
    while pooled_power(effect, n, ratio * n, critical_z) < power:
        n += 1
    return n
