"""Fractional moment-preserving initialization (Gurbuzbalaban & Hu, AISTATS 2021)."""

from __future__ import annotations

import torch

from initrepro.theory.fractional import sigma_s


def fractional_moment_normal_(tensor: torch.Tensor, s: float, activation: str = "relu",
                              negative_slope: float = 0.0, mode: str = "fan_in",
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill a 2-D weight with N(0, sigma_s^2), the scale that preserves the s-th moment of the
    pre-activation norm from layer to layer: E ||phi(W x)||^s = ||x||^s (Gurbuzbalaban & Hu 2021,
    Sec. 3; exact sigma_s from ``initrepro.theory.fractional.sigma_s``, not the paper's 1/d
    expansion). s = 2 is He (relu, leaky_relu) or LeCun (linear) normal init.

    ``mode`` picks the width d: "fan_in" as in the authors' code, "fan_out" for the exact
    norm-moment statement on non-square layers (equal for square ones).

        >>> w = torch.empty(64, 64)
        >>> fractional_moment_normal_(w, s=0.8, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([64, 64])
    """
    if tensor.dim() != 2:
        raise ValueError(f"tensor must be a 2-D weight (out, in), got shape {tuple(tensor.shape)}")
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    d = tensor.shape[1] if mode == "fan_in" else tensor.shape[0]
    std = sigma_s(int(d), s, activation, negative_slope)
    with torch.no_grad():
        return tensor.normal_(0.0, std, generator=generator)
