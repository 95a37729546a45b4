import pytest

from initrepro.core.claims import Check, StageRecord
from initrepro.core.report import END, START, load_records, main, render, short_statement


def _write_records(root):
    record = StageRecord("fractional_lognorm", "tiny", output_root=root)
    record.claim("fractional.recovers_classical", [Check("error", 1e-15, "<=", 1e-12)])
    record.claim("fractional.fewer_small_outputs", [Check("z", 2.0, ">", 5.0)], reason="too few networks")
    record.write()


def test_report_writes_table_into_readme_between_markers(tmp_path):
    _write_records(tmp_path)
    (tmp_path / "README.md").write_text(f"intro\n{START}\nold table\n{END}\noutro\n")
    main(tmp_path)
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("intro\n") and readme.endswith("outro\n") and "old table" not in readme
    assert "**not reproduced**" in readme and "too few networks" in readme
    assert render(load_records(tmp_path)) in (tmp_path / "reports" / "claims.md").read_text()
    assert render(load_records(tmp_path), full=False) in readme
    assert "| not run on this record |" in readme  # no stability report yet


def test_stability_column_lists_flips(tmp_path):
    _write_records(tmp_path)
    verdicts = {"0": "reproduced", "1": "reproduced", "2": "not_reproduced", "3": "reproduced"}
    stability = {"commit": "abc1234", "verdicts": {"fractional.recovers_classical": verdicts}}
    text = render(load_records(tmp_path), stability)
    assert "no (seed set 2: not reproduced)" in text and "commit abc1234" in text
    stability["verdicts"]["fractional.recovers_classical"] = {"0": "reproduced", "1": "reproduced"}
    assert "not run (seed sets 2, 3)" in render(load_records(tmp_path), stability)


def test_short_statement_keeps_the_first_sentence():
    assert short_statement("A holds. Details follow.") == "A holds"
    assert short_statement("Claim: the long part.") == "Claim"
    assert len(short_statement("x" * 500)) == 160


def test_report_refuses_readme_without_markers(tmp_path):
    _write_records(tmp_path)
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="marker"):
        main(tmp_path)


def test_table_links_notebooks_and_shows_design_changes_and_paper_precision(tmp_path, monkeypatch):
    import initrepro.core.claims

    _write_records(tmp_path)
    records = load_records(tmp_path)
    records[0]["claims"][0]["design"] = {"post_hoc_changes": 2}
    papers = initrepro.core.claims.all_paper_claims()
    spec = papers["fractional.fewer_small_outputs"]
    papers["fractional.fewer_small_outputs"] = {**spec, "design": {"tiny": {
        "paper_precision": "Fig. 3: 1 point | smoke margin 5 points, looser", "keys": [], "registered": {}}}}
    monkeypatch.setattr(initrepro.core.claims, "all_paper_claims", lambda: papers)
    text = render(records, full=False)
    assert "[fractional_lognorm](reports/notebooks/fractional_lognorm.html) (tiny)" in text
    assert f"| [2](papers/{spec['paper']}.yaml) |" in text
    assert "| Fig. 3: 1 point / smoke margin 5 points, looser |" in text
