"""The shared verdict rules: three-way comparisons over all runs, positive controls, collapsed
runs, one lr-selection rule for every arm, the pooled family-wise design, timing ratios,
derived reasons, registered designs."""

import math

import numpy as np
import pytest
from scipy import stats

from initrepro.core.claims import Check, StageRecord, derive_verdict, environment
from initrepro.core.designs import design_hash
from initrepro.core.seeding import STRIDE, shift
from initrepro.core.verdicts import (FAMILY_ALPHA, MIN_PAIRS, alternating_timings, binomial_sd, collapsed, compare,
                                pooled_critical_value, pooled_failures, positive_control, seeds_needed, select_lr,
                                speedup, two_stage)


def verdict(evidence):
    return derive_verdict(evidence.checks)


# --- compare -------------------------------------------------------------------------------

def test_compare_is_three_way():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.8, 0.9, 10)
    assert verdict(compare("A", b + 0.05, "B", b + rng.normal(0, 0.001, 10), margin=0.01)) == "reproduced"
    assert verdict(compare("A", b - 0.05, "B", b + rng.normal(0, 0.001, 10), margin=0.01)) == "not_reproduced"
    wide = compare("A", b + rng.normal(0, 0.05, 10), "B", b, margin=0.01)
    assert verdict(wide) == "inconclusive"
    assert "seeds would decide at 80% power" in wide.summary and wide.measured["seeds_needed"] > 10


def test_compare_superiority_needs_the_margin():
    b = np.array([0.5, 0.52, 0.51, 0.49, 0.5])
    a = b + np.array([0.02, 0.021, 0.019, 0.02, 0.02])
    assert verdict(compare("A", a, "B", b, margin=0.01)) == "reproduced"
    assert verdict(compare("A", a, "B", b, margin=0.05, superior=True)) == "not_reproduced"
    assert "superiority" in compare("A", a, "B", b, margin=0.05, superior=True).checks[-1].note


def test_compare_lower_is_better_labels_the_sign_it_computes():
    a, b = np.array([1.0, 1.1, 0.9, 1.0, 1.05]), np.array([2.0, 2.1, 2.05, 2.0, 1.95])
    ev = compare("A", a, "B", b, margin=0.1, higher_is_better=False)
    assert verdict(ev) == "reproduced"
    assert ev.measured["mean_diff"] > 0 and ev.summary.startswith("B - A: ")


@pytest.mark.parametrize("n", [1, 2, 4])
def test_compare_fewer_than_five_pairs_is_inconclusive(n):
    a, b = np.full(n, 0.9), np.full(n, 0.5)  # identical differences: zero spread
    ev = compare("A", a, "B", b, margin=0.01, n_test=360)
    assert verdict(ev) == "inconclusive"
    assert f"{n} pairs are fewer than the {MIN_PAIRS}" in ev.summary


def test_compare_zero_spread_is_floored_by_the_test_set():
    a, b = np.full(6, 0.95), np.full(6, 0.94)
    no_floor = compare("A", a, "B", b, margin=0.0, superior=True)
    assert no_floor.measured["ci_low"] == no_floor.measured["ci_high"]  # what a zero-width interval would claim
    assert verdict(no_floor) == "inconclusive" and "spread is unknown" in no_floor.summary
    # not only accuracies: a constant difference of any measure decides nothing without a floor
    worse = compare("A", np.full(6, 1.0), "B", np.full(6, 2.0), margin=0.1)
    assert verdict(worse) == "inconclusive"
    ev = compare("A", a, "B", b, margin=0.0, superior=True, n_test=360)
    assert ev.measured["sd_floor"] == pytest.approx(binomial_sd(0.945, 360))
    assert verdict(ev) == "inconclusive" and ev.measured["ci_low"] < 0 < ev.measured["ci_high"]
    assert "floored" in ev.summary


