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
    """Save ``fig`` as a PNG at ``path`` (atomically); inside a notebook kernel, also show
    that same PNG inline (the backend is Agg, so nothing else displays it)."""
    from initrepro.core.claims import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata=PNG_METADATA, format="png")
        png = Path(tmp).read_bytes() if in_kernel() else None
    if png is not None:
        from IPython.display import Image, display

        display(Image(data=png, format="png"))
    return Path(path)


def in_kernel() -> bool:
    """True inside a Jupyter kernel (a notebook run by papermill), False in scripts and tests."""
    import sys

    if "ipykernel" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def subplots(*args, **kwargs):
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)
