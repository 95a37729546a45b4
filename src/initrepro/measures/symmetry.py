"""How identical the filters of a network are: exact counts, the authors' correlations, spread.

For a weight ``w`` (out, in, ...), the "forward" rows are the output filters ``w[o]`` and the
"backward" rows are the input-channel slices ``w[:, i]`` (Blumenfeld, Gilboa & Soudry 2020,
``correlation.py`` of their code). Measures:

- ``distinct_rows``: the exact number of bitwise-distinct rows (the authors have no count;
  this one cannot be fooled by rounding);
- ``mean_pairwise_correlation``: their mean Pearson correlation over pairs of rows, a
  constant row counting as correlation 1;
- ``diversity``: their score ``sum over layers of log sqrt(1 - corr_backward^2)``; an
  exactly symmetric layer (corr 1) would give -inf, so ``1 - corr^2`` is floored at
  float64's resolution 2^-52 (about -18 per layer);
- ``relative_spread``: RMS distance of the rows from their mean over the mean's norm, in
  float64 (a float32 mean shows a false ~1e-7 spread on identical rows).

``SymmetryTracker`` records them every few steps as an ``after_step`` hook of ``train``.

    >>> w = torch.zeros(4, 2, 3, 3); w[1] += 1.0
    >>> distinct_rows(w), distinct_rows(w, dim=1)
    (2, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

FLOAT64_RESOLUTION = 2.0 ** -52


def _rows(weight: torch.Tensor, dim: int) -> torch.Tensor:
    if dim not in (0, 1):
        raise ValueError(f"dim must be 0 (output filters) or 1 (input channels), got {dim}")
    if weight.dim() < 2:
        raise ValueError(f"weight must have at least 2 dims (out, in, ...), got shape {tuple(weight.shape)}")
    return weight.detach().transpose(0, dim).flatten(1)


def distinct_rows(weight: torch.Tensor, dim: int = 0) -> int:
    """Number of bitwise-distinct rows along ``dim`` (0: output filters, 1: input channels)."""
    rows = _rows(weight, dim).contiguous()
    bits = rows.view(torch.int32) if rows.dtype == torch.float32 else rows.view(torch.int64)
    return int(torch.unique(bits, dim=0).shape[0])


def mean_pairwise_correlation(weight: torch.Tensor, dim: int = 0) -> float:
    """Mean Pearson correlation over all pairs of rows along ``dim``, in float64; a pair with a
    constant row counts as 1 (the authors' ``np.corrcoef`` NaN -> 1). One row: NaN (no pair)."""
    rows = _rows(weight, dim).double()
    n = rows.shape[0]
    if n < 2:
        return math.nan
    centred = rows - rows.mean(dim=1, keepdim=True)
    norms = centred.norm(dim=1)
    corr = (centred @ centred.T) / (norms[:, None] * norms[None, :])
    corr = torch.nan_to_num(corr, nan=1.0)
    i, j = torch.tril_indices(n, n, offset=-1)
    return float(corr[i, j].mean())


def relative_spread(weight: torch.Tensor, dim: int = 0) -> float:
    """RMS over rows of ``||row - mean row||`` divided by ``||mean row||``, in float64.

    0 for identical rows; ``inf`` when rows differ around a zero mean."""
    rows = _rows(weight, dim).double()
    mean = rows.mean(dim=0)
    deviation = (rows - mean).pow(2).sum(dim=1).mean().sqrt()
    if deviation == 0:
        return 0.0
    scale = mean.norm()
    return float(deviation / scale) if scale > 0 else math.inf


def diversity(weights: list[torch.Tensor]) -> float:
    """The authors' score: sum over layers of ``log sqrt(1 - corr_backward^2)`` (<= 0; higher
    means more diverse), with ``1 - corr^2`` floored at 2^-52; a layer with one input channel
    has no pair and is left out."""
    total = 0.0
    for w in weights:
        if w.shape[1] < 2:
            continue
        # Bitwise-identical rows are exactly correlated; the float64 formula would return 1 +- 1e-16.
        corr = 1.0 if distinct_rows(w, dim=1) == 1 else mean_pairwise_correlation(w, dim=1)
        total += 0.5 * math.log(max(1.0 - corr * corr, FLOAT64_RESOLUTION))
    return total


def tracked_layers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights the authors track: every conv and linear layer, by module name."""
    return {name: m.weight for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def conv_layers(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of the 3x3 convs (stem and residual branches): where width lives."""
    return {name: m.weight for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)}


@dataclass
class SymmetryTracker:
    """``after_step`` hook recording symmetry measures every ``every`` steps (and at step 0
    via ``record(model, 0)``). Per record: the authors' diversity over all conv/linear
    layers, and over the 3x3 convs the min / max / mean fraction of distinct output filters,
    the max number of distinct input channels (symmetry in the other direction) and the
    median relative spread of output filters."""

    every: int = 10
    step: list[int] = field(default_factory=list)
    diversity: list[float] = field(default_factory=list)
    min_distinct: list[int] = field(default_factory=list)
    max_distinct: list[int] = field(default_factory=list)
    max_distinct_inputs: list[int] = field(default_factory=list)
    distinct_fraction: list[float] = field(default_factory=list)
    median_spread: list[float] = field(default_factory=list)

    def __post_init__(self):
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")

    def __call__(self, model: nn.Module, step: int) -> None:
        if step % self.every == 0:
            self.record(model, step)

    @torch.no_grad()
    def record(self, model: nn.Module, step: int) -> None:
        convs = list(conv_layers(model).values())
        counts = [distinct_rows(w) for w in convs]
        spreads = torch.tensor([relative_spread(w) for w in convs], dtype=torch.float64)
        self.step.append(step)
        self.diversity.append(diversity(list(tracked_layers(model).values())))
        self.min_distinct.append(min(counts))
        self.max_distinct.append(max(counts))
        self.max_distinct_inputs.append(max(distinct_rows(w, dim=1) for w in convs))
        self.distinct_fraction.append(sum(c / w.shape[0] for c, w in zip(counts, convs)) / len(convs))
        self.median_spread.append(float(spreads.median()))

    def first_step_spread_above(self, threshold: float) -> int | None:
        """First recorded step whose median relative spread exceeds ``threshold`` (None: never)."""
        return next((s for s, v in zip(self.step, self.median_spread) if v > threshold), None)