def test_compare_interval_respects_the_bounds():
    a, b = np.array([1.0, 1.0, 0.1, 1.0, 1.0]), np.array([0.0, 0.0, 0.9, 0.0, 0.0])
    ev = compare("A", a, "B", b, margin=0.0, bounds=(0, 1))
    assert -1 <= ev.measured["ci_low"] and ev.measured["ci_high"] <= 1


def test_compare_keeps_collapsed_runs_with_their_accuracy():
    a = np.array([0.95, 0.10, 0.96, np.nan, 0.95, 0.94])
    b = np.array([0.94, 0.93, 0.95, 0.94, 0.95, 0.94])
    assert collapsed(a, chance=0.1).tolist() == [False, True, False, True, False, False]
    ev = compare("A", a, "B", b, margin=0.01, chance=0.1)
    assert ev.measured["n_pairs"] == 6 and ev.measured["A collapsed"] == 2 and ev.measured["diverged"] == 1
    # the diverged run scores chance, the collapsed one keeps 0.10: both pull the mean down
    assert ev.measured["mean_diff"] == pytest.approx(np.mean([0.01, -0.83, 0.01, -0.84, 0.0, 0.0]))
    assert "collapsed runs A 2/6, B 0/6" in ev.summary


def test_compare_all_collapsed_still_compares_accuracy():
    a6, b6 = np.full(6, 0.1), np.array([0.95, 0.94, 0.96, 0.95, 0.93, 0.95])
    ev = compare("A", a6, "B", b6, margin=0.01, chance=0.1)
    assert verdict(ev) == "not_reproduced" and "ci_low" in ev.measured  # decided by accuracy, not an early exit
    assert verdict(compare("A", b6, "B", a6, margin=0.01, chance=0.1)) == "reproduced"


def test_compare_collapse_difference_never_hides_accuracy():
    # SkipInit beat RISOTTO by 0.6 on every seed where it trained (issue 12): all runs count.
    risotto = np.array([0.3, 0.32, 0.31, 0.1, 0.1, 0.29])
    skipinit = np.array([0.9, 0.92, 0.91, 0.93, 0.91, 0.1])
    ev = compare("RISOTTO", risotto, "SkipInit", skipinit, margin=0.02, chance=0.1, collapse_alternative="less")
    assert verdict(ev) == "not_reproduced"
    assert ev.measured["collapse_p"] == pytest.approx(
        stats.fisher_exact([[2, 4], [1, 5]], alternative="less").pvalue)  # side fixed by the claim


def test_compare_nan_without_chance_is_inconclusive():
    a = np.array([0.9, np.nan, 0.9, 0.9, 0.9])
    assert verdict(compare("A", a, "B", np.full(5, 0.5), margin=0.01)) == "inconclusive"


def test_compare_rejects_bad_arguments():
    with pytest.raises(ValueError, match="paired"):
        compare("A", [1, 2, 3], "B", [1, 2], margin=0.1)
    with pytest.raises(ValueError, match="margin"):
        compare("A", [1, 2], "B", [1, 2], margin=-1)
    with pytest.raises(ValueError, match="margin"):
        compare("A", [1, 2], "B", [1, 2], margin=float("nan"))
    with pytest.raises(ValueError, match="collapse_alternative"):
        compare("A", [1, 2], "B", [1, 2], margin=0.1, collapse_alternative="two-sided")


def test_seeds_needed_survives_huge_effects():
    assert seeds_needed(0.049, 0.639) == seeds_needed(0.01, 0.5) == MIN_PAIRS


