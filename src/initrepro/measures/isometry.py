"""Dynamical isometry: the singular values of a network's input-output Jacobian at one input.

A network is dynamically isometric at ``x`` when every singular value of ``d f(x) / d x`` is
1 (Pennington et al. 2017; Saxe et al. 2014). For small nets the full Jacobian fits in memory,
so we compute it exactly, in float64, so that "1 within 1e-6" is a statement about the
initialization and not about float32 round-off.

:func:`jacobian_singular_values_batched` gives the same spectrum from one batched forward and
backward pass (deep nets, where ``jacrev`` is slow); :func:`log_spread` sums a spectrum up as the
sd of its log singular values (0 for an isometry times any gain).

    >>> net = torch.nn.Linear(4, 4, bias=False); torch.nn.init.orthogonal_(net.weight)
    >>> jacobian_singular_values(net, torch.randn(4))
    tensor([1.0000, 1.0000, 1.0000, 1.0000], dtype=torch.float64)
    >>> log_spread(jacobian_singular_values_batched(net, torch.randn(4)))  # ~0
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


def log_spread(singular_values, floor: float = 1e-300) -> float:
    """Spread of a spectrum on the log scale: the sd (ddof 0) of ``ln(max(s, floor))`` over
    the singular values ``s``. 0 for an exact isometry times any gain; an exact zero counts as
    ``floor``, so a collapsed direction makes the spread large, never NaN.

        >>> log_spread([0.5, 0.5, 0.5])
        0.0
    """
    s = torch.as_tensor(singular_values, dtype=torch.float64).flatten()
    if s.numel() == 0 or not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
        raise ValueError("singular_values must be a non-empty set of finite values >= 0")
    return float(torch.log(s.clamp(min=floor)).std(unbiased=False))


def jacobian_singular_values_batched(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The same exact float64 input-output Jacobian spectrum as
    :func:`jacobian_singular_values`, from one forward and one backward pass:
    the input is repeated once per output, and row ``i`` of the Jacobian is the gradient of
    output ``i`` of copy ``i``. On a 1000-layer net this costs a batch-of-10 step, where
    ``jacrev`` over 2000 modules took ~7.5 s of CPU per net (the stage builds 22 of them).
    The model must treat batch entries independently (no batch norm in training mode). Computed
    on the model's device (``x`` moves there), returned on the CPU."""
    net = copy.deepcopy(model).double().eval().requires_grad_(False)
    x = x.to(device_of(net))
    with torch.no_grad():
        n_out = net(x[None].double()).flatten(1).shape[1]
    point = x.detach().double()[None].repeat(n_out, *[1] * x.dim()).requires_grad_(True)
    out = net(point).flatten(1)
    (grad,) = torch.autograd.grad(out.diagonal().sum(), point)
    return torch.linalg.svdvals(grad.flatten(1)).cpu()
