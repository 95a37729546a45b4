"""The ReLU of the ZerO authors' ResNet code: the gradient passes where the input is exactly 0.

Zhao et al. 2022 (ZerO), every ResNet file of the authors' 2021 repository: an autograd
Function whose forward is ``clamp(min=0)`` and whose backward copies the incoming gradient
and zeroes it only where the input is below 0. PyTorch's ReLU has gradient 0 at 0, so a
channel that starts exactly at zero (as ZerO's partial identities make many) never trains.

    >>> x = torch.zeros(3, requires_grad=True)
    >>> relu_grad_at_zero(x).sum().backward()
    >>> x.grad
    tensor([1., 1., 1.])
"""

from __future__ import annotations

import torch
from torch import nn


def relu_grad_at_zero(x: torch.Tensor) -> torch.Tensor:
    """``max(x, 0)`` with derivative 1 at ``x = 0`` (0 only for ``x < 0``).

    Written as a ``where`` on ``x >= 0`` rather than an autograd Function, so that it composes
    with ``torch.func`` (the vmapped ensembles): the derivative of the selected branch ``x`` is 1.
    """
    return torch.where(x >= 0, x, torch.zeros((), dtype=x.dtype, device=x.device))


class ReLUGradAtZero(nn.Module):
    """Module form of :func:`relu_grad_at_zero`, a drop-in for ``nn.ReLU``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return relu_grad_at_zero(x)
