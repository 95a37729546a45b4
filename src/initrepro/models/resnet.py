"""One ReLU ResNet family (fully connected or convolutional, with or without batch norm) that
every residual initialization scheme initializes, so that comparisons differ in the
initialization alone.

A post-activation block (He et al. 2016) with the scalar parameters of Fixup (Zhang et al.
2019, Fig. 1 and reference code) and the branch/skip weights alpha, beta of RISOTTO (Gadhikar &
Burkholz 2022):

    out = relu(branch_scale * W2 (relu(W1 (x + b1a) + b1b) + b2a) + b2b  +  skip_scale * h(x + b1a))

where ``h`` is the identity (block type C) or a 1x1 projection (type B). ``branch_scale`` is
Fixup's multiplier, SkipInit's zero-initialized scalar and RISOTTO's alpha (trainable);
``skip_scale`` is RISOTTO's beta (a fixed buffer, 1 unless RISOTTO sets it). With
``batch_norm`` a norm layer follows W1, W2 and the projection.

    >>> net = resnet("conv", (1, 8, 8), 10, widths=(16,), blocks=4, init="risotto", seed=0)
    >>> net(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from initrepro.init.fixup import fixup_, skipinit_
from initrepro.init.idinit import idinit_resnet_
from initrepro.init.risotto import risotto_
from initrepro.init.zero import zero_resnet_

BLOCK_TYPES = ("B", "C")


def _conv(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Module:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)


def _linear(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Module:
    # Fully connected nets have no spatial stride or kernel; the arguments keep one signature.
    return nn.Linear(cin, cout, bias=False)


# kind -> (weight layer, norm layer)
KINDS: dict[str, tuple[Callable[..., nn.Module], type[nn.Module]]] = {
    "conv": (_conv, nn.BatchNorm2d),
    "fc": (_linear, nn.BatchNorm1d),
}


def _scalar(value: float) -> nn.Parameter:
    return nn.Parameter(torch.full((1,), float(value)))


class ResidualBlock(nn.Module):
    """Two weight layers on the branch; identity skip (type C) where shapes allow, else a 1x1
    projection (type B, and wherever width or stride change)."""

    def __init__(self, kind: str, cin: int, cout: int, stride: int, block_type: str, batch_norm: bool,
                 activation: Callable[[torch.Tensor], torch.Tensor] = F.relu):
        super().__init__()
        layer, norm = KINDS[kind]
        self.activation = activation
        self.conv1, self.conv2 = layer(cin, cout, stride), layer(cout, cout)
        self.norm1 = norm(cout) if batch_norm else nn.Identity()
        self.norm2 = norm(cout) if batch_norm else nn.Identity()
        projected = block_type == "B" or cin != cout or stride != 1
        self.skip = layer(cin, cout, stride, kernel=1) if projected else None
        self.skip_norm = norm(cout) if batch_norm and projected else nn.Identity()
        self.bias1a, self.bias1b, self.bias2a, self.bias2b = (_scalar(0.0) for _ in range(4))
        self.branch_scale = _scalar(1.0)
        self.register_buffer("skip_scale", torch.ones(1))

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The residual branch and the skip output, before they are summed."""
        inp = x + self.bias1a
        out = self.activation(self.norm1(self.conv1(inp)) + self.bias1b)
        branch = self.branch_scale * self.norm2(self.conv2(out + self.bias2a)) + self.bias2b
        skip = inp if self.skip is None else self.skip_norm(self.skip(inp))
        return branch, self.skip_scale * skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch, skip = self.parts(x)
        return self.activation(branch + skip)


