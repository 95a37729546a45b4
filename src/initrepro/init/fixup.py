"""Residual initializations that start every block at the identity: Fixup and SkipInit.

- Fixup: Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without
  Normalization", ICLR 2019, Sec. 3 ("Fixup" box) and reference code (hongyi-zhang/Fixup):
  classifier and the last layer of every branch set to 0, the other branch layers He-initialized
  (fan-out, as the reference code) and scaled by ``L^(-1/(2m-2))`` (L branches, m layers each;
  m = 2 here, so ``L^-1/2``); scalar multipliers 1 and scalar biases 0.
- SkipInit: De & Smith, "Batch Normalization Biases Residual Blocks Towards the Identity
  Function in Deep Networks", NeurIPS 2020 (SkipInit): He init everywhere and a trainable scalar
  at the end of every branch, initialized to 0.

    >>> net = resnet("conv", (1, 8, 8), 10, widths=16, blocks=8, init="fixup")
    >>> float(net.blocks[0].conv2.weight.abs().max())
    0.0
"""

from __future__ import annotations

import math

import torch

LAYERS_PER_BRANCH = 2  # m in Fixup's L^(-1/(2m-2)): our blocks have two weight layers


def _he_fan_out_(weight: torch.Tensor, scale: float, generator: torch.Generator | None) -> torch.Tensor:
    # std = sqrt(2 / (out_channels * k * k)), as in the Fixup reference code.
    fan_out = weight.shape[0] * math.prod(weight.shape[2:])
    return torch.nn.init.normal_(weight, 0.0, scale * math.sqrt(2.0 / fan_out), generator=generator)


def fixup_(model, generator: torch.Generator | None = None):
    """Fixup-initialize a ``ResNet`` in place (Zhang et al. 2019, Sec. 3) and return it.

    Example: ``fixup_(resnet(init="he"), generator=torch.Generator().manual_seed(0))``.
    """
    model.reset_parameters(generator)
    scale = len(model.blocks) ** (-1.0 / (2 * LAYERS_PER_BRANCH - 2))
    with torch.no_grad():
        for block in model.blocks:
            _he_fan_out_(block.conv1.weight, scale, generator)
            block.conv2.weight.zero_()
            if block.skip is not None:
                _he_fan_out_(block.skip.weight, 1.0, generator)
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
    return model


def skipinit_(model, generator: torch.Generator | None = None):
    """SkipInit (De & Smith 2020): He init and every branch multiplier at 0; in place.

    Example: ``skipinit_(resnet(init="he"))`` makes every block the identity (or its projection).
    """
    model.reset_parameters(generator)
    with torch.no_grad():
        for block in model.blocks:
            block.branch_scale.zero_()
    return model
