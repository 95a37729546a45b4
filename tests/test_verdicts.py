"""The shared verdict rules: three-way comparisons, positive controls, collapsed runs,
learning-rate selection, the two-stage family-wise design, timing ratios, derived reasons."""

import numpy as np
import pytest

from initrepro.claims import Check, StageRecord, derive_verdict, environment
from initrepro.seeding import STRIDE, shift
from initrepro.verdicts import (collapsed, compare, positive_control, seeds_needed, select_lr, speedup,
                                two_stage)


def verdict(evidence):
    return derive_verdict(evidence.checks)


def test_compare_is_three_way():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.8, 0.9, 10)
    assert verdict(compare("A", b + 0.05, "B", b + rng.normal(0, 0.001, 10), margin=0.01)) == "reproduced"
    assert verdict(compare("A", b - 0.05, "B", b + rng.normal(0, 0.001, 10), margin=0.01)) == "not_reproduced"
    wide = compare("A", b + rng.normal(0, 0.05, 10), "B", b, margin=0.01)
    assert verdict(wide) == "inconclusive"
    assert "seeds at this spread would decide" in wide.summary and wide.measured["seeds_needed"] > 10


def test_compare_superiority_needs_the_margin():
    b = np.array([0.5, 0.52, 0.51, 0.49])
    a = b + np.array([0.02, 0.021, 0.019, 0.02])
    assert verdict(compare("A", a, "B", b, margin=0.01)) == "reproduced"
    assert verdict(compare("A", a, "B", b, margin=0.05, superior=True)) == "not_reproduced"


def test_compare_lower_is_better():
    a, b = np.array([1.0, 1.1, 0.9]), np.array([2.0, 2.1, 2.05])
    assert verdict(compare("A", a, "B", b, margin=0.1, higher_is_better=False)) == "reproduced"


def test_collapsed_runs_are_counted_not_averaged():
    a = np.array([0.95, 0.10, 0.96, np.nan])
    b = np.array([0.94, 0.93, 0.95, 0.94])
    assert collapsed(a, chance=0.1).tolist() == [False, True, False, True]
    ev = compare("A", a, "B", b, margin=0.01, chance=0.1)
    assert ev.measured["n_pairs"] == 2 and ev.measured["A collapsed"] == 2
    assert verdict(ev) == "inconclusive"  # 2 of 4 against 0 of 4 may be chance (Fisher p 0.21)
    a6, b6 = np.full(6, 0.1), np.full(6, 0.95)
    ev = compare("A", a6, "B", b6, margin=0.01, chance=0.1)
    assert verdict(ev) == "not_reproduced" and "collapsed in 6/6" in ev.summary  # no pairs left, yet decided
    assert verdict(compare("A", b6, "B", a6, margin=0.01, chance=0.1)) == "reproduced"  # B collapses, A never


def test_compare_rejects_unpaired_values():
    with pytest.raises(ValueError, match="paired"):
        compare("A", [1, 2, 3], "B", [1, 2], margin=0.1)
    with pytest.raises(ValueError, match="margin"):
        compare("A", [1, 2], "B", [1, 2], margin=-1)


def test_positive_control_makes_a_comparison_inconclusive():
    control = positive_control("ref", [0.11, 0.1, 0.12], chance=0.1)
    ev = compare("A", [0.5, 0.6, 0.55], "ref", [0.11, 0.1, 0.12], margin=0.01)
    assert derive_verdict(control.checks + ev.checks) == "inconclusive"
    assert "does not train" in control.summary
    assert derive_verdict(positive_control("ref", [0.9, 0.92], chance=0.1).checks) == "reproduced"


def test_select_lr_keeps_a_step_from_the_divergence_edge():
    lrs = [0.001, 0.01, 0.1, 1.0]
    scores = np.array([[0.80, 0.81], [0.90, 0.91], [0.97, 0.10], [np.nan, np.nan]])
    lr, info = select_lr(lrs, scores, chance=0.1)
    assert lr == 0.001 and info["edge_lr"] == 0.1  # 0.01 is adjacent to the edge
    lr, info = select_lr(lrs[:2], scores[:2], chance=0.1)
    assert lr == 0.01 and info["edge_lr"] is None
    with pytest.raises(ValueError, match="ascending"):
        select_lr([0.1, 0.01], scores[:2], chance=0.1)


def test_two_stage_false_failure_rate_is_at_most_a_tenth_of_a_percent():
    rng = np.random.default_rng(1)
    k, trials = 12, 20_000
    fails = sum(derive_verdict(two_stage("t", rng.standard_normal(k),
                                         lambda idx: rng.standard_normal(len(idx))).checks) == "not_reproduced"
                for _ in range(trials))
    # Bound 1e-3; 20 expected at the bound, so 40 is far beyond chance (binomial p < 1e-4).
    assert fails <= 40


def test_two_stage_fails_a_false_claim():
    ev = two_stage("t", [0.1, 8.0, -0.3], lambda idx: [7.5] * len(idx), labels=["a", "b", "c"])
    assert derive_verdict(ev.checks) == "not_reproduced" and ev.measured["confirmed"] == ["b"]


def test_two_stage_does_not_fail_on_an_unconfirmed_screen():
    ev = two_stage("t", [0.1, 4.0, -0.3], lambda idx: [0.2] * len(idx))
    assert derive_verdict(ev.checks) == "reproduced" and "1 re-run" in ev.summary


def test_speedup_is_a_ratio():
    ev = speedup("eoi_", slow_s=10.0, fast_s=0.5, min_ratio=10)
    assert ev.measured["ratio"] == 20 and derive_verdict(ev.checks) == "reproduced"


def test_seeds_needed_grows_with_spread():
    assert seeds_needed(0.1, 0.05) > seeds_needed(0.05, 0.05) >= 2


def test_reason_is_derived_from_the_checks(tmp_path):
    record = StageRecord("fractional_lognorm", "tiny", seed=0, output_root=tmp_path)
    entry = record.claim("fractional.recovers_classical", [Check("err", 0.5, "<=", 1e-12)], reason="context")
    assert entry["verdict"] == "not_reproduced"
    assert entry["reason"].startswith("failed: err = 0.5, needs <= 1e-12.") and entry["reason"].endswith("context")
    ev = compare("A", [0.5, 0.6, 0.55], "B", [0.5, 0.6, 0.55], margin=0.0)
    entry = record.claim("fractional.recovers_classical", [ev])
    assert entry["verdict"] == "inconclusive" and ev.summary.rstrip(".") in entry["reason"]
    assert entry["measured"]["n_pairs"] == 3


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