def test_seeds_needed_uses_t_and_power():
    assert seeds_needed(0.1, 0.05) > seeds_needed(0.05, 0.05) >= MIN_PAIRS
    assert seeds_needed(0.1, 0.0) == -1 and seeds_needed(float("nan"), 0.1) == -1
    n = seeds_needed(1.0, 1.0)  # effect size 1: the normal approximation says 8, t needs more
    t_power = 1 - stats.nct.cdf(stats.t.ppf(0.975, n - 1), n - 1, math.sqrt(n))
    assert t_power >= 0.8 and n > math.ceil((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2)


# --- positive control ----------------------------------------------------------------------

def test_positive_control_makes_a_comparison_inconclusive():
    control = positive_control("ref", [0.11, 0.1, 0.12, 0.1, 0.1], chance=0.1)
    ev = compare("A", [0.5, 0.6, 0.55, 0.5, 0.6], "ref", [0.11, 0.1, 0.12, 0.1, 0.1], margin=0.01)
    assert derive_verdict(control.checks + ev.checks) == "inconclusive"


def test_positive_control_counts_nan_as_not_trained():
    assert verdict(positive_control("ref", [np.nan, np.nan, np.nan, 0.9], chance=0.1)) == "inconclusive"
    assert verdict(positive_control("ref", [np.nan, 0.9, 0.9, 0.9], chance=0.1)) == "reproduced"
    assert verdict(positive_control("ref", [], chance=0.1)) == "inconclusive"


# --- select_lr -----------------------------------------------------------------------------

LRS = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3]


def test_select_lr_treats_every_arm_alike_on_the_risotto_numbers():
    # issue 12: the old rule forced RISOTTO to 0.001 (0.25, 0.21) although 0.003 scored 0.80, 0.76
    risotto = [[.25, .21, .24], [.80, .76, .79], [.70, .72, .09], [.08, .96, .50], [.1, .1, .1], [.1, .1, .1]]
    fixup = [[.30, .31, .29], [.60, .62, .61], [.85, .84, .86], [.90, .88, .10], [.1, .1, .1], [.1, .1, .1]]
    r, f = select_lr(LRS, risotto, 0.1, name="RISOTTO"), select_lr(LRS, fixup, 0.1, name="Fixup")
    assert (r.lr, f.lr) == (0.003, 0.01)  # each the best stable mean: one rule, no step back from an edge
    assert verdict(r.evidence) == verdict(f.evidence) == "reproduced"
    assert "no search seed collapsed" in r.evidence.checks[0].name


def test_select_lr_extends_the_grid_past_an_end():
    scores = [[.5, .5, .5], [.6, .6, .6], [.7, .7, .7]]
    seen = []

    def extend(lr):
        seen.append(lr)
        return [.8, .8, .8] if lr < 0.3 else [.1, .1, .1]

    choice = select_lr([0.01, 0.03, 0.09], scores, 0.1, extend=extend)
    assert seen == pytest.approx([0.27, 0.81]) and choice.lr == pytest.approx(0.27)
    assert verdict(choice.evidence) == "reproduced"
    stuck = select_lr([0.01, 0.03, 0.09], scores, 0.1)  # no extension: the best is the grid's end
    assert stuck.lr == 0.09 and verdict(stuck.evidence) == "inconclusive"


def test_select_lr_stops_extending_after_max_extensions_and_scores_every_lr():
    calls = []

    def extend(lr):
        calls.append(lr)
        return [.9 + len(calls) / 100] * 3  # always better further down: the end never moves inside

    choice = select_lr([0.01, 0.02, 0.04], [[.8] * 3, [.5] * 3, [.4] * 3], 0.1, extend=extend, max_extensions=3)
    assert len(calls) == 3 and len(choice.lrs) == len(choice.mean_score) == 6
    assert choice.lr == choice.lrs[0] and verdict(choice.evidence) == "inconclusive"


def test_select_lr_with_no_stable_lr_is_inconclusive():
    choice = select_lr([0.01, 0.03, 0.1], np.full((3, 3), 0.1), 0.1)
    assert choice.lr is None and verdict(choice.evidence) == "inconclusive"
    nan = select_lr([0.01, 0.03, 0.1], [[np.nan, .9, .9], [.9, .9, np.nan], [.9, np.nan, .9]], 0.1)
    assert nan.lr is None


