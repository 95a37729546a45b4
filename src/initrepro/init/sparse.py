"""Sparse initializations of whole networks: per-layer densities, masks, and weights.

The baselines of Nowak et al. 2024 (arXiv 2406.01755, Sec. 4) next to EOI:

- per-layer densities: ``uniform`` (every layer at the global density) and ``erk``
  (Erdos-Renyi-Kernel, Evci et al. 2020, Eq. in Sec. 3: density ~ sum of dims / product of dims);
- uniform random masks on dense orthogonal weights (delta-orthogonal for convs,
  Xiao et al. 2018), the mask applied on top;
- uniform random masks on variance-rescaled Gaussian weights,
  ``N(0, gain^2 / (fan_in * density))`` (Liu et al. 2019);
- approximate isometry, AI (Lee et al. 2020, Eq. 6): the mask is kept and the masked weights
  are optimized towards ``W W^T = gain^2 I`` (``W^T W`` for tall matrices).

Layers of equal shape are built together as one stacked tensor, so 1000 layers cost a few
batched operations, not 1000 Python calls.

    >>> layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    >>> masks = sparse_init_(layers, "eoi", density=0.125, gain=1.0247, bias_std=0.00448,
    ...                      generator=torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Sequence

import torch
from torch import Tensor, nn
from tqdm import tqdm

from initrepro.init.eoi import eoi_stack

Builder = Callable[..., tuple[Tensor, Tensor]]


def uniform_densities(shapes: Sequence[tuple[int, ...]], density: float) -> list[float]:
    """Every layer at the global ``density``."""
    return [density] * len(shapes)


def erk_densities(shapes: Sequence[tuple[int, ...]], density: float) -> list[float]:
    """Erdos-Renyi-Kernel densities (Evci et al. 2020): layer density proportional to
    ``sum(shape) / prod(shape)``, scaled so the whole network has ``density``; layers that
    would exceed 1 are made dense and the rest rescaled.

        >>> erk_densities([(128, 64), (128, 128), (10, 128)], 0.125)  # small layers denser
    """
    sizes = torch.tensor([math.prod(s) for s in shapes], dtype=torch.float64)
    raw = torch.tensor([sum(s) / math.prod(s) for s in shapes], dtype=torch.float64)
    dense = torch.zeros(len(shapes), dtype=torch.bool)
    while True:
        # Budget left for the sparse layers after the dense ones take all their weights.
        budget = density * sizes.sum() - sizes[dense].sum()
        scale = budget / (raw[~dense] * sizes[~dense]).sum()
        out = torch.where(dense, torch.ones_like(raw), scale * raw)
        if (out <= 1).all():
            return out.tolist()
        dense |= out > 1


DENSITIES: dict[str, Callable[[Sequence[tuple[int, ...]], float], list[float]]] = {
    "uniform": uniform_densities, "erk": erk_densities}


def _check_density(density: float) -> None:
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")


def uniform_masks(count: int, shape: tuple[int, ...], density: float,
                  generator: torch.Generator | None = None) -> Tensor:
    """``count`` random masks of ``shape``, each with exactly ``round(density * numel)`` ones
    (at least one), positions uniform at random."""
    _check_density(density)
    numel = math.prod(shape)
    keep = max(round(density * numel), 1)
    rank = torch.rand(count, numel, generator=generator).argsort(1).argsort(1)
    return (rank < keep).view(count, *shape)


def orthogonal_stack(count: int, shape: tuple[int, ...], gain: float = 1.0,
                     generator: torch.Generator | None = None) -> Tensor:
    """``count`` Haar-random orthogonal matrices (QR with sign correction, Mezzadri 2007) of a
    2-D shape; for 4-D conv shapes the delta-orthogonal kernel (Xiao et al. 2018, Alg. 1):
    the orthogonal matrix at the kernel centre, zeros elsewhere."""
    out_ch, in_ch = shape[:2]
    rows, cols = max(out_ch, in_ch), min(out_ch, in_ch)
    q, r = torch.linalg.qr(torch.randn(count, rows, cols, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    matrix = (q if out_ch >= in_ch else q.transpose(1, 2)) * gain
    if len(shape) == 2:
        return matrix.float()
    weights = torch.zeros(count, *shape)
    weights[:, :, :, shape[2] // 2, shape[3] // 2] = matrix.float()
    return weights


def masked_orthogonal_stack(count: int, shape: tuple[int, ...], density: float, *, gain: float = 1.0,
                            generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Dense (delta-)orthogonal weights with a uniform random mask applied on top; at
    ``density=1`` the dense orthogonal baseline."""
    weights = orthogonal_stack(count, shape, gain, generator)
    mask = uniform_masks(count, shape, density, generator)
    return weights * mask, mask


