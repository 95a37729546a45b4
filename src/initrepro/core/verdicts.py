"""The verdict rules every stage applies (DESIGN.md, "Claim records").

Each rule turns measurements into :class:`Evidence`: the checks that decide a verdict (see
:func:`initrepro.core.claims.derive_verdict`), a one-sentence summary made from the numbers, and
the numbers themselves. A stage passes evidence to ``StageRecord.claim`` next to plain checks.
The rules treat every arm alike and never drop a run.

- :func:`compare`: a paired difference across seeds against a margin registered before the
  run, over *all* runs (a collapsed run keeps its accuracy). *reproduced* when the 95% CI
  lies on the claim's side of the margin, *not reproduced* when it lies on the other side,
  *inconclusive* when it straddles the margin or when fewer than :data:`MIN_PAIRS` pairs were
  run (the summary then says how many seeds would decide at 80% power). The spread has a
  floor, the binomial sd of an accuracy difference on the test set, so that identical runs
  cannot produce a zero-width interval; without a floor, a zero spread decides nothing.
- :func:`positive_control`: the reference must train in the same setup (NaN runs did not
  train), else a comparison with it decides nothing (*inconclusive*).
- :func:`collapsed`: diverged or chance-level runs, counted and reported, never removed.
- :func:`select_lr`: one rule for every arm: the best mean validation score among the
  learning rates of a fine grid at which no search seed collapsed, away from the grid's ends.
- :func:`two_stage`: many tests of one claim on two independent samples, pooled, at a
  family-wise false-failure rate of 0.1%.
- :func:`speedup`: timing claims as the median ratio of alternating repeats of two timings.

Example::

    ev = compare("RISOTTO", acc_risotto, "Fixup", acc_fixup, margin=0.01, n_test=10000)
    record.claim("risotto.beats_fixup_skipinit", [positive_control("Fixup", acc_fixup, 0.1), ev])
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from scipy import integrate, optimize, stats
from statsmodels.stats.power import TTestPower

from initrepro.core.claims import Check, format_value

#: a run whose accuracy is at most chance + this is collapsed (it learned nothing usable)
COLLAPSE_TOLERANCE = 0.05
#: fewer paired seeds than this decide nothing: a t interval on 2-4 seeds is too wide to mean much
MIN_PAIRS = 5
#: the power every design plans for, and the power at which "seeds needed" is stated
POWER = 0.8
#: search seeds below this cannot tell a stable learning rate from a lucky one
MIN_SEARCH_SEEDS = 3
#: the coarsest learning-rate grid (ratio of neighbours) the search accepts: a factor 2 or 3
#: (a 1-3-10 grid steps by up to 3.33)
MAX_GRID_FACTOR = 3.4
#: the family-wise false-failure rate of theory checks
FAMILY_ALPHA = 0.001
#: timing claims need at least this many alternating repeats
MIN_REPEATS = 5


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


def binomial_sd(p: float, n_test: int) -> float:
    """The sd of a difference of two accuracies near ``p`` measured on ``n_test`` test images,
    from test-set sampling alone: sqrt(2 p (1 - p) / n_test)."""
    p = min(max(float(p), 0.0), 1.0)
    return math.sqrt(2 * p * (1 - p) / n_test)


#: beyond this many seeds, "would decide" is no practical number (seeds_needed returns -1)
MAX_SEEDS = 10_000


def seeds_needed(sd: float, distance: float, power: float = POWER, confidence: float = 0.95) -> int:
    """Paired seeds for a one-sided t test at level ``(1 - confidence) / 2`` to find a true mean
    ``distance`` away from the margin with probability ``power``, at standard deviation ``sd``
    (statsmodels' ``TTestPower``: the noncentral t, not the normal approximation); -1 when no
    practical number of seeds would (``distance <= 0``, a non-finite spread, or more than
    :data:`MAX_SEEDS`)."""
    if not (distance > 0 and math.isfinite(sd) and math.isfinite(distance)):
        return -1
    if sd <= 0:
        return MIN_PAIRS
    effect, alpha = distance / sd, (1 - confidence) / 2
    if TTestPower().power(effect_size=effect, nobs=MIN_PAIRS, alpha=alpha, alternative="larger") >= power:
        return MIN_PAIRS  # also where the solver fails on huge effects
    n = TTestPower().solve_power(effect_size=effect, alpha=alpha, power=power, alternative="larger")
    n = max(MIN_PAIRS, math.ceil(float(np.squeeze(n))))
    return n if n <= MAX_SEEDS else -1


def compare(a_name: str, a, b_name: str, b, *, margin: float, superior: bool = False,
            chance: float | None = None, tolerance: float = COLLAPSE_TOLERANCE, n_test: int | None = None,
            bounds: tuple[float, float] | None = None, confidence: float = 0.95,
            higher_is_better: bool = True, unit: str = "", paper_precision: str = "",
            collapse_alternative: str | None = None, planned_n: int | None = None) -> Evidence:
    """Is ``a`` at least as good as ``b`` within ``margin`` (non-inferiority, "on par"), or,
    with ``superior=True``, better by more than ``margin`` (superiority, "outperforms")?

    ``a`` and ``b`` are per-seed values paired by seed; every run counts, a collapsed one with
    its own (near-chance) accuracy. A non-finite value is a diverged run: it scores ``chance``
    when that is given, else the comparison is *inconclusive*. The difference ``d`` is
    ``a - b`` (``b - a`` with ``higher_is_better=False``), and the claim is the lower end of its
    95% t interval above ``-margin`` (or ``+margin``).

    - ``n_test``: the number of items a proportion is counted over (test images for an
      accuracy, weights for a fraction of weights); the sd of ``d`` is then at least
      :func:`binomial_sd` of the mean proportion, so identical runs give no zero-width interval.
      Without it, a zero spread decides nothing (*inconclusive*).
    - ``bounds``: the range of one value (``(0, 1)`` for an accuracy); the interval is clipped
      to the range of a difference.
    - ``collapse_alternative``: ``"less"`` when the claim says ``a`` collapses less often than
      ``b`` (``"greater"`` the other way); Fisher's exact p on that fixed side is reported as
      context. Collapse counts never decide by themselves.
    - ``paper_precision``: the paper's own precision or gap, shown next to the margin.
    - ``planned_n``: the seeds that the registered power calculation needs (80% at the
      margin); fewer run leave the comparison *inconclusive*, whatever this draw's interval
      says, so that an underpowered design cannot decide by luck of one kernel path or seed set.

    Checks: preconditions that at least :data:`MIN_PAIRS` pairs were run, that every value is
    finite or has a chance level, and that the interval lies on one side of the margin (else
    *inconclusive*, with the seeds that would decide); the claim check on the interval's low end.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D and paired by seed, got shapes {a.shape} and {b.shape}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if collapse_alternative not in (None, "less", "greater"):
        raise ValueError(f"collapse_alternative must be None, 'less' or 'greater', got {collapse_alternative!r}")
    if n_test is not None and n_test < 1:
        raise ValueError(f"n_test must be >= 1, got {n_test}")
    sign = 1.0 if higher_is_better else -1.0
    threshold = margin if superior else -margin
    label = (f"{a_name} - {b_name}" if higher_is_better else f"{b_name} - {a_name}") + (f" {unit}" if unit else "")
    n = len(a)
    measured = {"margin": margin, "threshold": threshold, "n_seeds": n, "n_pairs": n}
    diverged = int((~np.isfinite(a)).sum() + (~np.isfinite(b)).sum())
    checks = [Check(f"paired seeds of {a_name} and {b_name}", n, ">=", MIN_PAIRS, precondition=True,
                    note=f"fewer than {MIN_PAIRS} pairs decide nothing")]
    if planned_n is not None:
        checks.append(Check(f"seeds run against the {planned_n} that 80% power at the margin needs", n, ">=",
                            planned_n, precondition=True, note="from the registered power calculation"))
    if diverged and chance is None:
        checks.append(Check("non-finite values without a chance level", diverged, "<=", 0, precondition=True))
    if chance is not None:
        a, b = np.where(np.isfinite(a), a, chance), np.where(np.isfinite(b), b, chance)
        ca, cb = collapsed(a, chance, tolerance), collapsed(b, chance, tolerance)
        measured.update({f"{a_name} collapsed": int(ca.sum()), f"{b_name} collapsed": int(cb.sum()),
                         "diverged": diverged})
        if collapse_alternative is not None:
            table = [[int(ca.sum()), n - int(ca.sum())], [int(cb.sum()), n - int(cb.sum())]]
            measured["collapse_p"] = float(stats.fisher_exact(table, alternative=collapse_alternative).pvalue)
    d = sign * (a - b)
    finite = d[np.isfinite(d)]
    mean = float(finite.mean()) if len(finite) else float("nan")
    sd = float(finite.std(ddof=1)) if len(finite) >= 2 else float("nan")
    floor = binomial_sd((np.nanmean(a) + np.nanmean(b)) / 2, n_test) if n_test else 0.0
    sd_used = max(sd, floor) if math.isfinite(sd) else sd
    if n >= 2 and math.isfinite(sd_used):
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * sd_used / math.sqrt(n))
        low, high = mean - half, mean + half
    else:
        low, high = float("nan"), float("nan")
    if bounds is not None:
        span = float(bounds[1] - bounds[0])
        low, high = max(low, -span), min(high, span)
    sided = max(low - threshold, threshold - high)  # > 0: the interval lies on one side
    pct = f"{round(confidence * 100)}%"
    kind = "superiority: better by more than" if superior else "non-inferiority: at least as good within"
    note = f"{kind} {margin:g}" + (f"; the paper's own precision: {paper_precision}" if paper_precision else "")
    if n >= 2:
        # identical differences and no test-set floor: a zero-width interval would decide on nothing
        checks.append(Check(f"sd of {label} (0: a zero-width interval; an accuracy passes n_test for a floor)",
                            sd_used, ">", 0.0, precondition=True))
    checks += [Check(f"distance of the {pct} CI of {label} from the margin (< 0: straddles)", sided, ">", 0.0,
                     precondition=True),
               Check(f"{pct} CI low of {label}", low, ">", threshold, note=note)]
    measured.update({"mean_diff": mean, "ci_low": low, "ci_high": high, "sd_diff": sd, "sd_floor": floor})
    summary = (f"{label}: {format_value(mean)} ({pct} CI {format_value(low)} to {format_value(high)}, "
               f"{n} paired seeds) against {'+' if threshold > 0 else ''}{format_value(threshold)}")
    if floor > (sd if math.isfinite(sd) else 0):
        summary += f" (sd floored at the test-set binomial sd {format_value(floor)})"
    if chance is not None:
        summary += (f"; collapsed runs {a_name} {measured[f'{a_name} collapsed']}/{n}, "
                    f"{b_name} {measured[f'{b_name} collapsed']}/{n}")
        if "collapse_p" in measured:
            summary += f" (Fisher {collapse_alternative}-sided p {format_value(measured['collapse_p'])})"
    if n < MIN_PAIRS:
        summary += f"; {n} pairs are fewer than the {MIN_PAIRS} a comparison needs"
    elif sd_used == 0:
        summary += "; every pair differs by the same amount and no floor was given: the spread is unknown"
    elif not sided > 0:
        need = seeds_needed(sd_used, abs(mean - threshold), confidence=confidence)
        measured["seeds_needed"] = need
        summary += (f"; the interval straddles the margin: about {need} seeds would decide at {POWER:.0%} power "
                    f"at this spread and difference" if need > 0
                    else f"; the mean sits (almost) on the margin: no practical number of seeds (at most "
                         f"{MAX_SEEDS}) decides it at this spread")
    return Evidence(checks, summary, measured)


