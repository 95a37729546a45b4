"""Plain fully connected networks."""

from __future__ import annotations

import torch.nn as nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "linear": nn.Identity,
               "leaky_relu": lambda: nn.LeakyReLU(0.01)}


def mlp(in_features: int, width: int, depth: int, num_classes: int, activation: str = "relu") -> nn.Sequential:
    """Flatten, then ``depth`` linear layers (``depth - 1`` hidden layers of ``width`` units,
    each followed by ``activation``), the last one giving ``num_classes`` logits.

    The fractional-moment paper's MNIST net is ``mlp(784, 64, 20, 10)``.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    widths = [in_features] + [width] * (depth - 1) + [num_classes]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < depth - 1:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)
