import json
import math
from pathlib import Path

import pytest

from initrepro.core.claims import Check, StageRecord, atomic_write_text, derive_verdict, load_record, validate_record


def test_check_passes_by_operator():
    assert Check("x", 1.0, "<=", 1.0).passed
    assert not Check("x", 1.0, "<", 1.0).passed
    assert not Check("x", float("nan"), ">=", 0.0).passed  # a NaN never passes


def test_unknown_operator_is_rejected():
    with pytest.raises(ValueError, match="op"):
        Check("x", 1.0, "~", 1.0)


@pytest.mark.parametrize("checks, verdict", [
    ([Check("a", 1, "<=", 2)], "reproduced"),
    ([Check("a", 3, "<=", 2)], "not_reproduced"),
    ([Check("a", 3, "<=", 2), Check("pre", 0, ">", 1, precondition=True)], "inconclusive"),
    ([Check("a", 1, "<=", 2), Check("pre", 2, ">", 1, precondition=True)], "reproduced"),
    ([], "skipped"),
])
def test_verdict_follows_from_checks(checks, verdict):
    assert derive_verdict(checks) == verdict


def _record(tmp_path):
    r = StageRecord("fractional_lognorm", "tiny", seed=0, output_root=tmp_path)
    r.claim("fractional.recovers_classical", [Check("err", 1e-15, "<=", 1e-12)])
    return r


def test_record_round_trip(tmp_path):
    written = _record(tmp_path).write()
    assert load_record(tmp_path / "results/fractional_lognorm/claims.json") == json.loads(json.dumps(written))


def test_tampered_verdict_is_rejected(tmp_path):
    record = _record(tmp_path).to_dict()
    record["claims"][0]["checks"][0]["value"] = 1.0  # now fails, verdict still says reproduced
    record["claims"][0]["checks"][0]["passed"] = False
    with pytest.raises(ValueError, match="does not follow"):
        validate_record(record)


def test_unknown_or_foreign_claim_is_rejected(tmp_path):
    r = StageRecord("fractional_lognorm", "tiny", output_root=tmp_path)
    with pytest.raises(KeyError):
        r.claim("no.such_claim", [])
    with pytest.raises(ValueError, match="skipped claim carries no checks"):
        r.claim("fractional.recovers_classical", [Check("a", 1, "<=", 2)], skip_reason="no GPU")


def test_skipped_needs_reason_and_is_not_reproduced(tmp_path):
    r = StageRecord("fractional_lognorm", "tiny", output_root=tmp_path)
    entry = r.claim("fractional.recovers_classical", skip_reason="nothing to measure here")
    assert entry["verdict"] == "skipped"


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "a.json"
    atomic_write_text(path, "old")
    assert path.stat().st_mode & 0o777 == 0o644  # readable by all, like a plainly written file
    with pytest.raises(TypeError):
        atomic_write_text(path, 123)  # write() of a non-string fails midway
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_write_adds_flat_metrics_per_claim(tmp_path):
    record = StageRecord("fractional_lognorm", "tiny", output_root=tmp_path, seed_set=3)
    record.claim("fractional.recovers_classical", [Check("error", 1e-15, "<=", 1e-12)])
    record.claim("fractional.fewer_small_outputs", [Check("pre", 0, ">", 1, precondition=True),
                                                    Check("z", 2.0, ">", 5.0)], reason="few")
    record.write()
    metrics = json.loads((tmp_path / "results/fractional_lognorm/metrics.json").read_text())
    assert all(not isinstance(v, (dict, list)) for v in metrics.values())  # flat: DVC shows every key
    assert metrics["seed_set"] == 3
    assert metrics["fractional.recovers_classical.verdict"] == "reproduced"
    assert metrics["fractional.recovers_classical.reproduced"] == 1
    assert metrics["fractional.recovers_classical.value"] == 1e-15
    assert metrics["fractional.recovers_classical.threshold"] == 1e-12
    # the headline of an undecided claim is the precondition that failed
    assert metrics["fractional.fewer_small_outputs.verdict"] == "inconclusive"
    assert metrics["fractional.fewer_small_outputs.reproduced"] == 0
    assert metrics["fractional.fewer_small_outputs.headline"] == "pre"


def test_repo_root_is_the_nearest_dvc_project(tmp_path):
    from initrepro.core.claims import find_repo_root

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert find_repo_root(tmp_path / "a" / "b") == tmp_path.resolve()
    import initrepro.core.claims

    assert find_repo_root("/") == __import__("pathlib").Path(initrepro.core.claims.__file__).resolve().parents[2]


