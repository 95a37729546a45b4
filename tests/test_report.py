import pytest

from initrepro.claims import Check, StageRecord
from initrepro.report import END, START, load_records, main, render, short_statement


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
