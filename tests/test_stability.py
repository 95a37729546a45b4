"""Seed-set stability: records in reports/seed_sets/<k>/, used only for the seed set they were made under."""

import json

import pytest

from initrepro.core.claims import Check, StageRecord
from initrepro.core.stability import collect, held, main, report


def _write(root, seed_set, z=2.0, profile="smoke"):
    record = StageRecord("fractional_lognorm", profile, output_root=root, seed_set=seed_set)
    record.claim("fractional.recovers_classical", [Check("error", 1e-15, "<=", 1e-12)])
    record.claim("fractional.fewer_small_outputs", [Check("z", z, ">", 5.0)], reason=f"z = {z}")
    record.write()


@pytest.fixture
def project(tmp_path):
    (tmp_path / "params.yaml").write_text("profile: smoke\nseed_set: 0\n")
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    _write(tmp_path, 0)
    return tmp_path


def test_each_seed_set_is_read_from_its_folder(project):
    _write(project / "reports/seed_sets/1", 1, z=9.0)
    _write(project / "reports/seed_sets/2", 2)
    _write(project / "reports/seed_sets/42", 42)  # a seed set never run before
    data = report(project)
    assert data["seed_sets"] == [0, 1, 2, 3, 42]
    assert data["verdicts"]["fractional.fewer_small_outputs"] == {
        "0": "not_reproduced", "1": "reproduced", "2": "not_reproduced", "42": "not_reproduced"}
    assert data["flips"] == [{"claim": "fractional.fewer_small_outputs", "seed_set": 1, "verdict": "reproduced",
                              "seed_set_0": "not_reproduced", "reason": "z = 9.0", "reason_seed_set_0":
                              data["flips"][0]["reason_seed_set_0"], "cause": (
                                  "the claim check lands on opposite sides of its threshold; seed set 0: z = 2, "
                                  "needs > 5; seed set 1: z = 9, needs > 5")}]
    md = (project / "reports/stability.md").read_text()
    assert "| `fractional.fewer_small_outputs` | not reproduced | reproduced | not reproduced | - | not reproduced |" in md
    assert "not run (seed sets 3)" in md
    assert "seed set 1: reproduced (seed set 0: not reproduced). Cause: the claim check" in md
    assert "Its record: z = 9.0" in md


def test_a_straddling_flip_is_named_underpowered():
    from initrepro.core.stability import flip_cause
    from initrepro.core.verdicts import compare

    clears = compare("A", [0.95, 0.96, 0.95, 0.97, 0.95], "B", [0.90, 0.91, 0.91, 0.91, 0.90], margin=0.01)
    straddles = compare("A", [0.95, 0.90, 0.99, 0.91, 0.96], "B", [0.90, 0.93, 0.90, 0.92, 0.90], margin=0.01)
    cause = flip_cause({0: "inconclusive", 1: "reproduced"},
                       {0: [{**c.to_dict(), "part": 0} for c in straddles.checks],
                        1: [{**c.to_dict(), "part": 0} for c in clears.checks]})
    assert cause.startswith("the interval straddles the margin under one seed set")
    # the same comparison's claim check under both seed sets
    assert "seed set 0: 95% CI low of A - B" in cause and "seed set 1: 95% CI low of A - B" in cause
    assert "(comparison seed set 0: inconclusive, seed set 1: reproduced)" in cause


def test_a_record_of_another_seed_set_is_not_used(project):
    # a seed-set-0 record copied into folder 1 (e.g. a run that ignored --seed-set)
    _write(project / "reports/seed_sets/1", 0)
    data = collect(project)
    assert all(1 not in vs for vs in data["verdicts"].values())
    assert any("made under seed set 0" in why for why in data["ignored"])
    assert held(data["verdicts"]["fractional.recovers_classical"]) == "not run (seed sets 1, 2, 3)"
    report(project)
    assert "| `fractional.recovers_classical` | reproduced | - | - | - | not run (seed sets 1, 2, 3) |" in (
        project / "reports/stability.md").read_text()


def test_a_record_of_another_profile_is_not_used(project):
    _write(project / "reports/seed_sets/1", 1, profile="tiny")
    assert all(1 not in vs for vs in collect(project)["verdicts"].values())
    assert 1 in collect(project, profile="tiny")["verdicts"]["fractional.recovers_classical"]


def test_held_lists_flips_and_missing_sets():
    assert held({0: "reproduced", 1: "reproduced", 2: "reproduced", 3: "reproduced"}) == "yes"
    assert held({0: "reproduced", 1: "inconclusive", 2: "reproduced", 3: "reproduced", 7: "not_reproduced"}) == (
        "no (seed set 1: inconclusive; seed set 7: not reproduced)")
    assert held({0: "reproduced"}, seed_sets=(0, 7)) == "not run (seed sets 7)"


def test_run_rejects_seed_set_0_and_bad_names(project, capsys):
    assert main(["run", "--seed-sets", "0"], root=project) == 2
    assert "seed_sets must not hold 0" in capsys.readouterr().err
    assert main(["run", "--seed-sets", "-3"], root=project) == 2
    assert "seed_set must be an integer >= 0" in capsys.readouterr().err


def test_report_is_the_default_command(project):
    assert main([], root=project) == 0
    assert json.loads((project / "reports/stability.json").read_text())["profile"] == "smoke"


def test_other_kernel_paths_are_compared_with_seed_set_0(project, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    _write(project / "reports/kernel_paths/sse41", 0, z=9.0)
    _write(project / "reports/kernel_paths/avx2", 1)  # not seed set 0: ignored
    data = report(project)
    assert data["kernel_paths"] == {"sse41": {"fractional.recovers_classical": "reproduced",
                                              "fractional.fewer_small_outputs": "reproduced"}}
    md = (project / "reports/stability.md").read_text()
    assert "- **sse41** (ONEDNN_MAX_CPU_ISA=SSE41): 1 of 2 verdicts as on the default path" in md
    assert "`fractional.fewer_small_outputs` reproduced (default: not reproduced; cause: the claim check" in md


def test_kernel_paths_run_seed_set_0_only(project, capsys):
    assert main(["run", "--seed-sets", "1", "--kernels", "sse41"], root=project) == 2
    assert "--kernels runs seed set 0 only" in capsys.readouterr().err


def test_a_flip_from_a_failed_control_names_the_control():
    from initrepro.core.stability import flip_cause
    from initrepro.core.verdicts import compare, positive_control, with_control

    refuted = compare("A", [0.1, 0.12, 0.1, 0.11, 0.1], "B", [0.3, 0.25, 0.2, 0.22, 0.28], margin=0.01, superior=True)
    trains, idle = positive_control("B", [0.3, 0.25, 0.2, 0.22, 0.28], 0.1), positive_control("B", [0.1] * 5, 0.1)

    def record(ev):
        return [{**c.to_dict(), "part": 0} for c in with_control(*ev).checks]

    cause = flip_cause({0: "inconclusive", 1: "not_reproduced"}, {0: record((idle, refuted)), 1: record((trains, refuted))})
    assert cause.startswith("a precondition failed under seed set 0: B (positive control) median accuracy = 0.1")
    assert "it held under the other (0.25)" in cause
