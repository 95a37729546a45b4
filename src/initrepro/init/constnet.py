"""ConstNet: the (almost) all-zero initialization whose features are all identical.

Blumenfeld, Gilboa & Soudry, "Beyond Signal Propagation: Is Feature Diversity Necessary in
Deep Neural Network Initialization?", ICML 2020 (arXiv 2007.01038), Sec. 3 and the authors'
code (``ConstAvg`` in ``model.py``): the stem conv and the 1x1 projection shortcuts average
their input channels, the residual-branch convs and the classifier are zero, BatchNorm has
gamma 1 and beta 0. At initialization every channel of every layer is then the same map of
the input, and the logits are exactly 0.

    >>> w = torch.empty(16, 3, 3, 3)
    >>> channel_average_(w)[:, :, 1, 1].unique()
    tensor([0.3333])
"""

from __future__ import annotations

import torch


def channel_average_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill a conv weight (out, in, kh, kw) so that every output channel is the mean of the
    input channels at the same pixel: all zeros except the centre tap, ``1 / in``.

    The authors' ``ConstAvg`` with ``const = 1``: used for the stem conv (3x3, centre tap
    ``1/in_channels``) and the 1x1 projection shortcuts (every weight ``1/in_channels``).
    Deterministic, so it takes no generator.

        >>> channel_average_(torch.empty(8, 4, 1, 1)).unique()
        tensor([0.2500])
    """
    if tensor.dim() != 4:
        raise ValueError(f"tensor must be a 4-d conv weight (out, in, kh, kw), got shape {tuple(tensor.shape)}")
    _, fan_in, kh, kw = tensor.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"tensor kernel size must be odd (it needs a centre tap), got {kh}x{kw}")
    with torch.no_grad():
        tensor.zero_()
        tensor[:, :, kh // 2, kw // 2] = 1.0 / fan_in
    return tensor