def with_control(control: Evidence, evidence: Evidence) -> Evidence:
    """``evidence`` whose comparison also needs ``control`` (e.g. :func:`positive_control` of the
    reference in that comparison's own setup): the control's checks become preconditions of
    this comparison alone, so a control that fails there leaves this part *inconclusive* and
    the claim's other parts still decide."""
    return Evidence(control.checks + evidence.checks, f"{control.summary}; {evidence.summary}",
                    {**control.measured, **evidence.measured})


def positive_control(name: str, values, chance: float, min_gain: float = 2 * COLLAPSE_TOLERANCE) -> Evidence:
    """The reference ``name`` trains in this setup: its median accuracy over seeds, a NaN run
    counting as not trained, is at least ``chance + min_gain``. A precondition: when it fails,
    the comparison is *inconclusive*."""
    v = np.asarray(values, dtype=float)
    med = float(np.median(np.where(np.isfinite(v), v, -np.inf))) if v.size else float("nan")
    med = med if math.isfinite(med) else float("nan")
    check = Check(f"{name} (positive control) median accuracy", med, ">=", chance + min_gain, precondition=True,
                  note=f"chance {chance:g}; a diverged run counts as not trained")
    trained = "trains" if check.passed else "does not train"
    return Evidence([check], f"positive control {name} {trained} here: median {format_value(med)} over "
                             f"{v.size} runs against chance {format_value(chance)} + {format_value(min_gain)}",
                    {f"{name} median": med})


