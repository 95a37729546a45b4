"""The cluster route (initrepro.core.cluster): argument checks, the clean-tree rule, and the
submitit local-executor fan-out end to end, back as DVC experiments."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

import initrepro.core.cluster as cluster
from initrepro.core.claims import REPO_ROOT

# The two cheapest stages at the tiny profile (about 12 s each, `--no-figures`, 2-core CPU).
CHEAP_STAGES = ["relu_isometry", "identity_init"]


@pytest.fixture
def no_submission(monkeypatch):
    """Fails the test if anything reaches submitit."""
    def refuse(*args, **kwargs):
        raise AssertionError("a job was about to be submitted")

    monkeypatch.setattr(cluster, "make_executor", refuse)
    monkeypatch.setattr(cluster, "submit_and_wait", refuse)


@pytest.mark.parametrize("args, words", [
    (["--stages", "no_such_stage"], "stage must be one of"),
    (["--stages", "relu_isometry", "report"], "stage must be one of"),
    (["--stages", "relu_isometry", "--profile", "huge"], "profile must be one of"),
    (["--stages", "relu_isometry", "--seed-sets", "-1"], "seed_set must be an integer >= 0"),
    (["--stages", "relu_isometry", "--seed-sets", "0", "one"], "seed_set must be an integer >= 0"),
    (["--stages", "relu_isometry", "--executor", "pbs"], "executor must be one of"),
    (["--stages", "relu_isometry", "--max-parallel", "-1"], "max_parallel must be >= 0"),
])
def test_bad_arguments_fail_in_one_line_before_any_job(no_submission, capsys, args, words):
    assert cluster.main(args + ["--profile", "tiny"] if "--profile" not in args else args) == 2
    err = capsys.readouterr().err.strip()
    assert words in err
    assert len(err.splitlines()) == 1, err


def test_slurm_without_sbatch_says_so(no_submission, monkeypatch, capsys):
    monkeypatch.setattr(cluster.shutil, "which", lambda name: None)
    assert cluster.main(["--stages", "relu_isometry", "--profile", "tiny", "--executor", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no SLURM" in err and "--executor local" in err and len(err.splitlines()) == 1


def _clone(target):
    subprocess.run(["git", "clone", "--quiet", "--shared", str(REPO_ROOT), str(target)], check=True)
    return target


def test_a_dirty_working_tree_is_refused(no_submission, tmp_path, capsys):
    repo = _clone(tmp_path / "repo")
    assert cluster.clean_commit(repo)  # a fresh clone is clean
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "# edited\n")
    (repo / "notes.txt").write_text("untracked\n")
    assert cluster.main(["--stages", "relu_isometry", "--profile", "tiny"], root=repo) == 2
    err = capsys.readouterr().err.strip()
    assert "working tree is not clean" in err and "params.yaml" in err and "notes.txt" in err
    assert len(err.splitlines()) == 1, err


def _exp_show(repo, env):
    out = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--no-pager", "--csv"], cwd=repo, env=env,
                         capture_output=True, text=True, check=True).stdout
    return out, [row["Experiment"] for row in csv.DictReader(io.StringIO(out)) if row.get("Experiment")]


@pytest.mark.notebook
def test_local_executor_fan_out_comes_back_as_dvc_experiments(tmp_path):
    """Two stages at tiny over seed sets 0 and 1: four submitit jobs (one at a time), four experiments."""
    repo = _clone(tmp_path / "repo")
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "OMP_NUM_THREADS": "1"}
    for var, value in [("GIT_AUTHOR_NAME", "initrepro test"), ("GIT_AUTHOR_EMAIL", "test@initrepro.invalid"),
                       ("GIT_COMMITTER_NAME", "initrepro test"), ("GIT_COMMITTER_EMAIL", "test@initrepro.invalid")]:
        env.setdefault(var, value)
    run = subprocess.run([sys.executable, "-m", "initrepro.core.cluster", "--stages", *CHEAP_STAGES,
                          "--seed-sets", "0", "1", "--profile", "tiny", "--executor", "local", "--max-parallel", "1",
                          "--folder", str(tmp_path / "jobs"), "--timeout-min", "20", "--poll-s", "1"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 of 4 experiments are back" in run.stdout
    assert "cluster: 4/4 done (0 failed)" in run.stdout  # the progress line
    table, names = _exp_show(repo, env)
    expected = {cluster.experiment_name(s, "tiny", k) for s in CHEAP_STAGES for k in (0, 1)}
    assert expected <= set(names), table
    # Each experiment holds its stage's record, made under its own seed set and profile.
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    for stage in CHEAP_STAGES:
        for k in (0, 1):
            ref = f"refs/exps/{commit[:2]}/{commit[2:]}/{cluster.experiment_name(stage, 'tiny', k)}"
            record = json.loads(subprocess.run(["git", "show", f"{ref}:results/{stage}/claims.json"], cwd=repo,
                                               capture_output=True, text=True, check=True).stdout)
            assert record["profile"] == "tiny" and record["environment"]["seed_set"] == k
    # The caller's working tree is untouched; the clones are gone after success.
    assert not subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert not list((tmp_path / "jobs" / "clones").glob("*"))


class _FakeJob:
    job_id = "4242"

    def stderr(self):
        return ("\n".join(f"line {i}" for i in range(40)) + "\nerror: stage relu_isometry failed in cell 7\n"
                "submitit ERROR (2026-11-30 14:40:10,962) - Submitted job triggered an exception\n"
                "Traceback (most recent call last):\n  File \"<dynamic-code>\", line 118, in _run\n")


def test_a_failed_job_is_reported_with_its_stderr_tail(tmp_path):
    ok = {"name": "identity_init-tiny-ss1", "seconds": 12.3,
          "results": {"claims.json": json.dumps({"claims": [{"verdict": "reproduced"}, {"verdict": "skipped"}]})}}
    outcomes = [("identity_init", 1, None, ok, None),
                ("relu_isometry", 1, _FakeJob(), None,
                 RuntimeError("Job (task=0) failed during processing with trace:\n----\nTraceback ...\n"
                              "RuntimeError: `dvc exp run ...` exited with 1\n\nYou can check full logs with:\n"
                              "  - /jobs/4242_0_log.err\n  - /jobs/4242_0_log.out"))]
    out = io.StringIO()
    assert cluster.print_outcomes(outcomes, out) == 1
    text = out.getvalue()
    assert "ok      identity_init seed set 1: experiment identity_init-tiny-ss1, 12 s, 1 reproduced, 1 skipped" in text
    assert "FAILED  relu_isometry seed set 1 (job 4242): RuntimeError: `dvc exp run ...` exited with 1\n" in text
    # the stage's own last lines, not submitit's traceback of the job function
    assert "error: stage relu_isometry failed in cell 7" in text and "line 39" in text and "line 5\n" not in text
    assert "submitit ERROR" not in text and "_run" not in text
    # Records of seed sets >= 1 go where the stability report reads them; failed jobs write nothing.
    written = cluster.write_seed_set_records(outcomes, tmp_path)
    assert written == [tmp_path / "reports" / "seed_sets" / "1" / "results" / "identity_init" / "claims.json"]


def test_slurm_jobs_ask_for_the_partition_gpus_time_and_threads(tmp_path, monkeypatch):
    """The sbatch script submitit would write (no SLURM here: stand-ins for srun and sbatch)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONWARNINGS", "")  # make_executor adds to it; restored after the test
    executor = cluster.make_executor("slurm", tmp_path / "jobs", timeout_min=720, gpus_per_node=1, cpus_per_task=4,
                                     slurm_partition="gpu", max_parallel=3)
    script = executor._executor._make_submission_file_text("CMD", "uid")
    for line in ["--partition=gpu", "--gpus-per-node=1", "--time=720", "--cpus-per-task=4", "--job-name=initrepro"]:
        assert f"#SBATCH {line}" in script, script
    assert executor._executor.parameters["array_parallelism"] == 3  # the job array's % limit
