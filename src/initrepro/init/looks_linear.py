"""Looks-linear (mirrored) weights: a ReLU layer that computes a linear map at initialization.

Burkholz & Dubatovka, "Initialization of ReLUs for Dynamical Isometry", NeurIPS 2019 (Sec. 3,
parameter sharing); Balduzzi et al. 2017 ("looks linear"). Because
``relu(z) - relu(-z) = z``, a stream that carries ``[relu(v); relu(-v)]`` through

- a stem ``[U; -U]``            (layout ``"stem"``: input not mirrored),
- blocks ``[[U, -U], [-U, U]]`` (layout ``"block"``),
- a head ``[U, -U]``            (layout ``"head"``: output not mirrored)

computes ``v -> U v`` at every layer; with orthogonal ``U`` the whole ReLU net is an exact
isometry. For convolutions the matrix sits at the kernel's centre tap and every other tap is
zero (delta-orthogonal, Xiao et al. 2018), which is isometric for stride 1 and zero padding.

    >>> w = looks_linear_(torch.empty(8, 6), generator=torch.Generator().manual_seed(0))
    >>> torch.allclose(w[:4, :3], -w[:4, 3:])
    True
"""

from __future__ import annotations

import torch

# Sign pattern of the copies of U in each layout (kron(signs, U) is the weight matrix).
LAYOUTS: dict[str, torch.Tensor] = {
    "stem": torch.tensor([[1.0], [-1.0]]),
    "block": torch.tensor([[1.0, -1.0], [-1.0, 1.0]]),
    "head": torch.tensor([[1.0, -1.0]]),
}


def looks_linear_(tensor: torch.Tensor, matrix: torch.Tensor | None = None, layout: str = "block",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill ``tensor`` in place with the looks-linear copy of ``matrix`` and return it.

    ``tensor`` is a linear weight ``(out, in)`` or a conv kernel ``(out, in, k, k)`` with odd
    ``k``; it is split into the halves that ``layout`` mirrors. ``matrix`` (shape of one block
    ``U``) defaults to a random (semi-)orthogonal matrix drawn with ``generator``.

    Example: ``looks_linear_(conv.weight, layout="block")`` makes a 3x3 conv that maps
    ``[relu(v); relu(-v)]`` to ``[U v; -U v]``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    if tensor.ndim not in (2, 4):
        raise ValueError(f"tensor must be 2-D (linear) or 4-D (conv), got {tensor.ndim}-D")
    if tensor.ndim == 4 and (tensor.shape[2] != tensor.shape[3] or tensor.shape[2] % 2 == 0):
        raise ValueError(f"tensor's kernel must be square with odd size, got {tuple(tensor.shape[2:])}")
    signs = LAYOUTS[layout]
    rows, cols = signs.shape
    out, inp = tensor.shape[:2]
    if out % rows or inp % cols:
        raise ValueError(f"tensor of shape {tuple(tensor.shape[:2])} cannot be split into the "
                         f"{rows}x{cols} halves of layout {layout!r} (sizes must be divisible)")
    shape = (out // rows, inp // cols)
    if matrix is None:
        matrix = torch.nn.init.orthogonal_(torch.empty(shape, dtype=torch.float64), generator=generator)
    elif tuple(matrix.shape) != shape:
        raise ValueError(f"matrix must have shape {shape} for this tensor and layout, got {tuple(matrix.shape)}")
    return delta_(tensor, torch.kron(signs.to(matrix), matrix))


def delta_(tensor: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Write ``matrix`` (out, in) into a linear weight, or at the centre tap of a conv kernel
    with all other taps zero (delta initialization, Xiao et al. 2018, Algorithm 2); in place.

    >>> delta_(torch.empty(2, 2, 3, 3), torch.eye(2))[:, :, 1, 1]
    tensor([[1., 0.], [0., 1.]])
    """
    if tuple(matrix.shape) != tuple(tensor.shape[:2]):
        raise ValueError(f"matrix must have shape {tuple(tensor.shape[:2])}, got {tuple(matrix.shape)}")
    with torch.no_grad():
        if tensor.ndim == 2:
            tensor.copy_(matrix)
        else:
            centre = tensor.shape[2] // 2
            tensor.zero_()
            tensor[:, :, centre, centre] = matrix
    return tensor
