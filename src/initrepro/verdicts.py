"""The verdict rules every stage applies (DESIGN.md, "Claim records").

Each rule turns measurements into :class:`Evidence`: the checks that decide a verdict (see
:func:`initrepro.claims.derive_verdict`), a one-sentence summary made from the numbers, and
the numbers themselves. A stage passes evidence to ``StageRecord.claim`` next to plain checks.

- :func:`compare`: a paired difference across seeds against a margin fixed before the run.
  *reproduced* when its confidence interval lies on the claim's side of the margin, *not
  reproduced* when it lies on the other side, *inconclusive* when it straddles the margin
  (the summary then says how many seeds the observed spread would need).
- :func:`positive_control`: the reference must train in the same setup, else a comparison
  with it decides nothing (a failed precondition: *inconclusive*).
- :func:`collapsed`: diverged or chance-level runs, counted as an outcome of their own and
  kept out of the accuracy differences.
- :func:`select_lr`: the best learning rate at least one grid step below the edge of
  divergence, so that the selected runs do not collapse by chance.
- :func:`two_stage`: many statistical tests in one claim, screened at a family-wise level
  and confirmed on an independent sample, so that a true claim fails with probability at
  most ``alpha_screen * alpha_confirm`` (0.1% by default).
- :func:`speedup`: timing claims as ratios of two timings made in the same run.

Example::

    ev = compare("RISOTTO", acc_risotto, "Fixup", acc_fixup, margin=0.01, chance=0.1)
    record.claim("risotto.beats_fixup_skipinit", [positive_control("Fixup", acc_fixup, 0.1), ev])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from initrepro.claims import Check, format_value

#: a run whose accuracy is at most chance + this is collapsed (it learned nothing usable)
COLLAPSE_TOLERANCE = 0.05


@dataclass
class Evidence:
    """Checks that decide (part of) a verdict, with a summary derived from the numbers."""

    checks: list[Check]
    summary: str
    measured: dict = field(default_factory=dict)


def collapsed(values, chance: float, tolerance: float = COLLAPSE_TOLERANCE) -> np.ndarray:
    """Boolean mask of collapsed runs: non-finite (diverged) or at most ``chance + tolerance``."""
    v = np.asarray(values, dtype=float)
    return ~np.isfinite(v) | (v <= chance + tolerance)


def seeds_needed(sd: float, distance: float, confidence: float = 0.95) -> int:
    """Seeds for a CI of half-width ``distance`` at the observed standard deviation ``sd``
    (normal approximation: n = (z sd / distance)^2, at least 2)."""
    if distance <= 0 or not math.isfinite(sd):
        return -1
    z = stats.norm.ppf(0.5 + confidence / 2)
    return max(2, math.ceil((z * sd / distance) ** 2))


def compare(a_name: str, a, b_name: str, b, *, margin: float, superior: bool = False,
            chance: float | None = None, tolerance: float = COLLAPSE_TOLERANCE,
            confidence: float = 0.95, higher_is_better: bool = True, unit: str = "") -> Evidence:
    """Is ``a`` at least as good as ``b`` (within ``margin``), or better by ``margin``?

    ``a`` and ``b`` are per-seed values paired by seed. The claim is ``a - b > -margin``
    (non-inferiority) or, with ``superior=True``, ``a - b > margin``; flip the sign of the
    difference with ``higher_is_better=False``. With ``chance`` set, pairs in which either run
    collapsed leave the difference and are counted instead: the claim also needs ``a`` to
    collapse no more often than ``b``. For "``a`` trains where ``b`` does not", leave ``chance``
    unset and pass ``superior=True``: there the collapse of ``b`` is the outcome compared.

    Checks: a precondition that the interval lies on one side of the margin (else
    *inconclusive*), and the claim check that its lower end clears the margin.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D and paired by seed, got shapes {a.shape} and {b.shape}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    sign = 1.0 if higher_is_better else -1.0
    threshold = margin if superior else -margin
    kept = np.ones(len(a), bool)
    checks, measured = [], {"margin": margin, "threshold": threshold, "n_seeds": len(a)}
    if chance is not None:
        ca, cb = collapsed(a, chance, tolerance), collapsed(b, chance, tolerance)
        kept = ~(ca | cb)
        na, nb = int(ca.sum()), int(cb.sum())
        # A difference in collapses decides the claim by itself when Fisher's exact test says it is
        # not chance (one-sided p < 0.05); more collapses of a that may be chance leave it undecided.
        p = stats.fisher_exact([[na, len(a) - na], [nb, len(b) - nb]],
                               alternative="greater" if na > nb else "less").pvalue if na != nb else 1.0
        measured.update({f"{a_name} collapsed": na, f"{b_name} collapsed": nb, "collapse_p": p})
        collapse = Check(f"{a_name} collapsed runs - {b_name} collapsed runs", na - nb, "<=", 0,
                         precondition=na > nb and p >= 0.05,
                         note=f"collapsed: diverged or accuracy <= chance {chance:g} + {tolerance:g}; "
                              f"Fisher one-sided p {p:.2g}")
        if p < 0.05:
            return Evidence([collapse], f"{a_name} collapsed in {na}/{len(a)} runs, {b_name} in {nb}/{len(b)} "
                                        f"(Fisher one-sided p {p:.2g})", measured)
        checks.append(collapse)
    d = sign * (a[kept] - b[kept])
    n = len(d)
    measured["n_pairs"] = n
    checks.append(Check(f"pairs where both {a_name} and {b_name} trained", n, ">=", 2, precondition=True))
    if n >= 2:
        mean, sd = float(d.mean()), float(d.std(ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n))
        low, high = mean - half, mean + half
    else:
        mean = float(d.mean()) if n else float("nan")
        sd, low, high = float("nan"), float("nan"), float("nan")
    sided = max(low - threshold, threshold - high)  # > 0: the interval lies on one side
    label = f"{a_name} - {b_name}{' ' + unit if unit else ''}"
    pct = f"{round(confidence * 100)}%"
    checks += [Check(f"distance of the {pct} CI of {label} from the margin (< 0: straddles)", sided, ">", 0.0,
                     precondition=True),
               Check(f"{pct} CI low of {label}", low, ">", threshold,
                     note=f"claim: {'better by' if superior else 'at least as good within'} {margin:g}")]
    measured.update({"mean_diff": mean, "ci_low": low, "ci_high": high, "sd_diff": sd})
    summary = (f"{label}: {format_value(mean)} ({pct} CI {format_value(low)} to {format_value(high)}, "
               f"{n} paired seeds) against {'+' if threshold > 0 else ''}{format_value(threshold)}")
    if chance is not None:
        summary += (f"; collapsed runs {a_name} {measured[f'{a_name} collapsed']}/{len(a)}, "
                    f"{b_name} {measured[f'{b_name} collapsed']}/{len(b)}")
    if n >= 2 and not sided > 0:
        need = seeds_needed(sd, abs(mean - threshold), confidence)
        measured["seeds_needed"] = need
        summary += (f"; the interval straddles the margin: about {need} seeds at this spread would decide"
                    if need > 0 else "; the mean sits on the margin: no number of seeds decides it")
    return Evidence(checks, summary, measured)