def masked_gaussian_stack(count: int, shape: tuple[int, ...], density: float, *, gain: float = 1.0,
                          generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Uniform random mask on ``N(0, gain^2 / (fan_in * density))`` weights: the variance is
    rescaled to the expected number of surviving inputs (Liu et al. 2019)."""
    mask = uniform_masks(count, shape, density, generator)
    fan_in = math.prod(shape[1:])
    std = gain / math.sqrt(fan_in * density)
    return torch.randn(count, *shape, generator=generator) * std * mask, mask


def approximate_isometry_stack(count: int, shape: tuple[int, ...], density: float, *, gain: float = 1.0,
                               generator: torch.Generator | None = None, steps: int = 200,
                               lr: float = 1e-2) -> tuple[Tensor, Tensor]:
    """Approximate isometry (Lee et al. 2020, Eq. 6): from a uniform mask on orthogonal
    weights, minimize ``||(M * W)(M * W)^T - gain^2 I||_F^2`` over the unmasked entries with
    Adam (``steps`` steps at ``lr``). The mask is unchanged; orthogonality stays approximate."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    weights, mask = masked_orthogonal_stack(count, shape, density, gain=gain, generator=generator)
    w = weights.clone().requires_grad_(True)
    flat_mask = mask.flatten(2).float()
    tall = shape[0] > math.prod(shape[1:])
    eye = torch.eye(math.prod(shape[1:]) if tall else shape[0])
    optimizer = torch.optim.Adam([w], lr=lr)
    for _ in tqdm(range(steps), desc="approximate isometry", leave=False, disable=steps < 100):
        m = w.flatten(2) * flat_mask
        gram = m.transpose(1, 2) @ m if tall else m @ m.transpose(1, 2)
        loss = ((gram - gain**2 * eye) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (w.detach() * mask), mask


BUILDERS: dict[str, Builder] = {
    "eoi": eoi_stack,
    "orthogonal": masked_orthogonal_stack,
    "gaussian": masked_gaussian_stack,
    "approximate_isometry": approximate_isometry_stack,
}

# scheme -> (per-layer densities, weight builder); "dense_orthogonal" ignores the density.
SCHEMES: dict[str, tuple[str | None, str]] = {
    "eoi": ("uniform", "eoi"),
    "dense_orthogonal": (None, "orthogonal"),
    "uniform_orthogonal": ("uniform", "orthogonal"),
    "erk_orthogonal": ("erk", "orthogonal"),
    "uniform_gaussian": ("uniform", "gaussian"),
    "approximate_isometry": ("uniform", "approximate_isometry"),
}


def sparse_init_(layers: Sequence[nn.Module], scheme: str, density: float, *, gain: float = 1.0,
                 bias_std: float = 0.0, generator: torch.Generator | None = None,
                 **builder_kwargs) -> list[Tensor]:
    """Initialize the weights of ``layers`` (``nn.Linear`` / ``nn.Conv2d``) in place with
    ``scheme`` (a key of ``SCHEMES``) at global ``density``, biases ``N(0, bias_std^2)``; return
    one boolean mask per layer (all True for dense schemes). ``builder_kwargs`` go to the weight
    builder (e.g. ``steps`` for approximate isometry).

        >>> masks = sparse_init_(layers, "uniform_gaussian", 0.125, gain=1.0247)
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
    _check_density(density)
    if not gain > 0:
        raise ValueError(f"gain must be > 0, got {gain}")
    if bias_std < 0:
        raise ValueError(f"bias_std must be >= 0, got {bias_std}")
    distribution, builder = SCHEMES[scheme]
    shapes = [tuple(layer.weight.shape) for layer in layers]
    densities = DENSITIES[distribution](shapes, density) if distribution else [1.0] * len(shapes)
    # Layers with the same shape and density are built as one stack.
    groups: dict[tuple, list[int]] = defaultdict(list)
    for index, key in enumerate(zip(shapes, densities)):
        groups[key].append(index)
    masks: list[Tensor] = [torch.empty(0)] * len(layers)
    for (shape, layer_density), indices in groups.items():
        weights, group_masks = BUILDERS[builder](len(indices), shape, layer_density, gain=gain,
                                                 generator=generator, **builder_kwargs)
        for index, weight, mask in zip(indices, weights, group_masks):
            with torch.no_grad():
                layers[index].weight.copy_(weight)
                if layers[index].bias is not None:
                    layers[index].bias.normal_(0.0, bias_std, generator=generator)
            masks[index] = mask
    return masks
