"""Redraw every stage's figures from its committed measurements, without rerunning a claim stage.

    python -m initrepro.core.figures                 # every claim stage, 2 at a time
    python -m initrepro.core.figures zero_init eoi_deep_sparse

Each stage notebook runs without its cells tagged ``compute`` (``initrepro.core.pipeline
<stage> --replot``): it loads ``results/<stage>/claims.json`` and ``measurements.json`` and
draws ``figures/<stage>/`` from them. Records, executed notebooks and HTML pages stay as they are.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from initrepro.core.claims import REPO_ROOT
from initrepro.core.pipeline import ParameterError, StageFailed, run_stage
from initrepro.core.stability import claim_stages, current_profile


def redraw(stage: str, profile: str) -> tuple[str, float, str | None]:
    """Redraw ``figures/<stage>/``; (stage, seconds, error or None)."""
    start = time.perf_counter()
    try:
        run_stage(stage, profile, output_root=REPO_ROOT, log_output=False, replot=True)
    except (ParameterError, StageFailed) as err:
        return stage, time.perf_counter() - start, str(err)
    return stage, time.perf_counter() - start, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", help="claim stages (default: all of dvc.yaml)")
    parser.add_argument("--jobs", type=int, default=2, help="stages redrawn at once")
    args = parser.parse_args(argv)
    known = claim_stages()
    unknown = sorted(set(args.stages) - set(known))
    if unknown:
        print(f"error: stages must be among {known}, got {unknown}", file=sys.stderr)
        return 2
    profile = current_profile()
    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        results = list(pool.map(lambda s: redraw(s, profile), args.stages or known))
    for stage, seconds, error in results:
        print(f"{stage}: {'FAILED: ' + error if error else 'redrawn'} ({seconds:.1f} s)")
    print(f"{len(results)} stages in {time.perf_counter() - start:.1f} s")
    return 1 if any(error for _, _, error in results) else 0


if __name__ == "__main__":
    sys.exit(main())
