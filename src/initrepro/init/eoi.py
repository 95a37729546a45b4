"""EOI: Exact Orthogonal Initialization, sparse matrices that are exactly orthogonal.

Nowak, Gniecki, Szatkowski, Tabor, "Sparser, Better, Deeper, Stronger: Improving Static Sparse
Training with Exact Orthogonal Initialization", ICML 2024, arXiv 2406.01755, Sec. 3 (Alg. 1).

A product of Givens rotations is orthogonal, and a rotation of columns ``i, j`` merges their
supports. Starting from the (padded) identity of shape ``(n, m)``, ``n <= m``, random rotations
``W <- W G(i, j, theta)`` raise the density from ``1/m`` until it reaches the target; whichever of
the last two matrices is closer to the target is kept. ``W W^T = I_n`` holds exactly up to float
rounding; tall matrices are built wide and transposed (``W^T W = I_m``).

Convolutions use the sparse delta-orthogonal kernel: an EOI matrix at the kernel centre, zeros
elsewhere, and further zero-valued but trainable positions unmasked until the mask has the
target density. With circular padding such a layer is an exact isometry (times the gain).

    >>> w = torch.empty(128, 128)
    >>> w, mask = eoi_(w, density=0.125, generator=torch.Generator().manual_seed(0))
    >>> float(mask.float().mean())  # ~0.125
    >>> torch.allclose(w @ w.T, torch.eye(128), atol=1e-6)
    True
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch
from torch import Tensor


def min_density(rows: int, cols: int) -> float:
    """The lowest density EOI reaches for a ``rows x cols`` matrix: that of the padded identity."""
    return 1.0 / max(rows, cols)


def _check_density(density: float, rows: int, cols: int) -> None:
    lowest = min_density(rows, cols)
    if not lowest <= density <= 1.0:
        raise ValueError(f"density must be in [{lowest:.6g}, 1] for a {rows} x {cols} matrix "
                         f"(the padded identity already has density {lowest:.6g}), got {density}")


def orthogonality_error(weights: Tensor, gain: float = 1.0) -> Tensor:
    """Per matrix of a stack ``(count, out, in, ...)``: ``max |W W^T - gain^2 I|`` (``W^T W``
    for tall matrices), computed in float64; conv kernels are flattened to
    ``(out, in * kh * kw)`` as in Lee et al. 2020.

        >>> orthogonality_error(eoi_matrices(4, 32, 64, 0.2))  # ~1e-7 each
    """
    w = weights.flatten(2).double()
    gram = w @ w.transpose(1, 2) if w.shape[1] <= w.shape[2] else w.transpose(1, 2) @ w
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype)
    return (gram - gain**2 * eye).abs().amax((1, 2))


def _rotation_chunks(size: int, chunk: int, generator: torch.Generator | None) -> Iterator[tuple[np.ndarray, ...]]:
    """Random Givens rotations, drawn ``chunk`` at a time (one torch call each, not one per
    rotation): column pairs ``i != j`` of ``size`` columns, uniform, and ``cos, sin`` of an
    angle uniform in ``[0, 2 pi)``, as numpy arrays."""
    while True:
        u = torch.rand(3, chunk, generator=generator, dtype=torch.float64).numpy()
        i = (u[0] * size).astype(np.int64)
        j = (i + 1 + (u[1] * (size - 1)).astype(np.int64)) % size
        theta = u[2] * (2 * math.pi)
        yield i, j, np.cos(theta), np.sin(theta)


def _chunk_size(long: int, density: float) -> int:
    """Rotations drawn per chunk: the mean-field count to reach ``density`` (module docstring
    of the digest: about ``(m - 1)/2 ln((m - 1) d / (1 - d))``, ``m ln m`` at full density)
    with some slack, so one chunk almost always suffices."""
    if density >= 1.0:
        return max(16, math.ceil(long * math.log(long) * 1.5))
    expected = (long - 1) / 2 * math.log(max((long - 1) * density / (1 - density), 1.0))
    return max(16, math.ceil(1.25 * expected) + 16)


def _eoi_wide_t(short: int, long: int, density: float, generator: torch.Generator | None) -> np.ndarray:
    """The core of every EOI builder: ``W^T`` (shape ``(long, short)``, float64) of one wide EOI
    matrix ``W`` (``short x long``, ``W W^T = I``), at ``density`` of ``short * long``.

    A rotation of columns ``i, j`` gives both columns the union of their supports (exact zeros
    cancel only on a null set of angles), so the nonzero count after every rotation follows from
    the supports alone: they are tracked as integer bitsets (O(1) per rotation), which fixes how
    many rotations to apply, with the closer-of-the-last-two rule of Alg. 1. The rotations are
    then applied in rounds: each rotation goes to the round after the last one that touched
    either of its columns, so a round touches disjoint columns and is one vectorized numpy update
    (rotations in a round commute; each column sees its rotations in the drawn order, with the
    same arithmetic as one at a time, so the result is bitwise that of the sequential loop).
    """
    wide_t = np.eye(long, short)
    target = density * short * long
    nnz = short
    if nnz >= target:
        return wide_t
    support = [1 << c for c in range(short)] + [0] * (long - short)
    last_round = [0] * long
    rounds: list[int] = []  # round of each applied rotation, in drawn order
    for i, j, cos, sin in _rotation_chunks(long, _chunk_size(long, density), generator):
        done = False
        for t, (a, b) in enumerate(zip(i.tolist(), j.tolist())):
            union = support[a] | support[b]
            new = nnz - support[a].bit_count() - support[b].bit_count() + 2 * union.bit_count()
            if new >= target:
                done = True
                if abs(new - target) >= abs(nnz - target):
                    break  # the matrix before this rotation is closer to the target
            support[a] = support[b] = union
            nnz = new
            r = last_round[a] if last_round[a] > last_round[b] else last_round[b]
            last_round[a] = last_round[b] = r = r + 1
            rounds.append(r)
            if done:
                break
        applied = len(rounds)
        _apply_rounds(wide_t, i[:applied], j[:applied], cos[:applied], sin[:applied], np.asarray(rounds))
        if done:
            return wide_t
        rounds.clear()
        last_round = [0] * long


def _apply_rounds(wide_t: np.ndarray, i, j, cos, sin, rounds: np.ndarray) -> None:
    """Apply rotations ``(i, j, cos, sin)`` to the rows of ``wide_t`` (columns of ``W``),
    one vectorized update per round (rotations of one round touch disjoint rows)."""
    order = np.argsort(rounds, kind="stable")
    pairs = np.stack([i[order], j[order]])  # (2, rotations): rows a, b of each rotation
    # new (a, b) = (c a - s b, s a + c b) = coef_same * (a, b) + coef_swap * (b, a)
    coef_same = np.stack([cos[order], cos[order]])[..., None]
    coef_swap = np.stack([-sin[order], sin[order]])[..., None]
    bounds = (np.flatnonzero(np.diff(rounds[order])) + 1).tolist()
    for lo, hi in zip([0, *bounds], [*bounds, len(order)]):
        rows = pairs[:, lo:hi]
        x = wide_t[rows]
        wide_t[rows] = coef_same[:, lo:hi] * x + coef_swap[:, lo:hi] * x[::-1]


def _check_args(rows: int, cols: int, density: float, gain: float) -> None:
    if not gain > 0:
        raise ValueError(f"gain must be > 0, got {gain}")
    if rows < 1 or cols < 1:
        raise ValueError(f"rows and cols must be >= 1, got {rows} x {cols}")
    _check_density(density, rows, cols)


def _eoi_matrix(rows: int, cols: int, density: float, gain: float, generator: torch.Generator | None) -> np.ndarray:
    """One EOI matrix of shape ``(rows, cols)`` (float64, arguments already checked)."""
    short, long = sorted((rows, cols))
    wide_t = _eoi_wide_t(short, long, density, generator)
    if gain != 1.0:
        wide_t *= gain
    # wide_t is W^T of the wide (short x long) matrix; a tall result is W^T itself.
    return wide_t.T if rows <= cols else wide_t


def eoi_matrices(count: int, rows: int, cols: int, density: float, *, gain: float = 1.0,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``count`` independent EOI matrices of shape ``(rows, cols)`` (Nowak et al. 2024, Alg. 1).

    Each matrix costs O(rotations) bookkeeping plus a few vectorized rounds of rotations (see
    :func:`_eoi_wide_t`), not O(rows * cols) per rotation as a recount of all nonzeros would.
    Built in float64 and cast, so float32 results are orthogonal to float32 rounding.

        >>> eoi_matrices(1000, 128, 128, 0.125).shape  # 1000 layers in well under a second
        torch.Size([1000, 128, 128])
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    _check_args(rows, cols, density, gain)
    out = torch.empty(count, rows, cols, dtype=dtype)
    for layer in out:  # cast layer by layer: no float64 copy of the whole stack
        layer.copy_(torch.from_numpy(_eoi_matrix(rows, cols, density, gain, generator)))
    return out


def eoi_reference(rows: int, cols: int, density: float,
                  generator: torch.Generator | None = None) -> Tensor:
    """The straightforward loop of the authors' code, one rotation at a time, recounting all
    nonzeros after every rotation (O(rows * cols) torch work per rotation). The baseline of the
    efficiency claim; it draws the same random numbers as :func:`eoi_matrices` ``(1, ...)`` and
    so returns the same matrix (float64, gain 1).
    """
    _check_density(density, rows, cols)
    short, long = sorted((rows, cols))
    wide = torch.eye(short, long, dtype=torch.float64)
    target = density * rows * cols
    nnz = short
    chunks = _rotation_chunks(long, _chunk_size(long, density), generator) if nnz < target else iter(())
    while nnz < target:
        i, j, cos, sin = next(chunks)
        for a, b, c, s in zip(i.tolist(), j.tolist(), cos.tolist(), sin.tolist()):
            rotated = wide.clone()
            col_a, col_b = wide[:, a], wide[:, b]
            rotated[:, a], rotated[:, b] = c * col_a - s * col_b, s * col_a + c * col_b
            new_nnz = int(torch.count_nonzero(rotated))
            if new_nnz < target or abs(new_nnz - target) < abs(nnz - target):
                wide = rotated
            nnz = new_nnz
            if nnz >= target:
                break
    return wide if rows <= cols else wide.T.contiguous()


def eoi_stack(count: int, shape: tuple[int, ...], density: float, *, gain: float = 1.0,
              generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """``count`` EOI weights of ``shape`` (2-D linear or 4-D conv) and their masks, stacked.

    2-D: :func:`eoi_matrices`, mask ``W != 0``. 4-D ``(out, in, kh, kw)`` with odd ``kh, kw``:
    the sparse delta-orthogonal kernel (Nowak et al. 2024, Sec. 3.2; Xiao et al. 2018): the
    centre tap is an EOI matrix at ``density``, every other entry is zero, and a uniformly random
    set of the zero entries is unmasked (trainable, value 0) so that each mask holds
    ``round(density * numel)`` entries.
    """
    if len(shape) not in (2, 4):
        raise ValueError(f"shape must be 2-D (linear) or 4-D (conv), got {tuple(shape)}")
    if len(shape) == 2:
        weights = eoi_matrices(count, *shape, density, gain=gain, generator=generator, dtype=dtype)
        return weights, weights != 0
    out_ch, in_ch, kh, kw = shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"shape's kernel size must be odd (it needs a centre tap), got {kh} x {kw}")
    centre = eoi_matrices(count, out_ch, in_ch, density, gain=gain, generator=generator, dtype=dtype)
    weights = torch.zeros(count, *shape, dtype=dtype)
    weights[:, :, :, kh // 2, kw // 2] = centre
    mask = (weights != 0).flatten(1)
    # Unmask random zero entries: rank them by a random key, with the centre's nonzeros ranked last.
    extra = (round(density * mask.shape[1]) - mask.sum(1)).clamp(min=0)
    key = torch.rand(mask.shape, generator=generator).masked_fill(mask, 2.0)
    rank = key.argsort(1).argsort(1)
    mask |= rank < extra[:, None]
    return weights, mask.view(count, *shape)


def sparse_delta_orthogonal_(tensor: Tensor, density: float, gain: float = 1.0,
                             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Fill a conv weight ``(out, in, kh, kw)`` with the sparse delta-orthogonal kernel (see
    :func:`eoi_stack`) and return ``(tensor, mask)``; the mask also covers trainable zeros.

        >>> w, mask = sparse_delta_orthogonal_(torch.empty(16, 16, 3, 3), 0.125)
        >>> bool((w[:, :, 1, 1] @ w[:, :, 1, 1].T - torch.eye(16)).abs().max() < 1e-6)
        True
    """
    if tensor.dim() != 4:
        raise ValueError(f"tensor must be a 4-D conv weight (out, in, kh, kw), got shape {tuple(tensor.shape)}")
    return eoi_(tensor, density, gain, generator)


