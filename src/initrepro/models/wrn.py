"""The pre-activation Wide-ResNet of Blumenfeld, Gilboa & Soudry (ICML 2020), as in their code.

Their ``model.py`` (a Fixup WRN fork) differs from Zagoruyko's WRN in ways that matter for
ConstNet, and this module keeps them:

- one 3x3 conv per block: ``bn -> relu -> conv -> dropout``, added to the shortcut;
  ``(depth - 4) / 3`` blocks per stage (so WRN-16 has 4 blocks per stage, 12 convs);
- the 1x1 projection shortcut (first block of a stage) reads ``bn(x)``, not ``x``;
- no BatchNorm after the last stage: ``relu -> global average pool -> linear``.
  (Their ``avg_pool2d(8)`` is the global average for 32x32 inputs; the global average
  also serves 8x8 and 28x28 inputs.)

Channels ``[16, 16k, 32k, 64k]``, strides 1, 2, 2. ``init`` picks the weights from ``INITS``:
``"constnet"`` (all features identical, logits 0) or ``"he"`` (their random "varnet" arm).

    >>> model = wrn(16, 10, num_classes=10, in_channels=3, init="constnet")
    >>> model(torch.randn(2, 3, 32, 32)).abs().max()
    tensor(0., grad_fn=...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from initrepro.init.constnet import channel_average_
from initrepro.measures.symmetry import distinct_rows


class PreActBlock(nn.Module):
    """``x + dropout(conv(relu(bn(x))))``; a 1x1 conv of ``bn(x)`` replaces ``x`` when the
    width changes (the authors' block)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float = 0.0):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.shortcut = (None if in_channels == out_channels
                         else nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False))
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.bn(x)
        out = F.dropout(self.conv(F.relu(normed)), self.dropout, self.training)
        return out + (x if self.shortcut is None else self.shortcut(normed))


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen_factor: int, num_classes: int, in_channels: int,
                 dropout: float = 0.0):
        super().__init__()
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        blocks_per_stage = (depth - 4) // 3
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        stages = []
        for stage, stride in enumerate((1, 2, 2)):
            for i in range(blocks_per_stage):
                in_width = widths[stage] if i == 0 else widths[stage + 1]
                stages.append(PreActBlock(in_width, widths[stage + 1], stride if i == 0 else 1, dropout))
        self.blocks = nn.Sequential(*stages)
        self.fc = nn.Linear(widths[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.blocks(self.stem(x)))
        return self.fc(out.mean(dim=(2, 3)))

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stem's output and every block's output, in order (for signal-propagation probes)."""
        outputs = [self.stem(x)]
        for block in self.blocks:
            outputs.append(block(outputs[-1]))
        return outputs


def _init_batchnorm_and_head(model: WideResNet) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    # Both arms of the authors start from a zero classifier, so the logits start at 0.
    nn.init.zeros_(model.fc.weight)
    nn.init.zeros_(model.fc.bias)


def init_constnet_(model: WideResNet, generator: torch.Generator | None = None) -> WideResNet:
    """ConstNet: stem and shortcuts average channels, residual convs 0 (``generator`` unused)."""
    channel_average_(model.stem.weight)
    for block in model.blocks:
        nn.init.zeros_(block.conv.weight)
        if block.shortcut is not None:
            channel_average_(block.shortcut.weight)
    _init_batchnorm_and_head(model)
    return model


def init_he_(model: WideResNet, generator: torch.Generator | None = None) -> WideResNet:
    """The authors' random arm: N(0, gain^2 / fan_out), gain sqrt(2) for the residual convs
    (they follow a ReLU) and 1 for the stem and shortcuts."""
    nn.init.kaiming_normal_(model.stem.weight, mode="fan_out", nonlinearity="linear", generator=generator)
    for block in model.blocks:
        nn.init.kaiming_normal_(block.conv.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        if block.shortcut is not None:
            nn.init.kaiming_normal_(block.shortcut.weight, mode="fan_out", nonlinearity="linear",
                                    generator=generator)
    _init_batchnorm_and_head(model)
    return model


@dataclass
class InitProbe:
    """Signal propagation of a WRN at init on one batch (train-mode BatchNorm)."""

    max_abs_logit: float
    layer_rms: list[float]  # RMS of the stem's and every block's output
    distinct_channels: list[int]  # bitwise-distinct channels of those outputs
    grad_norms: list[float]  # residual convs' weight-gradient norms after one SGD step


def probe_init(model: WideResNet, x: torch.Tensor, y: torch.Tensor, lr: float = 0.1) -> InitProbe:
    """Measure ``model`` at init on ``(x, y)``, then take one SGD step (which moves the zero
    classifier, so gradients reach the residual convs) and measure their gradient norms.
    Changes ``model``."""
    model.train()
    with torch.no_grad():
        logits = model(x)
        outputs = model.layer_outputs(x)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    return InitProbe(
        max_abs_logit=float(logits.abs().max()),
        layer_rms=[float(o.pow(2).mean().sqrt()) for o in outputs],
        distinct_channels=[distinct_rows(o, dim=1) for o in outputs],
        grad_norms=[float(b.conv.weight.grad.norm()) for b in model.blocks],
    )


INITS: dict[str, Callable[[WideResNet, torch.Generator | None], WideResNet]] = {
    "constnet": init_constnet_,
    "he": init_he_,
}


def wrn(depth: int, widen_factor: int, num_classes: int, in_channels: int, init: str = "constnet",
        dropout: float = 0.0, generator: torch.Generator | None = None) -> WideResNet:
    """WRN-``depth``-``widen_factor`` of the authors, initialized by ``INITS[init]``.

    ``depth`` must be 6n+4 (10, 16, 22, 28, ...); ``dropout`` acts on the residual branch
    (the authors' p = 0.01 symmetry breaker).

        >>> wrn(10, 2, num_classes=10, in_channels=1, init="he", generator=torch.Generator().manual_seed(0))
    """
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be of the form 6n+4 with n >= 1 (10, 16, 22, ...), got {depth}")
    if widen_factor < 1:
        raise ValueError(f"widen_factor must be >= 1, got {widen_factor}")
    if num_classes < 1 or in_channels < 1:
        raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes} and {in_channels}")
    if init not in INITS:
        raise ValueError(f"init must be one of {sorted(INITS)}, got {init!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    model = WideResNet(depth, widen_factor, num_classes, in_channels, dropout)
    return INITS[init](model, generator)
