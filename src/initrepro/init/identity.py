"""Identity initialization: every square layer starts as ``gain`` times the identity map."""

from __future__ import annotations

import math

import torch


@torch.no_grad()
def identity_(tensor: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Fill ``tensor`` in place with ``gain`` times the identity map, and return it.

    Kubota, Hayashi, Hayase & Uchida, "Layer-wise Interpretation of Deep Neural Networks Using
    Identity Initialization", ICASSP 2021 (arXiv 2102.13333): every layer of a deep MLP of
    constant width starts at ``W_l = sigma I`` (``sigma = gain``). With zero biases the
    input-output Jacobian is then the diagonal ``J = prod_l sigma D_l``, ``D_l = diag(phi'(h_l))``,
    so the spectrum of ``J J^T`` is ``sigma^(2L) prod_l phi'(h_l,i)^2`` per coordinate: a two-point
    law for ReLU and hard-tanh (:mod:`initrepro.theory.identity`).

    - linear weight ``(n, n)``: ``gain * I``;
    - convolution weight ``(c, c, k_1, ..., k_d)`` with odd kernel sizes: ``gain`` at the centre
      tap of each channel's own filter, zero elsewhere (the identity map on feature maps under
      "same" padding).

    Deterministic: there is no ``generator``.

        >>> identity_(torch.empty(2, 2), gain=0.5)
        tensor([[0.5000, 0.0000],
                [0.0000, 0.5000]])
    """
    if not isinstance(tensor, torch.Tensor) or tensor.ndim < 2:
        raise ValueError(f"tensor must have at least 2 dimensions (out, in, *kernel), got shape "
                         f"{tuple(getattr(tensor, 'shape', ()))}")
    if tensor.shape[0] != tensor.shape[1]:
        raise ValueError(f"tensor must be square (out == in) for an identity map, got shape {tuple(tensor.shape)}")
    kernel = tensor.shape[2:]
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"tensor kernel sizes must be odd (a centre tap exists), got {tuple(kernel)}")
    if not math.isfinite(gain):
        raise ValueError(f"gain must be a finite number, got {gain}")
    tensor.zero_()
    channels = torch.arange(tensor.shape[0], device=tensor.device)
    tensor[(channels, channels, *(k // 2 for k in kernel))] = gain
    return tensor