@dataclass
class LrChoice:
    """What :func:`select_lr` chose for one arm, and why."""

    lr: float | None
    lrs: list[float]
    mean_score: list[float]
    stable: list[bool]
    evidence: Evidence


def select_lr(lrs: Sequence[float], scores, chance: float, *, name: str = "",
              extend: Callable[[float], Sequence[float]] | None = None, max_extensions: int = 3,
              tolerance: float = COLLAPSE_TOLERANCE) -> LrChoice:
    """One rule for every arm: the learning rate of the best mean validation score among those
    at which no search seed collapsed.

    ``scores[i, j]`` is the validation accuracy of ``lrs[i]`` (ascending, neighbours at most a
    factor :data:`MAX_GRID_FACTOR` apart) and search seed ``j`` (at least
    :data:`MIN_SEARCH_SEEDS`). When the best stable lr is an end of the grid, ``extend(lr)``
    (the search seeds' scores at a new lr) extends the grid past that end by the same factor,
    up to ``max_extensions`` times. The evidence holds two preconditions: some lr is stable,
    and the chosen lr lies inside the grid (else the optimum may lie outside it, and a
    comparison at it would not be fair to this arm).

        >>> select_lr([0.01, 0.03, 0.1], [[.5, .5, .5], [.8, .7, .9], [.1, .9, .9]], 0.1).lr
        0.03
    """
    lrs = [float(x) for x in lrs]
    scores = [list(map(float, row)) for row in np.asarray(scores, dtype=float).reshape(len(lrs), -1)]
    if len(lrs) < 3:
        raise ValueError(f"lrs must hold at least 3 learning rates, got {lrs}")
    if any(x <= 0 for x in lrs) or sorted(set(lrs)) != lrs:
        raise ValueError(f"lrs must be positive and strictly ascending, got {lrs}")
    factors = [hi / lo for lo, hi in zip(lrs, lrs[1:])]
    if max(factors) > MAX_GRID_FACTOR:
        raise ValueError(f"lrs must step by a factor of at most {MAX_GRID_FACTOR} (2 or 3), got {lrs}")
    if len(scores[0]) < MIN_SEARCH_SEEDS:
        raise ValueError(f"scores must hold at least {MIN_SEARCH_SEEDS} search seeds per lr, got {len(scores[0])}")
    extensions = 0
    while True:
        stable = [not collapsed(row, chance, tolerance).any() for row in scores]
        means = [float(np.mean(row)) for row in scores]
        best = max((i for i in range(len(lrs)) if stable[i]), key=lambda i: means[i], default=None)
        at_end = best is not None and best in (0, len(lrs) - 1)
        if not (at_end and extend is not None and extensions < max_extensions):
            break
        new = lrs[0] / factors[0] if best == 0 else lrs[-1] * factors[-1]
        row = list(map(float, extend(new)))
        lrs, scores = ([new] + lrs, [row] + scores) if best == 0 else (lrs + [new], scores + [row])
        factors = [hi / lo for lo, hi in zip(lrs, lrs[1:])]
        extensions += 1
    who = f"{name}: " if name else ""
    lr = lrs[best] if best is not None else None
    checks = [Check(f"{who}learning rates of the grid at which no search seed collapsed", sum(stable), ">=", 1,
                    precondition=True, note=f"grid {lrs}; {len(scores[0])} search seeds"),
              Check(f"{who}selected lr {format_value(lr)} lies inside the grid (1 yes, 0 at an end)",
                    int(best is not None and not at_end), ">=", 1, precondition=True,
                    note="at an end the best lr may lie outside the grid")]
    summary = (f"{who}lr {format_value(lr)} (best mean validation score {format_value(means[best])} among "
               f"{sum(stable)} of {len(lrs)} lrs with no collapsed search seed)" if best is not None
               else f"{who}no lr of {lrs} trained every search seed")
    return LrChoice(lr, lrs, means, stable,
                    Evidence(checks, summary, {"lr": lr, "grid": lrs, "mean_score": means, "stable": stable}))


