"""Dynamical isometry: the singular values of a network's input-output Jacobian at one input.

A network is dynamically isometric at ``x`` when every singular value of ``d f(x) / d x`` is
1 (Pennington et al. 2017; Saxe et al. 2014). For small nets the full Jacobian fits in memory,
so we compute it exactly, in float64, so that "1 within 1e-6" is a statement about the
initialization and not about float32 round-off.

    >>> net = torch.nn.Linear(4, 4, bias=False); torch.nn.init.orthogonal_(net.weight)
    >>> jacobian_singular_values(net, torch.randn(4))
    tensor([1.0000, 1.0000, 1.0000, 1.0000], dtype=torch.float64)
"""

from __future__ import annotations

import copy

import torch
from torch.func import jacrev


def device_of(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s first parameter or buffer (the CPU for a model with neither)."""
    tensor = next(model.parameters(), None)
    tensor = next(model.buffers(), None) if tensor is None else tensor
    return torch.device("cpu") if tensor is None else tensor.device


def jacobian_singular_values(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Singular values (descending, float64) of the input-output Jacobian of ``model`` at ``x``.

    ``x`` is ONE input without a batch dimension (e.g. ``(C, H, W)`` or ``(D,)``); the model is
    called on ``x[None]``. The model is copied to float64 in eval mode (batch norm then uses its
    running statistics, so the Jacobian is that of a per-example map); ``model`` itself is left
    untouched. The Jacobian is flattened to ``(outputs, inputs)``. It is computed on the
    model's device (``x`` moves there) and returned on the CPU.
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise ValueError(f"x must be one input without a batch dimension (ndim >= 1), got {type(x).__name__}"
                         f" of shape {tuple(getattr(x, 'shape', ()))}")
    net = copy.deepcopy(model).double().eval().requires_grad_(False)
    point = x.detach().to(device_of(net), torch.float64)

    def single(inp: torch.Tensor) -> torch.Tensor:
        return net(inp[None])[0]

    with torch.no_grad():
        out_numel = single(point).numel()
    jac = jacrev(single)(point).reshape(out_numel, point.numel())
    return torch.linalg.svdvals(jac).cpu()
