"""Training degeneracy of a partial-identity initialization (Zhao et al. 2022, Theorem 1).

A ReLU MLP without biases whose widening layer ``Q -> P`` (``P > Q``) starts as the padded
identity ``[I_Q; 0]`` has ``P - Q`` hidden units with pre-activation exactly 0 on every
input. Since ReLU'(0) = 0 in PyTorch, those rows of the widening layer and the matching
columns of the next layer never get a gradient, so the update ``W - W_init`` of the next
(square) layer keeps rank at most ``Q`` forever. ZerO's cropped Hadamard matrix
(:func:`initrepro.init.zero.zero_hadamard_`) gives every hidden unit a non-zero input and
lifts that bound. The authors' notebook (``example_mnist.ipynb``) tracks ``rank(W3 - I)``.

    >>> net = init_widening_mlp_(widening_mlp((64, 64, 128, 128, 10)), "partial_identity")
    >>> w0 = net[5].weight.detach().clone()  # the 128 x 128 layer after the widening 64 -> 128
    >>> update_ranks(net[5].weight[None], w0[None])  # after training: <= 64
    [0]
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn

from initrepro.init.zero import zero_hadamard_


def widening_mlp(widths: Sequence[int]) -> nn.Sequential:
    """Flatten, then bias-free linear layers ``widths[i] -> widths[i+1]`` with ReLU between
    (the notebook's 784-784-n_h-n_h-10 net is ``widening_mlp((784, 784, n_h, n_h, 10))``)."""
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths must hold >= 2 positive sizes, got {tuple(widths)}")
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out, bias=False))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@torch.no_grad()
def _partial_identity_(weight: torch.Tensor) -> torch.Tensor:
    # The rectangular identity: [I 0] when shrinking, the zero-padded [I; 0] when widening.
    return weight.copy_(torch.eye(*weight.shape, dtype=weight.dtype))


def _kaiming_(weight: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)


#: scheme -> fills one weight matrix (the notebook's three arms)
SCHEMES: dict[str, Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]] = {
    "partial_identity": lambda w, g: _partial_identity_(w),
    "zero": lambda w, g: zero_hadamard_(w),
    "kaiming": _kaiming_,
}


def linear_layers(net: nn.Module) -> list[nn.Linear]:
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def init_widening_mlp_(net: nn.Module, scheme: str, generator: torch.Generator | None = None) -> nn.Module:
    """Initialize every linear layer of ``net`` by ``scheme`` (one of ``SCHEMES``) in place."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
    for layer in linear_layers(net):
        SCHEMES[scheme](layer.weight, generator)
    return net


def update_ranks(weights: torch.Tensor, initial: torch.Tensor, tol: float = 1e-4) -> list[int]:
    """``rank(W - W_init)`` of each matrix in a stack ``(members, P, Q)``, singular values
    above the absolute tolerance ``tol`` (the notebook's ``matrix_rank(..., tol=1e-4)``)."""
    if tol <= 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    delta = (weights - initial).detach().double()
    return torch.linalg.matrix_rank(delta, atol=tol, rtol=0.0).tolist()
