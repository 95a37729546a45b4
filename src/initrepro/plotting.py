"""Figures: one seaborn style, byte-stable PNGs written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

sns.set_theme(context="notebook", style="whitegrid")
# Fixed metadata (no software version or date) so figures are byte-stable where data are.
PNG_METADATA = {"Software": None}


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    from initrepro.claims import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata=PNG_METADATA, format="png")
    return Path(path)


def subplots(*args, **kwargs):
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)
