"""Fan out (stage, seed set) runs as submitit jobs (SLURM, or this machine); results come back as DVC experiments.

    python -m initrepro.core.cluster --stages zero_init idinit --seed-sets 0 1 --profile paper \\
        --executor slurm --slurm-partition gpu --gpus-per-node 1 --timeout-min 720
    python -m initrepro.core.cluster --stages relu_isometry --seed-sets 0 1 --profile tiny   # --executor local
    make paper CLUSTER=slurm            # every claim stage at the paper profile, seed set 0
    make stability CLUSTER=local        # seed sets 1-3, records also into reports/seed_sets/<k>/

Each (stage, seed set) is one submitit job; submitit (and SLURM behind it) does the scheduling,
no process of ours. A job clones this repository at the current commit (``git clone --shared``
into its own folder; the working tree must be clean, or nothing is submitted), links ``data/``
into the clone, runs the stage there as a DVC experiment

    dvc exp run <stage> -S profile=<P> -S seed_set=<K> --name <stage>-<P>-ss<K>

with the clone's own code (``PYTHONPATH=<clone>/src``), and pushes the experiment back to this
repository (the clone's git remote ``origin``: ``dvc exp push --no-cache -f origin <name>``;
every output is ``cache: false``, so git carries all of it). Afterwards ``dvc exp show`` lists
them (``dvc exp show --rev <commit>`` once HEAD has moved on), ``dvc exp apply <name>`` brings
one into the workspace. A rerun of the same (stage, profile, seed set) on the same commit
replaces its experiment.

The caller waits for the jobs with a progress line, then reports each job (a failed job's
stderr tail included); exit status 0 when every job succeeded, 1 when one failed, 2 on a bad
argument or a dirty working tree (one line, before anything is submitted).

The local executor (submitit's ``LocalExecutor``) starts each job as a process on this
machine; it has no queue, so ``--max-parallel`` (default 1 there) holds back submissions until
a slot is free. On SLURM the jobs go in as one job array, ``--max-parallel`` being its
``%`` limit (default: none).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from initrepro.core.claims import REPO_ROOT

EXECUTORS = ("local", "slurm")
DEFAULT_FOLDER = Path.home() / ".cache" / "initrepro" / "cluster"


class ClusterError(ValueError):
    """A bad argument or state, found before any job is submitted; the message is one line."""


def experiment_name(stage: str, profile: str, seed_set: int) -> str:
    return f"{stage}-{profile}-ss{seed_set}"


# --- checks before submitting --------------------------------------------------------------


def check_args(stages, seed_sets, profile: str | None, executor: str, root: Path = REPO_ROOT):
    """(stages, seed sets, profile) checked; raises :class:`ClusterError` with one line."""
    from initrepro.core.pipeline import ParameterError, check_data, check_params, check_seed_set, load_conf
    from initrepro.core.stability import claim_stages, current_profile

    if executor not in EXECUTORS:
        raise ClusterError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    known = claim_stages(root)
    stages = list(stages or known)
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise ClusterError(f"stage must be one of {known}, got {', '.join(map(repr, unknown))}")
    if not seed_sets:
        raise ClusterError("seed_sets: give at least one (0 = the committed seeds, 1, 2, 3, ...)")
    profile = profile or current_profile(root)
    try:
        seed_sets = list(dict.fromkeys(check_seed_set(k) for k in seed_sets))
        for stage in stages:
            if executor == "local":  # every check a stage run makes, here before any job
                check_params(stage, profile, seed_sets[0])
            else:  # on SLURM the devices are the compute nodes', not this machine's
                check_data(stage, profile, load_conf(stage, profile))
    except ParameterError as err:
        raise ClusterError(str(err)) from None
    if executor == "slurm" and shutil.which("sbatch") is None:
        raise ClusterError("executor slurm: no SLURM on this machine (sbatch is not on PATH); "
                           "--executor local runs the same jobs here")
    return list(dict.fromkeys(stages)), seed_sets, profile


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if out.returncode:
        raise ClusterError(f"git {' '.join(args)} failed in {root}: {out.stderr.strip().splitlines()[-1:]}")
    return out.stdout


def clean_commit(root: Path = REPO_ROOT) -> str:
    """The commit the jobs will run; raises :class:`ClusterError` unless the working tree is clean."""
    changed = [line[3:] for line in _git(root, "status", "--porcelain").splitlines() if line.strip()]
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        raise ClusterError(f"the working tree is not clean ({shown}): the jobs run the commit in clones, "
                           "so commit or stash the changes first")
    return _git(root, "rev-parse", "HEAD").strip()


# --- one job ---------------------------------------------------------------------------------


def _run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> None:
    """Run ``cmd`` with its output in this job's stderr log; raise when it fails."""
    print("$ " + " ".join(map(str, cmd)), file=sys.stderr, flush=True)
    sys.stdout.flush()
    rc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, stdout=sys.stderr.fileno(),
                        stderr=sys.stderr.fileno()).returncode
    if rc:
        raise RuntimeError(f"`{' '.join(map(str, cmd[:6]))}{' ...' if len(cmd) > 6 else ''}` exited with {rc}")