class ResNet(nn.Module):
    """Stem (weight layer + ReLU), residual stages, head (global average pool for conv, then a
    linear classifier). ``pool=False`` (conv only) replaces the head by a 1x1 conv that keeps
    the spatial map, so the input-output Jacobian can be square (isometry experiments)."""

    def __init__(self, kind: str, in_shape: tuple[int, ...], num_classes: int, widths: tuple[int, ...],
                 blocks: tuple[int, ...], block_type: str, batch_norm: bool, pool: bool,
                 activation: Callable[[torch.Tensor], torch.Tensor] = F.relu):
        super().__init__()
        layer, norm = KINDS[kind]
        self.kind, self.pool, self.block_type = kind, pool, block_type
        self.activation = activation
        cin = in_shape[0] if kind == "conv" else math.prod(in_shape)
        self.stem = layer(cin, widths[0])
        self.stem_norm = norm(widths[0]) if batch_norm else nn.Identity()
        self.stem_bias, self.head_bias = _scalar(0.0), _scalar(0.0)
        self.blocks = nn.ModuleList()
        cin = widths[0]
        for stage, (width, count) in enumerate(zip(widths, blocks)):
            for i in range(count):
                # The first block of every later stage halves the map (conv), as in ResNet-18.
                stride = 2 if kind == "conv" and stage > 0 and i == 0 else 1
                self.blocks.append(ResidualBlock(kind, cin, width, stride, block_type, batch_norm, activation))
                cin = width
        self.classifier = (nn.Conv2d(cin, num_classes, 1) if kind == "conv" and not pool
                           else nn.Linear(cin, num_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> the stream that enters the first block."""
        if self.kind == "fc":
            x = x.flatten(1)
        return self.activation(self.stem_norm(self.stem(x)) + self.stem_bias)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        if self.kind == "conv" and self.pool:
            h = h.mean(dim=(2, 3))
        return self.classifier(h + self.head_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h)

    def reset_parameters(self, generator: torch.Generator | None = None) -> "ResNet":
        """He initialization (He et al. 2015, eq. 10: N(0, 2/fan_in)) of every weight layer, a
        1/fan_in variance classifier with zero bias, unit multipliers, zero scalar biases."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                gain = "linear" if module is self.classifier else "relu"
                nn.init.kaiming_normal_(module.weight, nonlinearity=gain, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.reset_parameters()
        for block in self.blocks:
            nn.init.ones_(block.branch_scale)
            block.skip_scale.fill_(1.0)
        for bias in self.scalar_biases():
            nn.init.zeros_(bias)
        return self

    def scalar_biases(self) -> list[nn.Parameter]:
        """Fixup's scalar biases (before every weight layer and activation)."""
        return [self.stem_bias, self.head_bias] + [b for block in self.blocks
                                                   for b in (block.bias1a, block.bias1b, block.bias2a, block.bias2b)]


def he_(model: ResNet, generator: torch.Generator | None = None) -> ResNet:
    """The plain He-initialized ResNet (the baseline; with batch norm, the BN-ResNet)."""
    return model.reset_parameters(generator)


INITIALIZERS: dict[str, Callable[..., ResNet]] = {
    "he": he_,
    "risotto": risotto_,
    "fixup": fixup_,
    "skipinit": skipinit_,
    "zero": zero_resnet_,
    "idinit": idinit_resnet_,
}


def resnet(kind: str = "conv", in_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10,
           widths: tuple[int, ...] | int = (64, 128, 256, 512), blocks: tuple[int, ...] | int = 2,
           block_type: str = "B", batch_norm: bool = False, pool: bool = True, init: str = "he",
           init_options: dict | None = None, seed: int = 0, dtype: torch.dtype = torch.float32,
           activation: Callable[[torch.Tensor], torch.Tensor] = F.relu) -> ResNet:
    """Build a ReLU ResNet and initialize it with scheme ``init`` (one of ``INITIALIZERS``).

    ``widths`` are the stream widths per stage, ``blocks`` the blocks per stage (an int repeats
    for every stage). The default is a CIFAR ResNet-18 (4 stages of 2 basic blocks). Build in
    ``dtype=torch.float64`` when exactness matters: the weights are then written in float64.
    ``init_options`` go to the initializer (e.g. ``{"alpha": 1.0, "beta": 1.0}`` for RISOTTO).
    ``activation`` replaces every ReLU (stem, branches, block outputs), e.g.
    ``initrepro.layers.relu_grad_at_zero``, the ZerO authors' ReLU whose gradient passes at 0.

    >>> resnet("fc", (16,), 16, widths=32, blocks=16, init="risotto", dtype=torch.float64)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    if block_type not in BLOCK_TYPES:
        raise ValueError(f"block_type must be one of {BLOCK_TYPES}, got {block_type!r}")
    if init not in INITIALIZERS:
        raise ValueError(f"init must be one of {sorted(INITIALIZERS)}, got {init!r}")
    widths = (widths,) if isinstance(widths, int) else tuple(widths)
    blocks = (blocks,) * len(widths) if isinstance(blocks, int) else tuple(blocks)
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be positive integers, got {widths}")
    if len(blocks) != len(widths) or min(blocks) < 1:
        raise ValueError(f"blocks must be >= 1 per stage, one entry per width ({len(widths)}), got {blocks}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if not pool and kind != "conv":
        raise ValueError("pool=False applies to kind='conv' only (fully connected nets have no map to pool)")
    model = ResNet(kind, tuple(in_shape), num_classes, widths, blocks, block_type, batch_norm, pool,
                   activation).to(dtype)
    return INITIALIZERS[init](model, generator=torch.Generator().manual_seed(seed), **(init_options or {}))


@torch.no_grad()
def branch_skip_ratios(model: ResNet, x: torch.Tensor) -> torch.Tensor:
    """``||residual branch|| / ||skip||`` of every block on the batch ``x`` (eval mode).

    RISOTTO's "balance" (Gadhikar & Burkholz 2022, abstract): of order one, whereas Fixup and
    SkipInit start at exactly 0 (every block the identity).
    """
    was_training = model.training
    model.eval()
    h, ratios = model.embed(x), []
    for block in model.blocks:
        branch, skip = block.parts(h)
        ratios.append(branch.norm() / skip.norm())
        h = block.activation(branch + skip)
    model.train(was_training)
    return torch.stack(ratios)
