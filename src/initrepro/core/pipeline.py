"""Run one stage notebook: check every parameter first, run it, keep its outputs only on success.

    python -m initrepro.core.pipeline fractional_lognorm --profile smoke --seed-set 0

1. Every parameter is checked before any heavy work: the stage, the profile (a conf file
   ``pipelines/conf/<stage>/<profile>.yaml``), the seed set (an integer >= 0), the datasets
   the profile names (embedded, or their files under ``data/``) and its device. A bad one ends
   the run in one line that names it and the allowed values, exit status 2 (``--verbose``
   adds the traceback).
2. The notebook runs with papermill into a temporary folder ``<output root>/.stage-tmp/``. It
   gets its conf file's values as papermill parameters, plus ``profile``, ``seed_set`` (see
   :mod:`initrepro.core.seeding`) and ``output_root`` (that temporary folder).
3. Only when it succeeds are its files moved into place, one ``os.replace`` per file:
   ``figures/<stage>/`` (figures it no longer draws are then removed), ``results/<stage>/``
   (the claim record last), ``executed/<stage>.ipynb`` and its HTML export
   ``reports/notebooks/<stage>.html``. A failed or interrupted run leaves every earlier output
   as it was (the failed notebook is kept as ``executed/<stage>.failed.ipynb``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import yaml

from initrepro.core.claims import REPO_ROOT
from initrepro.data_files import DATASET_KEY_SUFFIX  # conf keys that name a dataset end with it

PIPELINES_DIR = REPO_ROOT / "pipelines"
TMP_DIR = ".stage-tmp"
#: device files of a GPU driver (NVIDIA's; ROCm's /dev/kfd): with none of them no CUDA device
#: can exist here, which :func:`check_device` can then say without importing torch (seconds)
GPU_DRIVER_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version", "/dev/kfd")


class ParameterError(ValueError):
    """A bad stage parameter; its message names the parameter and the allowed values."""


class StageFailed(RuntimeError):
    """The notebook raised; the message says where and what, in one line."""


def stages() -> list[str]:
    return sorted(p.stem for p in PIPELINES_DIR.glob("*.py"))


def profiles(stage: str) -> list[str]:
    return sorted(p.stem for p in (PIPELINES_DIR / "conf" / stage).glob("*.yaml"))


def load_conf(stage: str, profile: str) -> dict:
    """The parameters of ``stage`` under ``profile``; a clear error for unknown names."""
    if stage not in stages():
        raise ParameterError(f"stage must be one of {stages()}, got {stage!r}")
    known = profiles(stage)
    if profile not in known:
        raise ParameterError(f"profile must be one of {known} for stage {stage!r}, got {profile!r}")
    return yaml.safe_load((PIPELINES_DIR / "conf" / stage / f"{profile}.yaml").read_text()) or {}


def check_seed_set(seed_set) -> int:
    """``seed_set`` as an int; any integer >= 0 is a seed set (see :mod:`initrepro.core.seeding`)."""
    try:
        value = int(str(seed_set).strip())
    except ValueError:
        value = None
    if value is None or value < 0 or (isinstance(seed_set, float) and seed_set != value):
        raise ParameterError(f"seed_set must be an integer >= 0 (0 = the committed records, 1, 2, 3, ... "
                             f"= other seeds), got {seed_set!r}")
    return value


def check_data(stage: str, profile: str, conf: dict, data_dir: Path | None = None) -> None:
    """Every dataset the conf names is embedded or has all its files under ``data/`` (a presence
    check, no checksums and no torch: ``make data`` verifies the files when it fetches them)."""
    from initrepro import data_files

    data_dir = Path(data_dir or data_files.DATA_DIR)
    known = sorted(data_files.EMBEDDED_NAMES) + sorted(data_files.DATASETS)
    for key, name in conf.items():
        if not key.endswith(DATASET_KEY_SUFFIX) or name is None:
            continue
        if name not in known:
            raise ParameterError(f"{key} must be one of {known} (pipelines/conf/{stage}/{profile}.yaml), got {name!r}")
        if name in data_files.EMBEDDED_NAMES:
            continue
        missing = data_files.problems(name, data_dir, verify=False)
        if missing:
            folder = data_dir / data_files.TORCHVISION_FILES[name]
            raise ParameterError(
                f"data: {key}={name!r} (profile {profile!r}) is not under {folder} ({missing[0]}); fetch it with "
                f"`make data` (needs internet, about {data_files.DATASETS[name].download_mb} MB), or copy "
                f"{data_files.TORCHVISION_FILES[name]} from a machine that has it into {data_dir}")


def _cuda_devices() -> int:
    """Number of CUDA devices here: 0 at once when no GPU driver is installed, else torch's count."""
    if not any(Path(path).exists() for path in GPU_DRIVER_FILES):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device(stage: str, profile: str, conf: dict) -> None:
    """The conf's ``device`` exists on this machine (``cpu``, ``cuda`` or ``cuda:<index>``)."""
    device = conf.get("device")
    if device is None or str(device) == "cpu":
        return
    kind, _, index = str(device).partition(":")
    count = _cuda_devices() if kind == "cuda" else 0
    allowed = ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(count)] if count else [])
    if kind == "cuda" and count > 0 and (index == "" or (index.isdigit() and int(index) < count)):
        return
    missing = "no CUDA device here; run this profile on a machine with one" if kind == "cuda" and not count else ""
    raise ParameterError(f"device must be one of {allowed} on this machine (pipelines/conf/{stage}/{profile}.yaml), "
                         f"got {device!r}" + (f": {missing}" if missing else ""))


