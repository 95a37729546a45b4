"""Figures: one seaborn style, one colour per scheme in every figure, byte-stable PNGs written
atomically, and the panel that shows what decided each verdict.

    >>> ax.plot(steps, acc, color=scheme_color("RISOTTO"), label="RISOTTO")
    >>> fig = verdict_panels(record.claims)  # every deciding check against its threshold
"""

from __future__ import annotations

import math
import os
import re
import textwrap
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from initrepro.core.files import atomic_path  # noqa: E402
from initrepro.core.stats import mean_ci  # noqa: E402

sns.set_theme(context="notebook", style="whitegrid")
# Fixed metadata (no software version or date) so figures are byte-stable where data are.
PNG_METADATA = {"Software": None}

#: colours for schemes not listed below: dark shades (tab20b/c) that no listed scheme uses
_PALETTE = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
            "#756bb1", "#636363"]
#: one colour per initialization scheme, the same in every figure of every stage, and no two
#: schemes that share a figure alike: the proposed scheme of each paper in a strong colour, the
#: baselines in the colours of their family (He and Kaiming are one scheme under two names; a
#: scheme with batch norm is the light shade of the same hue).
SCHEME_COLORS = {
    "constnet": "#1f77b4", "he": "#ff7f0e", "kaiming": "#ff7f0e", "kaiming_bn": "#ffbb78", "bn_resnet": "#ffbb78",
    "xavier": "#8c564b", "glorot": "#8c564b", "orthogonal": "#7f7f7f", "gaussian": "#bcbd22", "lecun": "#bcbd22",
    "risotto": "#d62728", "risotto_bn": "#ff9896", "fixup": "#2ca02c", "skipinit": "#9467bd",
    "eoi": "#d62728", "delta_orthogonal": "#7f7f7f", "sao": "#17becf", "dense": "#aec7e8",
    "s_moment": "#d62728", "fractional": "#d62728", "sigma_s": "#d62728",
    "identity": "#d62728", "looks_linear": "#e377c2", "parameter_sharing": "#d62728",
    "zero": "#17becf", "hadamard": "#17becf", "partial_identity": "#9467bd",
    "idinit": "#d62728", "idiz": "#e377c2", "idic": "#c5b0d5", "exact_zeros": "#7f7f7f",
}
VERDICT_COLORS = {"reproduced": "#2ca02c", "not_reproduced": "#d62728", "inconclusive": "#ff7f0e",
                  "skipped": "#7f7f7f"}
PASS_COLORS = {True: "#2ca02c", False: "#d62728"}


def scheme_key(name: str) -> str:
    """``"ConstNet + dropout"`` -> ``"constnet"``, ``"Delta-orthogonal"`` -> ``"delta_orthogonal"``,
    ``"Kaiming + BN"`` -> ``"kaiming_bn"``: lower case, the words before a ``+``, ``(`` or ``,``,
    punctuation as ``_``, and ``_bn`` where batch norm is added to the scheme."""
    lower = str(name).lower()
    head = re.sub(r"[^a-z0-9]+", "_", re.split(r"[+(,]", lower)[0]).strip("_")
    added_bn = re.search(r"\+\s*(bn|batch ?norm)\b", lower) is not None
    return head + "_bn" if added_bn and not head.endswith("_bn") else head


def scheme_color(name: str) -> str:
    """The colour of scheme ``name`` in every figure: :data:`SCHEME_COLORS` where it is listed
    (also under its first word: "ZerO 64 blocks" is ZerO), else a fixed pick from
    :data:`_PALETTE` by a hash of the name, so that an unknown scheme keeps its colour across
    figures and runs, and never takes a listed scheme's."""
    key = scheme_key(name)
    for candidate in (key, key.split("_")[0]):
        if candidate in SCHEME_COLORS:
            return SCHEME_COLORS[candidate]
    return _PALETTE[zlib.crc32(key.encode()) % len(_PALETTE)]


def claim_title(claims: list[dict]) -> str:
    """One line per claim: ``id: verdict``, as figures state what they show."""
    return "\n".join(f"{c['id']}: {c['verdict'].replace('_', ' ')}" for c in claims)


def _evidence_of(claim: dict, part) -> dict:
    measured = claim.get("measured") or {}
    evidence = measured.get("evidence")
    if evidence is not None and part is not None and part < len(evidence):
        return evidence[part]
    return measured