def test_select_lr_rejects_weak_searches():
    with pytest.raises(ValueError, match="3 search seeds"):
        select_lr(LRS[:3], np.ones((3, 2)), 0.1)
    with pytest.raises(ValueError, match="factor"):
        select_lr([0.001, 0.01, 0.1], np.ones((3, 3)), 0.1)
    with pytest.raises(ValueError, match="ascending"):
        select_lr([0.1, 0.03, 0.01], np.ones((3, 3)), 0.1)
    with pytest.raises(ValueError, match="at least 3"):
        select_lr([0.01, 0.03], np.ones((2, 3)), 0.1)


# --- the pooled family-wise design -----------------------------------------------------------

def _old_two_stage_fails(z1, z2, alpha_screen=0.01, alpha_confirm=0.1):
    """The screen-then-confirm design this rule replaced, vectorized over families (reference)."""
    k = z1.shape[1]
    flagged = np.abs(z1) > stats.norm.isf(alpha_screen / (2 * k))
    n_flag = np.maximum(flagged.sum(axis=1, keepdims=True), 1)
    return (flagged & (np.abs(z2) > stats.norm.isf(alpha_confirm / (2 * n_flag)))).any(axis=1)


@pytest.mark.parametrize("df", [None, 10])
def test_two_stage_false_failure_rate_is_at_most_a_tenth_of_a_percent(df):
    rng, n, k = np.random.default_rng(0), 1_000_000, 10
    draw = (lambda: rng.standard_normal((n, k))) if df is None else (lambda: rng.standard_t(df, (n, k)))
    rate = pooled_failures(draw(), draw(), df=df).any(axis=1).mean()
    assert rate <= FAMILY_ALPHA + 2 * math.sqrt(FAMILY_ALPHA / n), rate  # Bonferroni: 0.09996% exactly


def test_two_stage_one_sided_keeps_its_rate_on_goodness_of_fit_p_values():
    # a KS p-value is uniform under the claim; norm.isf(p) is then N(0, 1) with one bad tail
    rng, n, k = np.random.default_rng(2), 1_000_000, 6
    z1, z2 = stats.norm.isf(rng.uniform(size=(n, k))), stats.norm.isf(rng.uniform(size=(n, k)))
    assert pooled_failures(z1, z2, one_sided=True).any(axis=1).mean() <= FAMILY_ALPHA + 2 * math.sqrt(FAMILY_ALPHA / n)
    folded = pooled_failures(np.abs(z1), np.abs(z2)).any(axis=1).mean()  # the folded |z| the rule forbids
    assert folded > 1.5 * FAMILY_ALPHA


def test_two_stage_agrees_with_the_vectorized_rule():
    rng = np.random.default_rng(3)
    z1, z2 = rng.normal(0, 2, (200, 4)), rng.normal(0, 2, (200, 4))
    for a, b in zip(z1, z2):
        assert two_stage("t", a, b).measured["failed"] == [str(i) for i in np.flatnonzero(pooled_failures(a, b))]


def test_two_stage_has_more_power_than_screen_and_confirm():
    rng, n, k = np.random.default_rng(1), 200_000, 10
    shift3 = np.zeros(k)
    shift3[0] = 3.0  # one test 3 standard errors off, in both samples
    z1, z2 = rng.standard_normal((n, k)) + shift3, rng.standard_normal((n, k)) + shift3
    pooled, old = pooled_failures(z1, z2).any(axis=1).mean(), _old_two_stage_fails(z1, z2).mean()
    assert pooled == pytest.approx(0.64, abs=0.01) and old == pytest.approx(0.35, abs=0.01)  # stated in two_stage


