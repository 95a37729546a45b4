"""The stage runner, and every notebook end to end at the tiny profile."""

import pytest

from initrepro.core.claims import all_paper_claims, load_record
from initrepro.core.pipeline import PIPELINES_DIR, load_conf, main, profiles, run_stage, stages


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
        assert claim["figures"] or claim["verdict"] == "skipped", f"{claim['id']} has no figure"
        for figure in claim["figures"]:
            assert (tmp_path / figure).stat().st_size > 0
    assert (tmp_path / "results" / stage / "measurements.json").exists()
    assert list((tmp_path / "results" / stage / "curves").glob("*.csv")), f"{stage} keeps no curve as data"
    # the figures are drawn from the saved measurements alone: redrawn without compute, the same bytes
    drawn = {p.name: p.read_bytes() for p in (tmp_path / "figures" / stage).glob("*.png")}
    record_bytes = path.read_bytes()
    run_stage(stage, "tiny", output_root=tmp_path, log_output=False, replot=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "figures" / stage).glob("*.png")} == drawn
    assert path.read_bytes() == record_bytes


# --- Nothing lost: a failing, a badly parameterized or an interrupted stage leaves the outputs ---

FAKE_STAGE = '''# %% tags=["parameters"]
profile = "tiny"
output_root = "."
seed_set = 0
fail = False
sleep = 0

# %%
import json, time
from pathlib import Path
from initrepro.core.plotting import save_figure, subplots
root = Path(output_root)
fig, ax = subplots()
ax.plot([1, 2, 3])
save_figure(fig, root / "figures/fake/new.png")
(root / "results/fake").mkdir(parents=True, exist_ok=True)
(root / "results/fake/partial.json").write_text("{}")
time.sleep(sleep)
if fail:
    raise RuntimeError("the fake stage fails on purpose")
(root / "results/fake/claims.json").write_text(json.dumps({"runtime_s": 1, "seed_set": seed_set}))
'''


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
    """A project with one stage ``fake`` (profiles ok, bad, slow, gpu) and committed outputs."""
    import initrepro.core.pipeline

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    conf = tmp_path / "pipelines" / "conf" / "fake"
    conf.mkdir(parents=True)
    (tmp_path / "pipelines" / "fake.py").write_text(FAKE_STAGE)
    (conf / "ok.yaml").write_text("fail: false\nsleep: 0\n")
    (conf / "bad.yaml").write_text("fail: true\nsleep: 0\n")
    (conf / "slow.yaml").write_text("fail: false\nsleep: 120\n")
    (conf / "gpu.yaml").write_text("fail: false\ndevice: cuda:99\n")
    (conf / "nodata.yaml").write_text("fail: false\ndataset: cifar100\n")
    for path, text in {"figures/fake/old.png": "old figure", "results/fake/claims.json": "old record"}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    monkeypatch.setattr(initrepro.core.pipeline, "PIPELINES_DIR", tmp_path / "pipelines")
    return tmp_path


def _outputs(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for d in ("figures", "results")
            for p in sorted((root / d).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("args, names", [
    (["--profile", "nope"], "profile must be one of ['bad', 'gpu', 'nodata', 'ok', 'slow']"),
    (["--seed-set", "-1"], "seed_set must be an integer >= 0"),
    (["--seed-set", "one"], "seed_set must be an integer >= 0"),
    (["--profile", "gpu"], "device must be one of"),
    (["--profile", "nodata"], "data: dataset='cifar100'"),
])
def test_bad_parameters_fail_in_one_line_before_running(fake_repo, capsys, args, names):
    before = _outputs(fake_repo)
    assert main(["fake", *args, "--output-root", str(fake_repo)]) == 2
    err = capsys.readouterr().err
    assert names in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _outputs(fake_repo) == before


def test_failing_notebook_leaves_the_outputs(fake_repo, capsys):
    before = _outputs(fake_repo)
    assert main(["fake", "--profile", "bad", "--output-root", str(fake_repo)]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: the fake stage fails on purpose" in err.splitlines()[-1]
    assert _outputs(fake_repo) == before
    assert (fake_repo / "executed" / "fake.failed.ipynb").exists()
    assert not any((fake_repo / ".stage-tmp").iterdir())


def test_successful_run_replaces_the_outputs_and_exports_html(fake_repo):
    import nbformat

    run_stage("fake", "ok", output_root=fake_repo, log_output=False)
    assert sorted(_outputs(fake_repo)) == ["figures/fake/new.png", "results/fake/claims.json",
                                           "results/fake/partial.json"]  # the old figure is gone
    executed = nbformat.read(str(fake_repo / "executed" / "fake.ipynb"), as_version=4)
    assert any("image/png" in o.get("data", {}) for c in executed.cells for o in c.get("outputs", []))
    html = (fake_repo / "reports" / "notebooks" / "fake.html").read_text()
    assert "data:image/png;base64," in html
    assert not any((fake_repo / ".stage-tmp").iterdir())


def test_replot_needs_cells_tagged_compute(fake_repo, capsys):
    before = _outputs(fake_repo)
    assert main(["fake", "--profile", "ok", "--replot", "--output-root", str(fake_repo)]) == 2
    assert "no cell is tagged 'compute'" in capsys.readouterr().err
    assert _outputs(fake_repo) == before


def test_run_without_figures_writes_only_results(fake_repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("seed_set_1")
    run_stage("fake", "ok", output_root=out, log_output=False, seed_set=1, figures=False)
    assert sorted(_outputs(out)) == ["results/fake/claims.json", "results/fake/partial.json"]
    assert not (out / "executed").exists() and not (out / "reports").exists()


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_interrupted_stage_leaves_the_outputs(fake_repo, signum):
    import signal
    import subprocess
    import sys
    import time

    before = _outputs(fake_repo)
    # The subprocess finds the fake project from its working directory (the nearest dvc.yaml).
    proc = subprocess.Popen([sys.executable, "-m", "initrepro.core.pipeline", "fake", "--profile", "slow"],
                            cwd=fake_repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list((fake_repo / ".stage-tmp").glob("*/results/fake/partial.json")) and time.time() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(getattr(signal, signum))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "left as they were" in err
    assert _outputs(fake_repo) == before
    assert not list((fake_repo / ".stage-tmp").glob("*/results"))