def check_params(stage: str, profile: str, seed_set=0, overrides: dict | None = None) -> dict:
    """Check every parameter of a run before any heavy work; returns the conf with ``overrides``.
    A missing device and missing data are both named, in one line."""
    conf = {**load_conf(stage, profile), **(overrides or {})}
    check_seed_set(seed_set)
    errors = []
    for check in (check_device, check_data):
        try:
            check(stage, profile, conf)
        except ParameterError as err:
            errors.append(str(err))
    if errors:
        raise ParameterError("; and ".join(errors))
    return conf


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_tmp(root: Path, stage: str) -> None:
    """Remove temporary folders of earlier runs of ``stage`` whose process is gone."""
    for folder in (root / TMP_DIR).glob(f"{stage}-*"):
        try:
            pid = int(folder.name[len(stage) + 1:].split("-", 1)[0])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)


def _move_tree(source: Path, target: Path, remove_stale: bool) -> None:
    """Move every file of ``source`` into ``target`` (one ``os.replace`` each; names sorted,
    ``claims.json`` last); then, if ``remove_stale``, delete the files of ``target`` that
    ``source`` did not have."""
    files = sorted((p for p in source.rglob("*") if p.is_file()), key=lambda p: (p.name == "claims.json", str(p)))
    for path in files:
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o644)
        os.replace(path, dest)
    if remove_stale and target.is_dir():
        keep = {target / p.relative_to(source) for p in files}
        for old in target.rglob("*"):
            if old.is_file() and old not in keep:
                old.unlink()