def test_two_stage_decides_from_the_pooled_scores():
    ev = two_stage("t", [0.1, 8.0, -0.3], lambda idx: [[0.2, 7.5, -0.1][i] for i in idx], labels=["a", "b", "c"])
    assert verdict(ev) == "not_reproduced" and ev.measured["failed"] == ["b"]
    assert verdict(two_stage("t", [0.1, 4.0, -0.3], [0.2, -0.5, 0.1])) == "reproduced"
    assert verdict(two_stage("t", [0.1, np.nan], [0.2, 0.1])) == "not_reproduced"  # NaN fails
    assert verdict(two_stage("t", [0.1, 5.0], [0.2, 5.0], precondition=True)) == "inconclusive"
    with pytest.raises(ValueError, match="same k"):
        two_stage("t", [0.1, 0.2], [0.1])


def test_pooled_critical_value_grows_with_heavier_tails():
    assert pooled_critical_value(0.001, 10) == pytest.approx(stats.norm.isf(0.0001 / 2))
    assert pooled_critical_value(0.001, 10, 30) < pooled_critical_value(0.001, 10, 10) < pooled_critical_value(0.001, 10, 5)


# --- speedup -------------------------------------------------------------------------------

def test_speedup_is_the_median_ratio_of_alternating_repeats():
    ev = speedup("eoi_", [10.0, 11.0, 9.0, 10.0, 30.0], [0.5] * 5, min_ratio=10)
    assert ev.measured["ratio"] == 20 and verdict(ev) == "reproduced"
    assert ev.measured["ratio_min"] == 18 and ev.measured["ratio_max"] == 60


@pytest.mark.parametrize("fast", [[0.0] * 5, [np.nan] * 5, [-1.0] * 5, [np.inf] * 5])
def test_speedup_rejects_bad_timings(fast):
    with pytest.raises(ValueError, match="positive and finite"):
        speedup("x", [1.0] * 5, fast, min_ratio=2)


def test_speedup_needs_five_repeats():
    with pytest.raises(ValueError, match="alternating repeats"):
        speedup("x", [1.0] * 4, [0.5] * 4, min_ratio=2)


def test_alternating_timings_alternate():
    calls = []
    slow, fast = alternating_timings(lambda: calls.append("s"), lambda: calls.append("f"), repeats=5)
    assert calls == ["s", "f"] * 6 and len(slow) == len(fast) == 5


def test_design_hash_is_order_free_and_sees_every_key():
    conf = {"seeds": [1, 2], "margin": 0.02, "other": 5}
    assert design_hash(conf, ["margin", "seeds"]) == design_hash(dict(reversed(conf.items())), ["seeds", "margin"])
    assert design_hash(conf, ["margin", "seeds"]) != design_hash({**conf, "margin": 0.03}, ["margin", "seeds"])
    assert design_hash(conf, ["margin"]) == design_hash({**conf, "other": 6}, ["margin"])
    with pytest.raises(KeyError, match="design keys"):
        design_hash(conf, ["epochs"])


def test_a_refuting_comparison_is_not_hidden_by_a_straddling_one(tmp_path):
    rng = np.random.default_rng(4)
    base = rng.uniform(0.8, 0.9, 8)
    refuted = compare("A", base - 0.1, "B", base + rng.normal(0, 0.002, 8), margin=0.01)
    straddles = compare("A", base, "C", base + rng.normal(0, 0.05, 8), margin=0.01)
    assert (verdict(refuted), verdict(straddles)) == ("not_reproduced", "inconclusive")
    record = StageRecord("risotto_fixup", "tiny", seed=0, output_root=tmp_path)
    entry = record.claim("risotto.beats_fixup_skipinit", [straddles, refuted])
    assert entry["verdict"] == "not_reproduced" and entry["reason"].startswith("failed: 95% CI low of A - B")
    assert [c.get("part") for c in entry["checks"]] == [0] * 4 + [1] * 4
    assert derive_verdict(entry["checks"]) == "not_reproduced"
    # both comparisons keep their own numbers
    assert [e["mean_diff"] for e in entry["measured"]["evidence"]] == [straddles.measured["mean_diff"],
                                                                     refuted.measured["mean_diff"]]
    # a failed global precondition (a control that did not train) still makes it inconclusive
    control = positive_control("B", np.full(8, 0.1), chance=0.1)
    assert record.claim("risotto.beats_fixup_skipinit", [control, straddles, refuted])["verdict"] == "inconclusive"


