"""ZerO: deterministic initialization from zeros, ones and Hadamard matrices (Zhao et al. 2022).

J. Zhao, F. Schafer, A. Anandkumar, "ZerO Initialization: Initializing Neural Networks with
only Zeros and Ones", TMLR 2022, arXiv 2110.12661, Algorithms 1 (linear) and 2 (conv).

For ``W`` of shape ``(P, Q)`` (``P`` outputs = rows, ``Q`` inputs): the identity when
``P = Q``, the partial identity ``[I_P 0]`` when ``P < Q``, and a cropped Sylvester Hadamard
matrix ``c H_m[:P, :Q]`` with ``m = ceil(log2 P)`` when ``P > Q`` (expanding). Padding with
zeros instead (``[I_Q; 0]``) would leave ``P - Q`` dead rows that never receive a gradient
through a ReLU: the paper's "training degeneracy" (Theorem 1), which the Hadamard breaks.
No random numbers are drawn: the result is the same under any seed.

    >>> zero_hadamard_(torch.empty(4, 2))
    tensor([[ 0.5000,  0.5000],
            [ 0.5000, -0.5000],
            [ 0.5000,  0.5000],
            [ 0.5000, -0.5000]])
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def hadamard(rows: int, cols: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The top-left ``rows x cols`` block of a Sylvester Hadamard matrix (entries +-1).

    Entry ``(i, j)`` is ``(-1)^popcount(i AND j)``, which is ``H_m = [[H, H], [H, -H]]`` of any
    size ``2^m >= max(rows, cols)``, so no power-of-two matrix is built before cropping.

    >>> hadamard(2, 3)
    tensor([[ 1.,  1.,  1.],
            [ 1., -1.,  1.]], dtype=torch.float64)
    """
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1, got {rows} and {cols}")
    both = torch.arange(rows)[:, None] & torch.arange(cols)[None, :]
    parity = torch.zeros_like(both)
    for bit in range(max(rows, cols).bit_length()):
        parity ^= (both >> bit) & 1
    return (1 - 2 * parity).to(dtype)


def zero_matrix(rows: int, cols: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """ZerO's ``rows x cols`` matrix (Algorithm 1): ``I``, ``[I 0]`` or ``c H_m[:rows, :cols]``.

    Normalization: ``c = 2^(-m/2)`` with ``m = ceil(log2 rows)``, the value of the authors'
    notebook and 2021 code, NOT the ``2^(-(m-1)/2)`` that Algorithm 1 prints (a factor
    sqrt(2) larger). With ``2^(-m/2)``, ``c H_m`` is orthogonal, so an expanding layer whose
    output width is a power of two is an exact isometry (all singular values 1), as square
    (``I``) and shrinking (``[I 0]``, ``W W^T = I``) layers are; the printed constant would
    amplify the signal by sqrt(2) at every expanding layer. Otherwise all singular values are
    at most 1 and the rank is ``cols``.

    >>> zero_matrix(2, 3)
    tensor([[1., 0., 0.],
            [0., 1., 0.]], dtype=torch.float64)
    """
    if rows <= cols:
        return torch.eye(rows, cols, dtype=dtype)
    m = math.ceil(math.log2(rows))
    return hadamard(rows, cols, dtype) * 2.0 ** (-m / 2)


@torch.no_grad()
def zero_hadamard_(tensor: torch.Tensor) -> torch.Tensor:
    """Fill a linear weight ``(out, in)`` or conv weight ``(out, in, *kernel)`` with ZerO's
    deterministic matrix (Zhao et al. 2022, Algorithms 1 and 2) and return it.

    Linear: ``zero_matrix(out, in)`` (identity, ``[I 0]``, or the cropped Hadamard
    ``2^(-m/2) H_m[:out, :in]``, ``m = ceil(log2 out)``; see :func:`zero_matrix` for the
    choice of ``2^(-m/2)`` over the printed ``2^(-(m-1)/2)``). Conv (odd kernel sizes): every
    tap zero except the centre, which holds that matrix (Algorithm 2). No random numbers.

    >>> zero_hadamard_(torch.empty(3, 2, 3, 3))[:, :, 1, 1]
    tensor([[ 0.5000,  0.5000],
            [ 0.5000, -0.5000],
            [ 0.5000,  0.5000]])
    """
    if tensor.dim() < 2:
        raise ValueError(f"tensor must have at least 2 dimensions (out, in, *kernel), got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ValueError(f"tensor must be non-empty, got shape {tuple(tensor.shape)}")
    kernel = tensor.shape[2:]
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"tensor kernel sizes must be odd (a centre tap), got {tuple(kernel)}")
    tensor.zero_()
    tensor[(slice(None), slice(None)) + tuple(k // 2 for k in kernel)] = zero_matrix(*tensor.shape[:2])
    return tensor


@torch.no_grad()
def zero_resnet_(model, generator: torch.Generator | None = None):
    """ZerO-initialize an ``initrepro.models.resnet.ResNet`` in place and return it.

    The TMLR recipe as our digest reads it: every conv by Algorithm 2 and every linear layer
    by Algorithm 1 (:func:`zero_hadamard_`: the stem, each branch's first conv and each
    projection skip), the LAST conv of every residual branch zero, so every block starts as its
    skip. The classifier is Algorithm 1 too (``[I_classes 0]`` when it shrinks), with zero
    bias: it differs by class, which breaks the symmetry between channels that start equal
    (a one-channel input gives every stem channel the same map, Hadamard column 0 being all
    ones); a zero classifier (the deleted 2021 code) would keep such channels equal under
    gradient descent. Batch norms gamma 1, beta 0; scalar biases 0; branch and skip
    multipliers 1. Deterministic: ``generator`` is accepted for the registry's signature and
    never used.

        >>> net = resnet("conv", (1, 8, 8), 10, widths=(16,), blocks=2, init="zero")
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            zero_hadamard_(module.weight)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            module.reset_parameters()
    for block in model.blocks:
        block.conv2.weight.zero_()
        block.branch_scale.fill_(1.0)
        block.skip_scale.fill_(1.0)
    for bias in model.scalar_biases():
        bias.zero_()
    return model
