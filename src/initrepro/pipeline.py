"""Run one stage notebook: check the profile, convert the jupytext notebook, run papermill.

    python -m initrepro.pipeline fractional_lognorm --profile smoke

The notebook gets its conf file's values as papermill parameters, plus ``profile``,
``seed_set`` (see :mod:`initrepro.seeding`) and ``output_root`` (where ``figures/`` and ``results/`` go; tests point it at a temp folder).
The executed notebook lands in ``executed/<stage>.ipynb`` (a cached DVC output).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from initrepro.claims import REPO_ROOT
from initrepro.seeding import shift

PIPELINES_DIR = REPO_ROOT / "pipelines"


def stages() -> list[str]:
    return sorted(p.stem for p in PIPELINES_DIR.glob("*.py"))


def profiles(stage: str) -> list[str]:
    return sorted(p.stem for p in (PIPELINES_DIR / "conf" / stage).glob("*.yaml"))


def load_conf(stage: str, profile: str) -> dict:
    """The parameters of ``stage`` under ``profile``; a clear error for unknown names."""
    if stage not in stages():
        raise ValueError(f"stage must be one of {stages()}, got {stage!r}")
    known = profiles(stage)
    if profile not in known:
        raise ValueError(f"profile must be one of {known} for stage {stage!r}, got {profile!r}")
    return yaml.safe_load((PIPELINES_DIR / "conf" / stage / f"{profile}.yaml").read_text()) or {}


def run_stage(stage: str, profile: str = "smoke", output_root: str | os.PathLike = REPO_ROOT,
              executed: str | os.PathLike | None = None, overrides: dict | None = None,
              log_output: bool = True, seed_set: int = 0) -> Path:
    """Execute ``pipelines/<stage>.py`` with papermill; returns the path of its claim record."""
    import jupytext
    import papermill

    params = {**load_conf(stage, profile), **(overrides or {})}
    params.update(profile=profile, seed_set=seed_set, output_root=str(Path(output_root).resolve()))
    executed = Path(executed or Path(output_root) / "executed" / f"{stage}.ipynb")
    executed.parent.mkdir(parents=True, exist_ok=True)
    # Progress bars go to the stage log line by line: update them every 10 s at most.
    os.environ.setdefault("TQDM_MININTERVAL", "10")
    notebook = jupytext.read(PIPELINES_DIR / f"{stage}.py")
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    papermill.execute_notebook(notebook, str(executed), parameters=params, kernel_name="python3",
                               log_output=log_output, progress_bar=False, cwd=str(REPO_ROOT))
    return Path(output_root) / "results" / stage / "claims.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--seed-set", type=int, default=0, help="moves every seed to a disjoint range (>= 0)")
    args = parser.parse_args(argv)
    try:
        load_conf(args.stage, args.profile)
        shift(0, args.seed_set)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # DVC runs stage commands from the project root: its own, also in `dvc exp run --temp`.
    run_stage(args.stage, args.profile, output_root=Path.cwd(), seed_set=args.seed_set)
    return 0


if __name__ == "__main__":
    sys.exit(main())