# --- measurements, curves and figures that state their claim ---


def _two_claims(tmp_path):
    from initrepro.core.verdicts import compare

    record = StageRecord("zero_init", "tiny", seed=0, output_root=tmp_path)
    record.claim("constnet.signal_propagation", [Check("max |logit| at init", 0.0, "==", 0.0)])
    a, b = [0.90, 0.91, 0.92, 0.90, 0.93], [0.91, 0.92, 0.92, 0.91, 0.93]
    record.claim("constnet.trains_close_to_random", [compare("ConstNet", a, "He", b, margin=0.05, n_test=300)])
    return record


def test_headline_is_the_check_that_decided():
    from initrepro.core.claims import headline_check

    refuted = {"name": "CI low of A - B", "value": -0.2, "op": ">", "threshold": 0.0, "passed": False, "part": 1}
    straddle = {"name": "distance from the margin", "value": -0.1, "op": ">", "threshold": 0.0, "passed": False,
                "precondition": True, "part": 0}
    other = {"name": "CI low of A - C", "value": -0.1, "op": ">", "threshold": 0.0, "passed": False, "part": 0}
    control = {"name": "control", "value": 0.1, "op": ">=", "threshold": 0.2, "passed": False, "precondition": True}
    assert headline_check({"checks": [straddle, other, refuted]}) == refuted  # not reproduced: the refuting part
    assert headline_check({"checks": [straddle, other]}) == straddle
    assert headline_check({"checks": [straddle, other, refuted, control]}) == control  # claim-wide first


def test_measurements_and_curves_are_saved_as_drawn(tmp_path):
    import numpy as np
    import torch

    record = _two_claims(tmp_path)
    saved = record.measure("probe", {"rms": torch.tensor([1.0, float("nan")]), "n": np.int64(3)})
    assert saved["n"] == 3 and saved["rms"][0] == 1.0 and math.isnan(saved["rms"][1])
    record.curve("test_accuracy", {"He seed 0": ([0, 10], np.array([0.1, 0.9]))}, y="test accuracy")
    with pytest.raises(ValueError, match="2 x values but 1 y values"):
        record.curve("bad", {"He seed 0": ([0, 10], [0.1])})
    record.write()
    folder = tmp_path / "results" / "zero_init"
    assert (folder / "curves" / "test_accuracy.csv").read_text() == 'x,series,y\n0,"He seed 0",0.1\n10,"He seed 0",0.9\n'
    reloaded = StageRecord("zero_init", "tiny", output_root=tmp_path, replot=True)
    assert math.isnan(reloaded.measurements["probe"]["rms"][1])
    assert reloaded.curves["test_accuracy"]["series"]["He seed 0"] == [[0, 10], [0.1, 0.9]]
    assert [c["id"] for c in reloaded.claims] == [c["id"] for c in record.claims]
    with pytest.raises(RuntimeError, match="not rewritten"):
        reloaded.write()
    with pytest.raises(ValueError, match="holds profile 'tiny'"):
        StageRecord("zero_init", "smoke", output_root=tmp_path, replot=True)


def test_a_figure_states_its_claims_and_verdicts(tmp_path):
    from initrepro.core.plotting import subplots

    record = _two_claims(tmp_path)
    fig, ax = subplots()
    ax.plot([0, 1])
    fig.suptitle("setup")
    path = record.figure(fig, "acc.png", claims=["constnet.trains_close_to_random"])
    assert fig.get_suptitle() == "constnet.trains_close_to_random: reproduced\nsetup"
    assert record.claims[1]["figures"] == [path] and record.claims[0]["figures"] == []
    with pytest.raises(KeyError, match="draw its figure after record.claim"):
        record.figure(subplots()[0], "x.png", claims=["constnet.nope"])
    verdicts = record.verdicts_figure()
    assert all(verdicts in c["figures"] for c in record.claims)
    assert (tmp_path / verdicts).stat().st_size > 0