def run_job(repo: str, commit: str, stage: str, seed_set: int, profile: str, workdir: str,
            keep_clone: bool = False) -> dict:
    """The body of one submitit job: clone at ``commit``, ``dvc exp run`` the stage, push it back.

    Returns the experiment name, the seconds taken and the stage's ``results/<stage>/`` files.
    """
    from initrepro.core.stability import _threads

    start = time.perf_counter()
    name = experiment_name(stage, profile, seed_set)
    clone = Path(workdir) / name
    if clone.exists():
        shutil.rmtree(clone)
    clone.parent.mkdir(parents=True, exist_ok=True)
    _run(["git", "clone", "--quiet", "--shared", "--no-checkout", repo, clone])
    _run(["git", "-C", clone, "checkout", "--quiet", "--detach", commit])
    data = Path(repo) / "data"
    if data.is_dir() and not (clone / "data").exists():  # git-ignored: never part of the experiment
        (clone / "data").symlink_to(data.resolve(), target_is_directory=True)
    python = sys.executable
    env = dict(os.environ)
    # The stage's `python` is this environment's; its code is the clone's, not the installed checkout's.
    env["PATH"] = os.pathsep.join([str(Path(python).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(clone / "src"), env.get("PYTHONPATH", "")] if p)
    threads = _threads(stage, profile, clone)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    _run([python, "-m", "dvc", "exp", "run", stage, "-S", f"profile={profile}", "-S", f"seed_set={seed_set}",
          "--name", name], cwd=clone, env=env)
    _run([python, "-m", "dvc", "exp", "push", "--no-cache", "--force", "origin", name], cwd=clone, env=env)
    results = {p.name: p.read_text() for p in sorted((clone / "results" / stage).glob("*.json"))}
    if not keep_clone:
        shutil.rmtree(clone, ignore_errors=True)
    return {"name": name, "stage": stage, "seed_set": seed_set, "profile": profile,
            "seconds": time.perf_counter() - start, "results": results}


# --- submitting and waiting ----------------------------------------------------------------


# submitit 1.5.3 imports pkg_resources (setuptools < 82), which warns on import: here and in the jobs.
_PKG_RESOURCES_WARNING = "ignore:pkg_resources is deprecated:UserWarning"


def make_executor(kind: str, folder: Path, timeout_min: int, gpus_per_node: int, cpus_per_task: int | None,
                  slurm_partition: str | None, max_parallel: int, slurm_args: dict | None = None):
    import warnings

    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    os.environ["PYTHONWARNINGS"] = ",".join(w for w in [os.environ.get("PYTHONWARNINGS"), _PKG_RESOURCES_WARNING] if w)
    import submitit

    executor = submitit.AutoExecutor(folder=folder / "submitit", cluster=kind)
    params = {"timeout_min": timeout_min, "name": "initrepro"}
    if gpus_per_node:
        params["gpus_per_node"] = gpus_per_node
    if cpus_per_task:
        params["cpus_per_task"] = cpus_per_task
    if kind == "slurm":
        if slurm_partition:
            params["slurm_partition"] = slurm_partition
        if max_parallel:
            params["slurm_array_parallelism"] = max_parallel
        params.update(slurm_args or {})
    executor.update_parameters(**params)
    return executor


def _summary(result: dict) -> str:
    try:
        record = json.loads(result["results"]["claims.json"])
    except (KeyError, ValueError):
        return "no claim record"
    counts: dict[str, int] = {}
    for claim in record.get("claims", []):
        counts[claim.get("verdict", "?")] = counts.get(claim.get("verdict", "?"), 0) + 1
    return ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in sorted(counts.items())) or "no claims"