def positive_control(name: str, values, chance: float, min_gain: float = 2 * COLLAPSE_TOLERANCE) -> Evidence:
    """The reference ``name`` trains in this setup: its median accuracy over seeds is at least
    ``chance + min_gain``. A precondition: when it fails, the comparison is *inconclusive*."""
    v = np.asarray(values, dtype=float)
    med = float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")
    check = Check(f"{name} (positive control) median accuracy", med, ">=", chance + min_gain, precondition=True,
                  note=f"chance {chance:g}")
    trained = "trains" if check.passed else "does not train"
    return Evidence([check], f"positive control {name} {trained} here: median {format_value(med)} "
                             f"against chance {format_value(chance)} + {format_value(min_gain)}",
                    {f"{name} median": med})


def select_lr(lrs: Sequence[float], scores: np.ndarray, chance: float,
              tolerance: float = COLLAPSE_TOLERANCE) -> tuple[float, dict]:
    """The best learning rate at least one grid step below the edge of divergence.

    ``scores[i, j]`` is the validation accuracy of lr ``lrs[i]`` (ascending) and seed ``j``.
    The edge is the smallest lr at which any seed collapsed (above the lowest lr at which every
    seed trained: collapses below it are too slow training); candidates lie strictly below the
    lr just under it. Returns the lr (by mean score) and what decided it. When every lr
    collapses somewhere, the best mean wins and ``info["margin_from_edge"]`` is False.
    """
    lrs = list(lrs)
    if sorted(lrs) != lrs:
        raise ValueError(f"lrs must be ascending, got {lrs}")
    scores = np.asarray(scores, dtype=float).reshape(len(lrs), -1)
    bad = collapsed(scores, chance, tolerance).any(axis=1)
    # Collapses below the lowest lr at which every seed trained are too slow training, not divergence.
    first_ok = int(np.argmin(bad)) if not bad.all() else 0
    diverging = bad & (np.arange(len(lrs)) > first_ok)
    edge = int(np.argmax(diverging)) if diverging.any() else len(lrs)
    # no collapse anywhere: the whole grid is below the edge
    candidates = list(range(first_ok, edge - 1 if diverging.any() else edge))
    if not candidates:
        candidates = [i for i in range(len(lrs)) if not bad[i]] or list(range(len(lrs)))
    means = np.nan_to_num(scores.mean(axis=1), nan=-np.inf)
    best = max(candidates, key=lambda i: means[i])
    info = {"edge_lr": lrs[edge] if edge < len(lrs) else None, "margin_from_edge": best < edge - diverging.any(),
            "mean_score": dict(zip(map(str, lrs), scores.mean(axis=1).tolist()))}
    return lrs[best], info