def test_verdict_panels_show_each_deciding_check_with_its_interval():
    from initrepro.core.plotting import deciding_checks, verdict_panels

    claims = _two_claims(Path("/nonexistent")).claims
    rows = deciding_checks(claims[1])
    assert len(rows) == 1 and rows[0][1]["ci_low"] < rows[0][1]["mean_diff"] < rows[0][1]["ci_high"]
    assert deciding_checks(claims[0]) == [(claims[0]["checks"][0], None)]
    fig = verdict_panels(claims)
    assert len(fig.axes) == 2 and fig.axes[0].get_title(loc="left").startswith("constnet.signal_propagation: reproduced")
    # a failed precondition decided an inconclusive claim: it is drawn, in red, without an interval
    undecided = {**claims[1], "verdict": "inconclusive", "checks": [
        {**claims[1]["checks"][0], "passed": False}] + claims[1]["checks"][1:]}
    rows = deciding_checks(undecided)
    assert rows[0][0]["precondition"] and rows[0][1] is None and len(rows) == 2
    fig = verdict_panels([undecided])
    assert "precondition failed: " in fig.axes[0].get_title(loc="left")
    assert fig.axes[0].lines[0].get_color() == "#d62728"
    empty = verdict_panels([{**claims[0], "verdict": "skipped"}])
    assert "all skipped" in empty.axes[0].texts[0].get_text()


def test_arm_points_draw_the_finite_seeds_and_their_mean_with_its_t_interval():
    import matplotlib.pyplot as plt

    from initrepro.core.plotting import arm_points, subplots
    from initrepro.core.stats import mean_ci

    fig, ax = subplots()
    arm_points(ax, 2, [0.5, float("nan"), 0.7, 0.6], "#123456", label="arm", marker="D")
    dots, bar = ax.lines[0], ax.containers[0]
    assert list(dots.get_ydata()) == [0.5, 0.7, 0.6] and list(dots.get_xdata()) == [1.875, 2.0, 2.125]
    m, lo, hi = mean_ci([0.5, 0.7, 0.6])
    assert bar[0].get_ydata()[0] == m and bar[0].get_marker() == "D" and bar.get_label() == "arm"
    assert list(bar[2][0].get_segments()[0][:, 1]) == pytest.approx([lo, hi])
    arm_points(ax, 3, [float("nan")], "k", label="never trained")  # nothing finite: no bar, no legend entry
    arm_points(ax, 4, [], "k", label="named anyway", label_if_empty=True)
    assert len(ax.containers) == 1 and sorted(ax.get_legend_handles_labels()[1]) == ["arm", "named anyway"]
    plt.close(fig)


def test_interval_panel_places_each_interval_against_its_margin():
    import matplotlib.pyplot as plt

    from initrepro.core.plotting import interval_panel, subplots

    fig, ax = subplots()
    rows = [("above", {"mean_diff": 0.3, "ci_low": 0.2, "ci_high": 0.4}, 0.1, "r", "o"),
            ("straddles", {"mean_diff": 0.1, "ci_low": -0.1, "ci_high": 0.3}, 0.0, "g", "s"),
            ("below", {"mean_diff": -0.3, "ci_low": -0.4, "ci_high": -0.2}, -0.1, "b", "D"),
            ("missing", {"mean_diff": None, "ci_low": None, "ci_high": None}, 0.0, "k", "o")]
    interval_panel(ax, rows, xlabel="difference")
    assert [t.get_text() for t in ax.texts] == ["CI above the margin", "CI straddles the margin: undecided",
                                                "CI below the margin", "no interval (too few finite runs)"]
    assert [t.xy for t in ax.texts] == [(0.1, 0.38), (0.0, 1.38), (-0.1, 2.38), (0.0, 3.38)]
    assert len(ax.containers) == 3 and [c[0].get_marker() for c in ax.containers] == ["o", "s", "D"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["above", "straddles", "below", "missing"]
    assert ax.get_xlabel() == "difference" and ax.get_ylim() == (-0.7, 3.7)
    plt.close(fig)


def test_scheme_colors_are_one_palette():
    from initrepro.core.plotting import scheme_color

    assert scheme_color("ConstNet + dropout") == scheme_color("constnet")
    assert scheme_color("He") == scheme_color("Kaiming")
    assert scheme_color("ZerO 64 blocks") == scheme_color("ZerO")
    # schemes that share a figure differ: ZerO and IDInit in idinit's, a scheme and its BN variant
    assert len({scheme_color(n) for n in ("IDInit", "ZerO", "Kaiming", "Kaiming + BN", "Fixup", "IDIZ", "IDIC")}) == 7
    assert scheme_color("RISOTTO + BN") != scheme_color("RISOTTO")
    from initrepro.core.plotting import SCHEME_COLORS

    assert scheme_color("approximate isometry") not in SCHEME_COLORS.values()
    assert scheme_color("some new scheme") == scheme_color("Some new scheme")  # stable for unknown ones
