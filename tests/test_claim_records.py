"""The committed claim records: present, valid, as expected by papers/*.yaml, and not stale.

A record is stale when the code, notebook, conf or paper YAML it was produced from changed
since (DVC's changed deps/params/cmd). Missing cached outputs (the executed notebooks, absent in
a fresh clone) do not count.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from initrepro.core.claims import REPO_ROOT, all_paper_claims, flat_metrics, load_record
from initrepro.core.report import END, START, load_records, load_stability, render

DVC = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
CLAIM_STAGES = [s for s in DVC["stages"] if s != "report"]
PROFILE = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["profile"]


def _record(stage):
    path = REPO_ROOT / "results" / stage / "claims.json"
    assert path.exists(), f"{path} is missing: run `make repro`"
    return load_record(path)


@pytest.mark.parametrize("stage", CLAIM_STAGES)
def test_record_is_valid_and_complete(stage):
    record = _record(stage)
    assert record["stage"] == stage and record["profile"] == PROFILE
    expected = {cid for cid, c in all_paper_claims().items() if c["stage"] == stage}
    assert {c["id"] for c in record["claims"]} == expected
    for claim in record["claims"]:
        for figure in claim["figures"]:
            assert (REPO_ROOT / figure).exists(), f"{claim['id']}: figure {figure} is missing"


@pytest.mark.parametrize("stage", CLAIM_STAGES)
def test_verdicts_match_the_papers_expectations(stage):
    # The expectation of the profile that made the record (a paper run is judged by the paper
    # expectations, not by params.yaml's); `untested` (or none for that profile) means "no
    # expectation yet": any verdict passes.
    papers = all_paper_claims()
    record = _record(stage)
    profile = record["profile"]
    for claim in record["claims"]:
        expected = papers[claim["id"]]["expected"].get(profile, "untested")
        assert expected == "untested" or claim["verdict"] == expected, (
            f"{claim['id']}: verdict {claim['verdict']!r}, papers YAML expects {expected!r} at {profile}: "
            f"{claim['reason']}")


@pytest.mark.parametrize("stage", CLAIM_STAGES)
def test_metrics_and_notebook_of_each_record(stage):
    # results/<stage>/metrics.json (what `dvc metrics show` lists) follows from the record, and the
    # executed notebook that made it is there to open (reports/notebooks/<stage>.html)
    metrics = REPO_ROOT / "results" / stage / "metrics.json"
    assert metrics.exists(), f"{metrics} is missing: run `make repro`"
    assert json.loads(metrics.read_text()) == json.loads(json.dumps(flat_metrics(_record(stage))))
    assert (REPO_ROOT / "reports" / "notebooks" / f"{stage}.html").exists()


def _dvc_status() -> dict:
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    out = subprocess.run([dvc, "status", "--json"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout or "{}")


def test_records_are_not_stale():
    stale = {}
    for stage, changes in _dvc_status().items():
        for change in changes:
            if isinstance(change, dict) and ({"changed deps", "changed command"} & set(change)
                                             or "changed params" in change):
                stale[stage] = change
    assert not stale, f"committed records are stale, rerun `make repro`: {stale}"


def test_readme_table_matches_records():
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert table == render(load_records(), load_stability(), full=False).strip(), "README claims table is out of date: run `make report`"