def _stderr_tail(job, lines: int = 15) -> str:
    """The last lines of the job's stderr before submitit's own traceback of the job function."""
    try:
        text = job.stderr() or ""
    except Exception:  # noqa: BLE001 - a missing log must not hide the job's status
        text = ""
    log = text.rstrip().splitlines()
    cut = next((i for i in range(len(log) - 1, -1, -1) if "submitit ERROR" in log[i]), len(log))
    return "\n".join("    " + line for line in log[:cut][-lines:]) or "    (no stderr log)"


def _reason(error: Exception) -> str:
    """The line of a job's error that says what failed (submitit's message ends with log paths)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    named = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception", "Interrupt"))]
    return (named or lines or [type(error).__name__])[-1]


def submit_and_wait(executor, kind: str, pairs, commit: str, profile: str, workdir: Path, max_parallel: int,
                    poll_s: float, keep_clones: bool, root: Path, out=sys.stdout) -> list[tuple]:
    """Submit one job per (stage, seed set), wait for all; [(stage, k, job, result or None, error or None)]."""
    def args(stage, k):
        return (str(root), commit, stage, k, profile, str(workdir / "clones"), keep_clones)

    if kind == "slurm":  # one job array; SLURM queues and throttles it
        with executor.batch():
            jobs = [executor.submit(run_job, *args(s, k)) for s, k in pairs]
        queue, running = [], list(zip(pairs, jobs))
    else:  # the local executor starts each job at once: hold back submissions beyond max_parallel
        queue, running = list(pairs), []
    finished, start, last = {}, time.monotonic(), None
    last_t = start
    while queue or running:
        while queue and (not max_parallel or len(running) < max_parallel):
            pair = queue.pop(0)
            running.append((pair, executor.submit(run_job, *args(*pair))))
        for pair, job in list(running):
            if job.done():
                running.remove((pair, job))
                try:
                    finished[pair] = (job, job.result(), None)
                except Exception as err:  # noqa: BLE001 - reported per job below
                    finished[pair] = (job, None, err)
        failed = sum(1 for _, _, e in finished.values() if e is not None)
        line = (f"cluster: {len(finished)}/{len(pairs)} done ({failed} failed), {len(running)} submitted"
                + (f", {len(queue)} waiting" if queue else "")
                + (": " + ", ".join(f"{s}/ss{k}" for (s, k), _ in running) if running else ""))
        now = time.monotonic()
        if line != last or now - last_t >= 60:  # on every change, else once a minute
            print(f"{line} ({now - start:.0f} s)", file=out, flush=True)
            last, last_t = line, now
        if queue or running:
            time.sleep(poll_s)
    return [(s, k, *finished[(s, k)]) for s, k in pairs]


def print_outcomes(outcomes, out=None) -> int:
    """One line per job (a failed one with its stderr tail); returns how many failed."""
    out = out or sys.stdout
    failed = 0
    for stage, k, job, result, error in outcomes:
        if error is None:
            print(f"ok      {stage} seed set {k}: experiment {result['name']}, {result['seconds']:.0f} s, "
                  f"{_summary(result)}", file=out)
        else:
            failed += 1
            print(f"FAILED  {stage} seed set {k} (job {job.job_id}): {_reason(error)}\n"
                  f"  stderr tail:\n{_stderr_tail(job)}", file=out)
    return failed


def write_seed_set_records(outcomes, root: Path) -> list[Path]:
    """Each finished job's ``results/<stage>/`` files into ``reports/seed_sets/<k>/`` (k >= 1), for the stability report."""
    from initrepro.core.claims import atomic_write_text
    from initrepro.core.stability import seed_set_root

    written = []
    for stage, k, _job, result, error in outcomes:
        if error is not None or k == 0:
            continue
        for fname, text in result["results"].items():
            path = seed_set_root(k, root) / "results" / stage / fname
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
            written.append(path)
    return written