@lru_cache(maxsize=64)
def pooled_critical_value(alpha: float, k: int, df: float | None = None, one_sided: bool = False) -> float:
    """Critical value of the pooled score (z1 + z2) / sqrt(2) at level ``alpha / k`` (two-sided,
    or upper tail with ``one_sided``), for two independent scores that are standard normal
    (``df=None``) or Student t with ``df`` degrees of freedom (the density of the sum is then
    integrated numerically)."""
    level = alpha / k if one_sided else alpha / (2 * k)
    if df is None or math.isinf(df):
        return float(stats.norm.isf(level))
    t = stats.t(df)

    def tail(c):  # P(T1 + T2 > c sqrt 2)
        return integrate.quad(lambda x: t.pdf(x) * t.sf(c * math.sqrt(2) - x), -np.inf, np.inf, limit=200)[0] - level

    return float(optimize.brentq(tail, 0.5, 50.0, xtol=1e-6))


def pooled_failures(z1, z2, *, alpha: float = FAMILY_ALPHA, df: float | None = None,
                    one_sided: bool = False) -> np.ndarray:
    """Which tests of a family fail the pooled test: ``|z1 + z2| / sqrt 2`` (or its upper tail)
    above :func:`pooled_critical_value` at ``alpha / k``, ``k`` the last axis. NaN fails.
    Vectorized over leading axes (families), so simulations test this very function."""
    z1, z2 = np.asarray(z1, dtype=float), np.asarray(z2, dtype=float)
    pooled = (z1 + z2) / math.sqrt(2)
    crit = pooled_critical_value(alpha, z1.shape[-1], df, one_sided)
    return ~((pooled if one_sided else np.abs(pooled)) <= crit)


