"""Parameter sharing for plain ReLU MLPs: the whole net computes a linear map at initialization.

Burkholz & Dubatovka, "Initialization of ReLUs for Dynamical Isometry", NeurIPS 2019 (Sec. 3,
initial parameter sharing; the "looks linear" structure of Balduzzi et al. 2017). With hidden
width ``2n``, the first layer is ``[U_1; -U_1]``, every hidden layer ``[[U, -U], [-U, U]]`` and
the last ``[U_L, -U_L]``, biases 0 (layouts of :func:`initrepro.init.looks_linear.looks_linear_`).
Since ``relu(z) - relu(-z) = z`` the net equals ``x -> U_L ... U_1 x`` and its input-output
Jacobian is that product, so no ReLU masks cut its rank. The shared block decides the spectrum:

- ``"gaussian"``: ``U_ij ~ N(0, 1 / fan_in(U))`` (He's ``2 / fan_in`` of the full ``2n``-wide
  layer): full rank, but the product's singular values still spread with depth;
- ``"orthogonal"``: (semi-)orthogonal ``U``: every singular value of a square net is 1, and
  norms and angles are kept exactly (perfect dynamical isometry).

    >>> net = mlp(4, 8, 5, 4)                      # hidden width 8 = 2 x 4
    >>> parameter_sharing_(net, "orthogonal", generator=torch.Generator().manual_seed(0))
    >>> jacobian_singular_values(net, torch.randn(4))   # tensor([1., 1., 1., 1.]) up to 1e-15
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from initrepro.init.dense import reinit_linear_
from initrepro.init.looks_linear import LAYOUTS, looks_linear_

Block = Callable[[tuple[int, int], torch.Generator | None], torch.Tensor]

#: the shared block ``U`` (out, in) of each scheme, drawn in float64
SHARED_BLOCKS: dict[str, Block] = {
    "gaussian": lambda shape, generator: torch.randn(shape, dtype=torch.float64, generator=generator)
    / math.sqrt(shape[1]),
    "orthogonal": lambda shape, generator: nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64),
                                                               generator=generator),
}


def _linears(model: nn.Module) -> list[nn.Linear]:
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(layers) < 2:
        raise ValueError(f"model must have at least 2 nn.Linear layers (stem and head), got {len(layers)}")
    return layers


def _layouts(n_layers: int) -> list[str]:
    return ["stem"] + ["block"] * (n_layers - 2) + ["head"]


def parameter_sharing_(model: nn.Module, block: str = "gaussian",
                       generator: torch.Generator | None = None) -> nn.Module:
    """Give the ``nn.Linear`` layers of a plain ReLU MLP (e.g. :func:`initrepro.models.mlp`,
    even hidden width) the mirrored shared-block structure, in place; biases 0. Returns ``model``.

    ``block`` is ``"gaussian"`` or ``"orthogonal"`` (see the module docstring); each layer gets
    its own ``U`` drawn with ``generator``.
    """
    if block not in SHARED_BLOCKS:
        raise ValueError(f"block must be one of {sorted(SHARED_BLOCKS)}, got {block!r}")
    layers = _linears(model)
    for layer, layout in zip(layers, _layouts(len(layers))):
        rows, cols = LAYOUTS[layout].shape
        out, inp = layer.weight.shape
        if out % rows or inp % cols:
            raise ValueError(f"model's hidden width must be even for parameter sharing, got a layer of shape "
                             f"{(out, inp)}")
        looks_linear_(layer.weight, SHARED_BLOCKS[block]((out // rows, inp // cols), generator), layout)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return model


def shared_blocks(model: nn.Module) -> list[torch.Tensor]:
    """The blocks ``U_1, ..., U_L`` of a model initialized by :func:`parameter_sharing_` (the
    top-left block of each weight); at initialization the model is ``U_L @ ... @ U_1``."""
    layers = _linears(model)
    blocks = []
    for layer, layout in zip(layers, _layouts(len(layers))):
        rows, cols = LAYOUTS[layout].shape
        out, inp = layer.weight.shape
        blocks.append(layer.weight.detach()[: out // rows, : inp // cols])
    return blocks


def he_relu_mlp_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """He (Kaiming) normal weights ``N(0, 2 / fan_in)`` and zero biases: the Gaussian baseline
    whose signal law :mod:`initrepro.theory.relu_signal` describes (``sw2 = 2, sb2 = 0``)."""
    reinit_linear_(model, "kaiming", generator=generator)
    for layer in _linears(model):
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return model


#: initializations of a plain ReLU MLP by name: He, and parameter sharing with each shared block
RELU_MLP_SCHEMES: dict[str, Callable[..., nn.Module]] = {
    "he": he_relu_mlp_,
    "ll_gaussian": lambda model, generator=None: parameter_sharing_(model, "gaussian", generator),
    "ll_orthogonal": lambda model, generator=None: parameter_sharing_(model, "orthogonal", generator),
}


def init_relu_mlp_(model: nn.Module, scheme: str, generator: torch.Generator | None = None) -> nn.Module:
    """Initialize a plain ReLU MLP in place with ``scheme`` (a key of :data:`RELU_MLP_SCHEMES`)."""
    if scheme not in RELU_MLP_SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(RELU_MLP_SCHEMES)}, got {scheme!r}")
    return RELU_MLP_SCHEMES[scheme](model, generator=generator)