def eoi_(tensor: Tensor, density: float, gain: float = 1.0,
         generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Fill ``tensor`` in place with an exactly orthogonal sparse matrix (Nowak et al. 2024,
    Alg. 1) and return ``(tensor, mask)``.

    2-D ``(out, in)``: rows orthonormal (``W W^T = gain^2 I``) when ``out <= in``, columns
    otherwise; ``mask = tensor != 0``. 4-D conv weights get the sparse delta-orthogonal kernel
    (:func:`eoi_stack`; its mask also covers trainable zeros). ``density`` must be in
    ``[1 / max(out, in), 1]``.

        >>> w, mask = eoi_(torch.empty(64, 256), density=0.1)
        >>> torch.allclose(w @ w.T, torch.eye(64), atol=1e-6)
        True
    """
    if tensor.dim() == 2:
        # The path of model.apply: one matrix straight from the core, with two torch calls.
        _check_args(*tensor.shape, density, gain)
        with torch.no_grad():
            tensor.copy_(torch.from_numpy(_eoi_matrix(*tensor.shape, density, gain, generator)))
        return tensor, tensor != 0
    weights, mask = eoi_stack(1, tuple(tensor.shape), density, gain=gain, generator=generator, dtype=tensor.dtype)
    with torch.no_grad():
        tensor.copy_(weights[0])
    return tensor, mask[0]
