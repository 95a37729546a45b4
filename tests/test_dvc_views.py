"""What DVC shows a reviewer: every claim's verdict in `dvc metrics show`, every figure and every
curve in `dvc plots show`, drawn from the committed files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from initrepro.core.claims import REPO_ROOT
from initrepro.core.stability import claim_stages

DVC = [str(Path(sys.executable).with_name("dvc"))]


def _dvc_json(*args):
    out = subprocess.run(DVC + list(args) + ["--json"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def plots():
    return _dvc_json("plots", "show")["data"]


def test_every_figure_and_curve_is_a_dvc_plot(plots):
    shown = set(plots)
    for stage in claim_stages():
        for png in (REPO_ROOT / "figures" / stage).glob("*.png"):
            assert png.relative_to(REPO_ROOT).as_posix() in shown, f"{png.name} is not in `dvc plots show`"
        curves = list((REPO_ROOT / "results" / stage / "curves").glob("*.csv"))
        assert curves, f"{stage} keeps no curve as data"
        for csv in curves:
            rendered = plots.get(csv.relative_to(REPO_ROOT).as_posix())
            assert rendered, f"{csv} is not in `dvc plots show`"
            assert rendered[0]["content"]["data"]["values"], f"{csv}: DVC drew no points"


def test_every_claim_verdict_is_a_dvc_metric():
    metrics = _dvc_json("metrics", "show")
    flat = {}
    for files in metrics.values():
        for content in files.get("data", {}).values():
            flat.update(content.get("data", {}))
    claims = {c["id"]: c["verdict"] for stage in claim_stages()
              for c in json.loads((REPO_ROOT / "results" / stage / "claims.json").read_text())["claims"]}
    for cid, verdict in claims.items():
        assert flat.get(f"{cid}.verdict") == verdict, f"{cid}: `dvc metrics show` says {flat.get(f'{cid}.verdict')}"