def _last_runtime(root: Path, stage: str) -> float | None:
    try:
        return float(json.loads((root / "results" / stage / "claims.json").read_text())["runtime_s"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def run_stage(stage: str, profile: str = "smoke", output_root: str | os.PathLike = REPO_ROOT,
              executed: str | os.PathLike | None = None, overrides: dict | None = None,
              log_output: bool = True, seed_set: int = 0, figures: bool = True,
              html: bool | None = None, replot: bool = False) -> Path:
    """Execute ``pipelines/<stage>.py`` with papermill; returns the path of its claim record.

    The run writes into a temporary folder under ``output_root``; its files are moved into
    place only on success (see the module docstring). ``figures=False`` keeps only
    ``results/<stage>/`` (no figures, executed notebook or HTML: e.g. for other seed sets).
    ``html`` (default: ``figures``) exports the executed notebook to ``reports/notebooks/<stage>.html``.
    ``replot=True`` redraws the figures from the committed measurements: the notebook runs
    without its cells tagged ``compute`` (see :func:`without_compute`), and only
    ``figures/<stage>/`` is replaced.
    Raises :class:`ParameterError` before running on a bad parameter, :class:`StageFailed` when
    the notebook raises.
    """
    import jupytext
    import papermill

    seed_set = check_seed_set(seed_set)
    params = check_params(stage, profile, seed_set, overrides)
    root = Path(output_root).resolve()
    html = figures if html is None else html
    notebook = jupytext.read(PIPELINES_DIR / f"{stage}.py")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if replot:
        notebook = without_compute(notebook, stage)
    _clean_stale_tmp(root, stage)
    (root / TMP_DIR).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{stage}-{os.getpid()}-", dir=root / TMP_DIR))
    executed = Path(executed) if executed else root / "executed" / f"{stage}.ipynb"
    run_nb = tmp / f"{stage}.ipynb"
    params.update(profile=profile, seed_set=seed_set, output_root=str(tmp), replot=replot)
    if replot:  # the notebook reads the committed record from its own output root
        shutil.copytree(root / "results" / stage, tmp / "results" / stage)
    # Progress bars go to the stage log line by line: update them every 10 s at most.
    os.environ.setdefault("TQDM_MININTERVAL", "10")
    try:
        try:
            papermill.execute_notebook(notebook, str(run_nb), parameters=params, kernel_name="python3",
                                       log_output=log_output, progress_bar=False, cwd=str(REPO_ROOT),
                                       # no "[IPKernelApp] WARNING | Kernel is running over TCP ..."
                                       extra_arguments=["--IPKernelApp.log_level=ERROR"])
        except papermill.PapermillExecutionError as err:
            failed = executed.with_name(f"{stage}.failed.ipynb")
            if run_nb.exists():
                failed.parent.mkdir(parents=True, exist_ok=True)
                os.replace(run_nb, failed)
            evalue = " ".join(str(err.evalue).split())
            raise StageFailed(f"stage {stage} failed in cell {err.exec_count}: {err.ename}: {evalue[:400]} "
                              f"(outputs left as they were; the failed notebook: {failed})") from err
        if replot:
            _move_tree(tmp / "figures" / stage, root / "figures" / stage, remove_stale=True)
            return root / "results" / stage / "claims.json"
        record = tmp / "results" / stage / "claims.json"
        if not record.exists():
            raise StageFailed(f"stage {stage} ran but wrote no claim record (record.write() missing?); "
                              f"outputs left as they were")
        if figures:
            _move_tree(tmp / "figures" / stage, root / "figures" / stage, remove_stale=True)
        _move_tree(tmp / "results" / stage, root / "results" / stage, remove_stale=False)
        if figures:
            executed.parent.mkdir(parents=True, exist_ok=True)
            os.replace(run_nb, executed)
            executed.with_name(f"{stage}.failed.ipynb").unlink(missing_ok=True)
        if html:
            from initrepro.core.files import atomic_write_text
            from initrepro.core.notebook_html import notebook_to_html

            source = executed if figures else run_nb
            atomic_write_text(root / "reports" / "notebooks" / f"{stage}.html",
                              notebook_to_html(source, f"{stage} ({profile}, seed set {seed_set})"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / "results" / stage / "claims.json"


COMPUTE_TAG = "compute"


def without_compute(notebook, stage: str):
    """``notebook`` without its cells tagged ``compute`` (the experiments and ``record.write()``):
    what is left loads the committed record and draws the figures from it."""
    cells = [c for c in notebook.cells if COMPUTE_TAG not in c.get("metadata", {}).get("tags", [])]
    if len(cells) == len(notebook.cells):
        raise ParameterError(f"stage {stage}: no cell is tagged {COMPUTE_TAG!r}, so its figures cannot be "
                             f"redrawn without rerunning it")
    notebook.cells = cells
    return notebook


def progress_line(stage: str, profile: str, seed_set: int, root: Path) -> str:
    """"stage k of N (dvc.yaml order)", with the last recorded runtimes of it and of the stages after it."""
    try:
        order = [s for s in (yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text()) or {}).get("stages", {})
                 if s != "report"]
    except (OSError, yaml.YAMLError):
        order = []
    where = f" {order.index(stage) + 1} of {len(order)}" if stage in order else ""
    last = _last_runtime(root, stage)
    after = [t for t in (_last_runtime(root, s) for s in order[order.index(stage) + 1:]) if t] if stage in order else []
    return (f"stage{where}: {stage} (profile {profile}, seed set {seed_set}), started {time.strftime('%H:%M:%S')}"
            + (f"; last run took {last:.0f} s" if last else "")
            + (f"; the stages after it took {sum(after) / 60:.1f} min" if after else ""))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seed-set", default="0", help="an integer >= 0; moves every seed to a disjoint range")
    parser.add_argument("--output-root", default=None,
                        help="where figures/, results/, executed/ and reports/notebooks/ go (default: the working directory)")
    parser.add_argument("--no-figures", action="store_true",
                        help="keep only results/<stage>/ (no figures, executed notebook or HTML)")
    parser.add_argument("--replot", action="store_true",
                        help="only redraw figures/<stage>/ from the committed measurements (no compute)")
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    args = parser.parse_args(argv)
    # DVC runs stage commands from the project root: its own, also in `dvc exp run --temp`.
    root = Path(args.output_root) if args.output_root else Path.cwd()
    try:
        seed_set = check_seed_set(args.seed_set)
        check_params(args.stage, args.profile, seed_set)
    except ParameterError as err:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Our own handler for both: asyncio's runner (under papermill) replaces only the default
    # SIGINT handler, with one that cancels a task that the notebook client can swallow.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    if not args.replot:
        print(progress_line(args.stage, args.profile, seed_set, root), file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        run_stage(args.stage, args.profile, output_root=root, seed_set=seed_set, figures=not args.no_figures,
                  replot=args.replot)
    except (StageFailed, ParameterError) as err:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 1 if isinstance(err, StageFailed) else 2
    except KeyboardInterrupt:
        print(f"interrupted: stage {args.stage}'s outputs left as they were", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    what = "figures redrawn" if args.replot else "done"
    print(f"stage {args.stage} {what} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
