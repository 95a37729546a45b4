"""Dense Gaussian schemes by name, to re-initialize every linear layer of a model alike."""

from __future__ import annotations

import torch
import torch.nn as nn

from initrepro.init.fractional import fractional_moment_normal_

DENSE_SCHEMES = {
    "fractional": fractional_moment_normal_,  # needs s=...
    "kaiming": lambda w, generator=None: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator),
    "xavier": lambda w, generator=None: nn.init.xavier_normal_(w, generator=generator),
}


def reinit_linear_(model: nn.Module, scheme: str, generator: torch.Generator | None = None, **kwargs) -> nn.Module:
    """Fill the weight of every ``nn.Linear`` in ``model`` with ``scheme`` (biases untouched,
    as in the fractional-moment authors' code)."""
    if scheme not in DENSE_SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(DENSE_SCHEMES)}, got {scheme!r}")
    for m in model.modules():
        if isinstance(m, nn.Linear):
            DENSE_SCHEMES[scheme](m.weight, generator=generator, **kwargs)
    return model
