import json

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