def deciding_checks(claim: dict) -> list[tuple[dict, dict | None]]:
    """The checks that decide ``claim``: its claim checks and every precondition that failed
    (what leaves a claim *inconclusive*), each with the interval it was decided by where it
    came from a comparison (``mean_diff``, ``ci_low``, ``ci_high``)."""
    out = []
    for check in claim["checks"]:
        if check.get("precondition") and check["passed"]:
            continue
        ev = _evidence_of(claim, check.get("part"))
        interval = ({k: ev[k] for k in ("mean_diff", "ci_low", "ci_high")}
                    if check.get("part") is not None and not check.get("precondition")
                    and all(k in ev for k in ("mean_diff", "ci_low", "ci_high")) else None)
        out.append((check, interval))
    return out


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def verdict_panels(claims: list[dict], width: float = 9.0):
    """One row per deciding check (:func:`deciding_checks`) of every non-skipped claim: the
    measured value (or, for a comparison, its mean and 95% interval) against the threshold or
    margin it was held to, green where the check passed and red where it failed; each claim's
    first row is titled with its id and verdict, in the verdict's colour."""
    rows = [(c, check, interval) for c in claims if c["verdict"] != "skipped"
            for check, interval in deciding_checks(c)]
    fig, axes = subplots(max(len(rows), 1), 1, figsize=(width, 0.95 * max(len(rows), 1) + 0.4), squeeze=False)
    seen = set()
    for ax, (claim, check, interval) in zip(axes[:, 0], rows):
        color = PASS_COLORS[bool(check["passed"])]
        threshold, value = check["threshold"], check["value"]
        points = [threshold] + ([interval["ci_low"], interval["ci_high"], interval["mean_diff"]] if interval else [value])
        points = [p for p in points if _finite(p)]
        if interval and all(_finite(interval[k]) for k in ("ci_low", "ci_high", "mean_diff")):
            ax.errorbar([interval["mean_diff"]], [0], xerr=[[interval["mean_diff"] - interval["ci_low"]],
                                                            [interval["ci_high"] - interval["mean_diff"]]],
                        fmt="o", color=color, capsize=4,
                        label=f"mean and 95% CI ({'passed' if check['passed'] else 'failed'})")
        elif _finite(value):
            ax.plot([value], [0], "o", color=color, label=f"measured ({'passed' if check['passed'] else 'failed'})")
        else:
            ax.text(0.5, 0.5, f"measured: {value}", transform=ax.transAxes, ha="center", va="center")
        if _finite(threshold):
            ax.axvline(threshold, color="black", ls="--", lw=1,
                       label=f"{'margin' if interval else 'threshold'} ({check['op']} {threshold:.3g})")
        if points:
            lo, hi = min(points), max(points)
            pad = (hi - lo) * 0.15 or abs(hi) * 0.1 or 1.0
            ax.set_xlim(lo - pad, hi + pad)
            if lo > 0 and hi / lo > 1e3:
                ax.set_xscale("log")
                ax.set_xlim(lo / 2, hi * 2)
        ax.set_yticks([])
        ax.set_ylim(-1, 1)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="x-small", frameon=False)
        label = textwrap.shorten(check["name"], 95)
        first = claim["id"] not in seen
        seen.add(claim["id"])
        kind = "precondition failed: " if check.get("precondition") else ""
        ax.set_title((f"{claim['id']}: {claim['verdict'].replace('_', ' ')}\n" if first else "") + kind + label,
                     fontsize="small", loc="left", color=VERDICT_COLORS[claim["verdict"]] if first else "black")
        ax.tick_params(axis="x", labelsize="x-small")
    if not rows:
        axes[0, 0].set_axis_off()
        axes[0, 0].text(0.5, 0.5, "no claim decided here (all skipped)", ha="center", va="center")
    return fig


def arm_points(ax, x, values, color, label=None, width=0.25, marker="o", label_if_empty=False):
    """The seeds of one arm at ``x`` as dots (spread over ``width``) and their mean with its 95% t
    interval (:func:`initrepro.core.stats.mean_ci`) as a bar with marker ``marker``; NaN runs are
    left out. Where no run is finite, ``label_if_empty`` still puts ``label`` in the legend (an
    empty entry), so that an arm that never trained is named there. One helper for every stage
    that shows compared quantities per arm, so the figures draw seeds and intervals alike."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    ax.plot(x + np.linspace(-width / 2, width / 2, len(v)) if len(v) > 1 else [x] * len(v), v, ".", color=color,
            alpha=0.45)
    if len(v):
        m, lo, hi = mean_ci(v)
        err = [[m - lo], [hi - m]] if np.isfinite(lo) else None
        ax.errorbar([x], [m], yerr=err, fmt=marker, ms=7, color=color, capsize=5, lw=2, label=label)
    elif label and label_if_empty:
        ax.plot([], [], " ", label=label)


def interval_panel(ax, rows, xlabel):
    """One row per comparison ``(label, interval, threshold, color, marker)``: the mean paired
    difference with its 95% interval (``interval``: ``mean_diff``, ``ci_low``, ``ci_high``, the
    interval its verdict was decided by) against the margin ``threshold`` it was held to (dashed),
    annotated with where the interval lies (above, below or straddling the margin). A ``None``
    in the interval or threshold is drawn as missing: "no interval"."""
    for y, (label, iv, threshold, color, marker) in enumerate(rows):
        m, lo, hi = (float("nan") if iv[k] is None else float(iv[k]) for k in ("mean_diff", "ci_low", "ci_high"))
        thr = float("nan") if threshold is None else float(threshold)
        if np.isfinite([m, lo, hi]).all():
            ax.errorbar([m], [y], xerr=[[m - lo], [hi - m]], fmt=marker, color=color, capsize=5, lw=2,
                        label="mean difference, 95% CI" if y == 0 else None)
            where = ("CI above the margin" if lo > thr else "CI below the margin" if hi < thr
                     else "CI straddles the margin: undecided")
        else:
            where = "no interval (too few finite runs)"
        ax.vlines(thr, y - 0.35, y + 0.35, color="k", ls="--", lw=1.5,
                  label="margin (the CI must lie above it)" if y == 0 else None)
        ax.annotate(where, (thr, y + 0.38), fontsize="x-small", ha="center", va="bottom")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize="small")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set(xlabel=xlabel)
    ax.legend(fontsize="x-small", loc="best")


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save ``fig`` as a PNG at ``path`` (atomically) and close it; inside a notebook kernel,
    also show that same PNG inline (the backend is Agg, so nothing else displays it)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", metadata=PNG_METADATA, format="png")
        png = Path(tmp).read_bytes() if in_kernel() else None
    plt.close(fig)
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