def main(argv: list[str] | None = None, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=None, help="claim stages (default: all of dvc.yaml's)")
    parser.add_argument("--seed-sets", nargs="+", default=["0"], help="integers >= 0 (default: 0)")
    parser.add_argument("--profile", default=None, help="default: params.yaml's")
    parser.add_argument("--executor", default="local", help=f"one of {list(EXECUTORS)} (default: local)")
    parser.add_argument("--folder", default=None,
                        help=f"job logs and clones (default: {DEFAULT_FOLDER}/<time>); on SLURM a shared filesystem")
    parser.add_argument("--timeout-min", type=int, default=24 * 60, help="per job (default: 1440)")
    parser.add_argument("--gpus-per-node", type=int, default=0)
    parser.add_argument("--cpus-per-task", type=int, default=None, help="default on slurm: the confs' threads")
    parser.add_argument("--slurm-partition", default=None)
    parser.add_argument("--max-parallel", type=int, default=None,
                        help="jobs at a time (default: 1 on local, no limit on slurm)")
    parser.add_argument("--into-seed-sets", action="store_true",
                        help="also write each record of seed set k >= 1 into reports/seed_sets/<k>/ (make stability)")
    parser.add_argument("--keep-clones", action="store_true", help="keep each job's clone after it succeeded")
    parser.add_argument("--poll-s", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        stages, seed_sets, profile = check_args(args.stages, args.seed_sets, args.profile, args.executor, root)
        if args.max_parallel is not None and args.max_parallel < 0:
            raise ClusterError(f"max_parallel must be >= 0 (0: no limit), got {args.max_parallel}")
        commit = clean_commit(root)
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    max_parallel = args.max_parallel if args.max_parallel is not None else (1 if args.executor == "local" else 0)
    folder = Path(args.folder) if args.folder else DEFAULT_FOLDER / time.strftime("%Y%m%d-%H%M%S")
    folder = folder.resolve()
    pairs = [(s, k) for k in seed_sets for s in stages]
    if args.cpus_per_task is None and args.executor == "slurm":  # the stages' own `threads`
        from initrepro.core.stability import _threads

        args.cpus_per_task = max([_threads(s, profile, root) or 1 for s in stages])
    executor = make_executor(args.executor, folder, args.timeout_min, args.gpus_per_node, args.cpus_per_task,
                             args.slurm_partition, max_parallel)
    print(f"cluster: {len(pairs)} jobs ({len(stages)} stages x seed sets {seed_sets}, profile {profile}) on "
          f"{args.executor}, commit {commit[:7]}, "
          f"{max_parallel or 'no limit'} at a time; logs and clones in {folder}", flush=True)
    try:
        outcomes = submit_and_wait(executor, args.executor, pairs, commit, profile, folder, max_parallel,
                                   args.poll_s, args.keep_clones, root)
    except KeyboardInterrupt:
        print("interrupted: " + ("local jobs end with this process" if args.executor == "local" else
                                 f"the SLURM jobs keep running (scancel them: logs in {folder / 'submitit'})"),
              file=sys.stderr)
        return 130
    failed = print_outcomes(outcomes)
    if args.into_seed_sets:
        written = write_seed_set_records(outcomes, root)
        print(f"{len(written)} record files written under reports/seed_sets/")
    print(f"{len(pairs) - failed} of {len(pairs)} experiments are back: dvc exp show --rev {commit[:7]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