def two_stage(name: str, screen: Sequence[float], confirm: Callable[[list[int]], Sequence[float]] | Sequence[float],
              *, alpha: float = FAMILY_ALPHA, df: float | None = None, one_sided: bool = False,
              labels: Sequence[str] | None = None, precondition: bool = False) -> Evidence:
    """``k`` tests that a true claim passes, each on two independent samples, pooled.

    ``screen`` holds the ``k`` scores of the first sample, ``confirm`` those of the second (or a
    function of the indices that computes them). Each test pools them, ``(z1 + z2) / sqrt 2``,
    and fails when that exceeds the Bonferroni critical value at ``alpha / k``: under a true
    claim the family fails with probability at most ``alpha`` (0.1%). Scores must be standard
    normal under the claim (large-sample means and counts); scores that are t with ``df``
    degrees of freedom pass ``df`` (at ``df=10`` the critical value of 10 tests rises from 3.89
    to 5.42). Scores with one bad tail, such as a goodness-of-fit p-value as
    ``norm.isf(p)``, pass ``one_sided=True``: never fold them into ``|z|``. Pooling both samples
    has about twice the power of screening one and confirming on the other at the same rate:
    64% against 35% for one test 3 se off among 10, 36% against 17% at 2.5 se
    (``tests/test_verdicts.py`` simulates both rates through :func:`pooled_failures`). With
    ``precondition=True`` the family checks that the experiment is valid (e.g. a sampler agrees
    with a reference): a failure makes the claim *inconclusive*.
    """
    z1 = np.asarray(screen, dtype=float)
    k = len(z1)
    labels = list(labels) if labels is not None else [str(i) for i in range(k)]
    z2 = np.asarray(confirm(list(range(k))) if callable(confirm) else confirm, dtype=float)
    if z2.shape != z1.shape or len(labels) != k or k == 0:
        raise ValueError(f"screen, confirm and labels must hold the same k >= 1 scores, got {z1.shape}, "
                         f"{z2.shape}, {len(labels)}")
    pooled = (z1 + z2) / math.sqrt(2)
    crit = pooled_critical_value(alpha, k, df, one_sided)
    failed = [labels[i] for i in np.flatnonzero(pooled_failures(z1, z2, alpha=alpha, df=df, one_sided=one_sided))]
    side = "z" if one_sided else "|z|"
    check = Check(f"{name}: tests failing the pooled test", len(failed), "<=", 0, precondition=precondition,
                  note=f"{k} tests, each on two independent samples pooled; {side} <= {crit:.2f} "
                       f"(Bonferroni, family-wise false-failure rate <= {alpha:g})")
    worst = float(np.nanmax(pooled if one_sided else np.abs(pooled))) if np.isfinite(pooled).any() else float("nan")
    summary = (f"{name}: max pooled {side} {format_value(worst)} over {k} tests against {crit:.2f}; "
               f"{len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""))
    return Evidence([check], summary, {"z": dict(zip(labels, z1.tolist())), "z_confirm": dict(zip(labels, z2.tolist())),
                                       "z_pooled": dict(zip(labels, pooled.tolist())), "critical_z": crit,
                                       "failed": failed})


def alternating_timings(slow: Callable[[], object], fast: Callable[[], object], repeats: int = MIN_REPEATS,
                        timer: Callable[[], float] = time.perf_counter) -> tuple[list[float], list[float]]:
    """Time ``slow`` and ``fast`` in alternation, ``repeats`` times each (after one warm-up call
    of each), so that drifts of the machine hit both alike."""
    slow(), fast()
    slow_s, fast_s = [], []
    for _ in range(repeats):
        for fn, out in ((slow, slow_s), (fast, fast_s)):
            start = timer()
            fn()
            out.append(timer() - start)
    return slow_s, fast_s


def speedup(name: str, slow_s: Sequence[float], fast_s: Sequence[float], min_ratio: float) -> Evidence:
    """A timing claim: the median ratio of ``slow_s[i] / fast_s[i]`` over at least
    :data:`MIN_REPEATS` alternating repeats (see :func:`alternating_timings`) is at least
    ``min_ratio``. Never absolute seconds; the spread of the ratios is recorded."""
    slow, fast = np.atleast_1d(np.asarray(slow_s, dtype=float)), np.atleast_1d(np.asarray(fast_s, dtype=float))
    if slow.shape != fast.shape or len(slow) < MIN_REPEATS:
        raise ValueError(f"slow_s and fast_s must hold the same number (>= {MIN_REPEATS}) of alternating repeats, "
                         f"got {slow.shape} and {fast.shape}")
    if not (np.isfinite(slow).all() and np.isfinite(fast).all() and (slow > 0).all() and (fast > 0).all()):
        raise ValueError(f"timings must be positive and finite, got {slow.tolist()} and {fast.tolist()}")
    ratios = slow / fast
    ratio, lo, hi = float(np.median(ratios)), float(ratios.min()), float(ratios.max())
    return Evidence([Check(f"{name}: median speedup over {len(ratios)} alternating repeats", ratio, ">=", min_ratio,
                           note=f"ratios from {lo:.3g} to {hi:.3g}")],
                    f"{name}: {format_value(ratio)}x faster (median of {len(ratios)} alternating repeats, ratios "
                    f"{format_value(lo)} to {format_value(hi)}; median {format_value(float(np.median(slow)))} s "
                    f"against {format_value(float(np.median(fast)))} s)",
                    {"slow_s": slow.tolist(), "fast_s": fast.tolist(), "ratio": ratio, "ratio_min": lo, "ratio_max": hi})
