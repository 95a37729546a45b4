"""The stage runner, and every notebook end to end at the tiny profile."""

import pytest

from initrepro.claims import all_paper_claims, load_record
from initrepro.pipeline import PIPELINES_DIR, load_conf, main, profiles, run_stage, stages


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ValueError, match=r"profile must be one of \[.*'smoke'.*\]"):
        load_conf("fractional_lognorm", "huge")


def test_unknown_stage_is_rejected():
    with pytest.raises(ValueError, match="stage must be one of"):
        load_conf("no_such_stage", "smoke")


def test_cli_fails_fast_on_unknown_profile(capsys):
    assert main(["fractional_lognorm", "--profile", "huge"]) == 2
    assert "profile must be one of" in capsys.readouterr().err


@pytest.mark.parametrize("stage", stages())
def test_every_stage_has_the_three_profiles(stage):
    assert {"tiny", "smoke", "paper"} <= set(profiles(stage))


@pytest.mark.parametrize("stage", stages())
def test_conf_keys_are_notebook_parameters(stage):
    import jupytext

    notebook = jupytext.read(PIPELINES_DIR / f"{stage}.py")
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    names = {line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line and not line.startswith(" ")}
    for profile in profiles(stage):
        unknown = set(load_conf(stage, profile)) - names
        assert not unknown, f"{stage}/{profile}.yaml sets {unknown}, not in the parameters cell"


@pytest.mark.parametrize("stage", stages())
def test_every_notebook_moves_its_seeds_with_the_seed_set(stage):
    import jupytext

    notebook = jupytext.read(PIPELINES_DIR / f"{stage}.py")
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assert "seed_set = 0" in cell.source
    source = "\n".join(c.source for c in notebook.cells)
    assert "shift(" in source and "seed_set=seed_set" in source


def test_cli_rejects_a_negative_seed_set(capsys):
    assert main(["fractional_lognorm", "--seed-set", "-1"]) == 2
    assert "seed_set must be" in capsys.readouterr().err


@pytest.mark.notebook
@pytest.mark.parametrize("stage", stages())
def test_notebook_runs_end_to_end_at_tiny(stage, tmp_path):
    path = run_stage(stage, "tiny", output_root=tmp_path, log_output=False)
    record = load_record(path)
    assert record["stage"] == stage and record["profile"] == "tiny"
    stage_claims = {cid for cid, c in all_paper_claims().items() if c["stage"] == stage}
    assert {c["id"] for c in record["claims"]} == stage_claims
    for claim in record["claims"]:
        for figure in claim["figures"]:
            assert (tmp_path / figure).stat().st_size > 0