def two_stage(name: str, screen: Sequence[float], confirm: Callable[[list[int]], Sequence[float]], *,
              alpha_screen: float = 0.01, alpha_confirm: float = 0.1, labels: Sequence[str] | None = None,
              precondition: bool = False) -> Evidence:
    """Two-sided z tests of ``k`` hypotheses that a true claim makes, fixed before the run.

    Stage 1 screens ``screen`` (k z-scores) at Bonferroni level ``alpha_screen / k``. Each test
    that fails is re-run by ``confirm(indices)`` on an independent sample and fails the claim
    only if it fails again at ``alpha_confirm / (number re-run)``. Under a true claim the two
    samples are independent, so the family-wise false-failure rate is at most
    ``alpha_screen * alpha_confirm``. With ``precondition=True`` the family checks that the
    experiment is valid (e.g. a sampler agrees with a reference): a confirmed failure makes
    the claim *inconclusive*.
    """
    z = np.asarray(screen, dtype=float)
    k = len(z)
    labels = list(labels) if labels is not None else [str(i) for i in range(k)]
    z1 = stats.norm.ppf(1 - alpha_screen / (2 * k))
    flagged = [i for i in range(k) if not abs(z[i]) <= z1]
    confirmed, z_confirm = [], {}
    if flagged:
        zc = np.asarray(confirm(flagged), dtype=float)
        z2 = stats.norm.ppf(1 - alpha_confirm / (2 * len(flagged)))
        z_confirm = {labels[i]: float(v) for i, v in zip(flagged, zc)}
        confirmed = [labels[i] for i, v in zip(flagged, zc) if not abs(v) <= z2]
    fwer = alpha_screen * alpha_confirm
    check = Check(f"{name}: tests failing screening and confirmation", len(confirmed), "<=", 0,
                  precondition=precondition, note=f"{k} tests; screen |z| <= {z1:.2f}, confirm on a fresh sample; false-failure rate <= {fwer:g}")
    summary = (f"{name}: max |z| {format_value(float(np.nanmax(np.abs(z))))} over {k} tests "
               f"(screen {z1:.2f}); {len(flagged)} re-run on a fresh sample, {len(confirmed)} confirmed"
               + (f" ({', '.join(confirmed)})" if confirmed else ""))
    return Evidence([check], summary, {"z": dict(zip(labels, z.tolist())), "z_confirm": z_confirm,
                                       "screen_z": float(z1), "confirmed": confirmed})


def speedup(name: str, slow_s: float, fast_s: float, min_ratio: float) -> Evidence:
    """A timing claim as a ratio of two timings made in the same run (never absolute seconds)."""
    ratio = slow_s / fast_s if fast_s > 0 else float("inf")
    return Evidence([Check(f"{name}: speedup", ratio, ">=", min_ratio)],
                    f"{name}: {format_value(ratio)}x faster ({format_value(slow_s)} s against {format_value(fast_s)} s, "
                    f"same run)", {"slow_s": slow_s, "fast_s": fast_s, "ratio": ratio})
