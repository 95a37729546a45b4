"""The deep tanh networks of Nowak et al. 2024 (arXiv 2406.01755, Sec. 5.3): no residual
connections and no normalization, so only the initialization keeps the signal alive.

- ``DeepTanhMLP``: Linear(in, width) + tanh, ``depth - 2`` x [Linear(width, width) + tanh],
  Linear(width, classes); ``depth`` counts the linear layers (1000 in the paper, width 128).
- ``DeepTanhCNN``: 3x3 convs with circular padding and tanh: Conv(in -> c), two stride-2
  Conv(c -> c), ``depth - 4`` x Conv(c -> c), then AvgPool(2) and Linear; ``depth`` counts the
  weight layers (the paper's CIFAR-10 net: c = 128, AvgPool to 4x4, Linear(2048, 10)).

    >>> net = DeepTanhMLP(784, 10, depth=1000, width=128)
    >>> net.weight_layers()[0]
    Linear(in_features=784, out_features=128, bias=True)
"""

from __future__ import annotations

from torch import nn


class _StemBodyHead(nn.Module):
    """``stem -> body -> head``; ``body`` is the deep stack of equal layers (whose Jacobian
    the isometry checks look at)."""

    def __init__(self, stem: nn.Module, body: nn.Module, head: nn.Module):
        super().__init__()
        self.stem, self.body, self.head = stem, body, head

    def forward(self, x):
        return self.head(self.body(self.stem(x)))

    def weight_layers(self) -> list[nn.Module]:
        """The linear and conv layers, input to output (what sparse initializers fill)."""
        return [m for m in self.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _with_tanh(layers) -> list[nn.Module]:
    return [block for layer in layers for block in (layer, nn.Tanh())]


class DeepTanhMLP(_StemBodyHead):
    def __init__(self, in_features: int, num_classes: int, depth: int = 1000, width: int = 128):
        if depth < 2:
            raise ValueError(f"depth must be >= 2 (input and output layers), got {depth}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        super().__init__(nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.Tanh()),
                         nn.Sequential(*_with_tanh(nn.Linear(width, width) for _ in range(depth - 2))),
                         nn.Linear(width, num_classes))


def _conv(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, padding_mode="circular")


class DeepTanhCNN(_StemBodyHead):
    def __init__(self, input_shape: tuple[int, int, int], num_classes: int, depth: int = 1000,
                 channels: int = 128):
        if depth < 4:
            raise ValueError(f"depth must be >= 4 (three strided/input convs and the head), got {depth}")
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        in_ch, height, width = input_shape
        if height % 8 or width % 8:
            raise ValueError(f"input_shape's height and width must be multiples of 8 "
                             f"(two stride-2 convs and AvgPool(2)), got {height} x {width}")
        stem = [_conv(in_ch, channels), _conv(channels, channels, 2), _conv(channels, channels, 2)]
        features = channels * (height // 8) * (width // 8)
        super().__init__(nn.Sequential(*_with_tanh(stem)),
                         nn.Sequential(*_with_tanh(_conv(channels, channels) for _ in range(depth - 4))),
                         nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Linear(features, num_classes)))
