"""Monte Carlo of the per-layer log-norm ratios of many random networks at once.

All ``num_networks`` networks advance together: one batched matmul per layer, the state
renormalized to unit norm after every layer (the maps are positively homogeneous, so this
changes no ratio) and log||x_k|| accumulated as a sum of logs, so nothing under- or
overflows at any depth.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from initrepro.theory.fractional import check_args

_PHI = {
    "relu": lambda z, a: torch.relu(z),
    "leaky_relu": lambda z, a: torch.nn.functional.leaky_relu(z, a),
    "linear": lambda z, a: z,
}


def log_norm_ratios(num_networks: int, width: int, depth: int, sigma: float, activation: str = "relu",
                    negative_slope: float = 0.0, generator: torch.Generator | None = None,
                    progress: bool = False) -> torch.Tensor:
    """log(||x_k|| / ||x_{k-1}||) for k = 1..depth, shape (num_networks, depth), float64.

    Each network has its own i.i.d. N(0, sigma^2) weights (width x width, no bias) and a random
    unit input; a network whose units all die gets -inf from then on.
    """
    check_args(width, None, activation, negative_slope)
    for name, value in (("num_networks", num_networks), ("depth", depth)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    phi = _PHI[activation]
    x = torch.randn(num_networks, width, 1, generator=generator)
    x = x / x.norm(dim=1, keepdim=True)
    out = torch.empty(num_networks, depth, dtype=torch.float64)
    for k in tqdm(range(depth), desc="layers", disable=not progress, leave=False):
        w = torch.randn(num_networks, width, width, generator=generator).mul_(sigma)
        x = phi(torch.bmm(w, x), negative_slope)
        norm = x.norm(dim=1, keepdim=True)
        out[:, k] = norm.view(-1).double().log()
        x = x / norm.clamp_min(torch.finfo(x.dtype).tiny)
    return out


def log_norm_ratios_looped(num_networks: int, width: int, depth: int, sigma: float, activation: str = "relu",
                           negative_slope: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """The same simulation one network at a time: the reference the batched version is timed against."""
    phi = _PHI[activation]
    out = torch.empty(num_networks, depth, dtype=torch.float64)
    for i in range(num_networks):
        x = torch.randn(width, generator=generator)
        x = x / x.norm()
        for k in range(depth):
            x = phi(torch.randn(width, width, generator=generator).mul_(sigma) @ x, negative_slope)
            norm = x.norm()
            out[i, k] = norm.double().log()
            x = x / norm.clamp_min(torch.finfo(x.dtype).tiny)
    return out


def moment_z(log_ratios: torch.Tensor, s: float) -> tuple[float, float, float]:
    """Mean of R^s over all (network, layer) samples, its standard error, and the z-score of
    ``mean - 1``. The R_k are i.i.d., so every layer of every network is one sample; moments
    are tested layer by layer because depth-wise moments have variance growing like
    (E R^(2s))^L."""
    r_s = (s * log_ratios.flatten()).exp()
    mean, se = r_s.mean().item(), (r_s.std() / r_s.numel() ** 0.5).item()
    return mean, se, (mean - 1) / se


def standardized_lognorm(log_ratios: torch.Tensor, mu: float, rho2: float) -> torch.Tensor:
    """(log||x_L|| - log||x_0|| - L mu) / sqrt(L rho2) per network (dead networks dropped)."""
    g = log_ratios.sum(dim=1)
    g = g[torch.isfinite(g)]
    depth = log_ratios.shape[1]
    return (g - depth * mu) / (depth * rho2) ** 0.5