def test_reason_is_derived_from_the_checks(tmp_path):
    record = StageRecord("fractional_lognorm", "tiny", seed=0, output_root=tmp_path)
    entry = record.claim("fractional.recovers_classical", [Check("err", 0.5, "<=", 1e-12)], reason="context")
    assert entry["verdict"] == "not_reproduced"
    assert entry["reason"].startswith("failed: err = 0.5, needs <= 1e-12.") and entry["reason"].endswith("context")
    ev = compare("A", [0.5, 0.6, 0.55, 0.5, 0.6], "B", [0.5, 0.6, 0.55, 0.5, 0.6], margin=0.0)
    entry = record.claim("fractional.recovers_classical", [ev])
    assert entry["verdict"] == "inconclusive" and ev.summary.rstrip(".") in entry["reason"]
    assert entry["measured"]["n_pairs"] == 5


def test_environment_names_the_kernels():
    env = environment(seed=3, seed_set=2)
    assert env["seed_set"] == 2 and env["cpu_capability"]
    assert {"mkldnn_enabled", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"} <= set(env["kernels"])


def test_seed_sets_are_disjoint():
    sets = [set(shift(list(range(50)), k)) for k in range(4)]
    assert all(not (sets[i] & sets[j]) for i in range(4) for j in range(i + 1, 4))
    assert shift(7, 0) == 7 and shift(7, 2) == 7 + 2 * STRIDE
    with pytest.raises(ValueError, match="seed_set"):
        shift(0, -1)
    with pytest.raises(ValueError, match="seeds"):
        shift(STRIDE, 1)


def test_compare_with_fewer_seeds_than_planned_is_inconclusive():
    a, b = np.linspace(0.9, 0.95, 6), np.linspace(0.5, 0.55, 6)
    assert verdict(compare("A", a, "B", b, margin=0.1, superior=True, planned_n=6)) == "reproduced"
    ev = compare("A", a, "B", b, margin=0.1, superior=True, planned_n=20)
    assert verdict(ev) == "inconclusive" and "20 that 80% power" in ev.checks[1].name


def test_a_control_scoped_to_one_comparison_leaves_the_others_deciding(tmp_path):
    from initrepro.core.verdicts import with_control

    refuted = compare("A", [0.5, 0.52, 0.49, 0.51, 0.5], "B", [0.9, 0.91, 0.9, 0.92, 0.9], margin=0.01)
    chance_level = compare("A", [0.1, 0.11, 0.1, 0.1, 0.12], "C", [0.1, 0.1, 0.11, 0.1, 0.1], margin=0.01)
    untrained = positive_control("C", [0.1, 0.11, 0.1, 0.1, 0.12], chance=0.1)
    record = StageRecord("risotto_fixup", "tiny", seed=0, output_root=tmp_path)
    entry = record.claim("risotto.beats_fixup_skipinit", [refuted, with_control(untrained, chance_level)])
    assert entry["verdict"] == "not_reproduced"  # the refuting part decides; the other is undecided
    control = next(c for c in entry["checks"] if c["name"].startswith("C (positive control)"))
    assert control["part"] == 1 and not control["passed"]
    # unscoped, the same control would leave the whole claim inconclusive
    assert record.claim("risotto.beats_fixup_skipinit", [refuted, untrained, chance_level])["verdict"] == "inconclusive"


def test_seeds_needed_has_a_practical_limit():
    from initrepro.core.verdicts import MAX_SEEDS

    assert seeds_needed(1.0, 1e-3) == -1  # millions of seeds: no practical number
    assert 5 <= seeds_needed(1.0, 0.05) <= MAX_SEEDS
