"""Seed sets: every seed of every stage moves to a disjoint range with ``seed_set``.

``params.yaml`` holds ``seed_set`` (0 by default); ``make stability`` re-runs the pipeline
under seed sets 1-3 to check that no verdict hangs on one draw of the seeds. A stage calls
:func:`shift` once on each seed (or list of seeds) in its conf.

    >>> shift([0, 1, 2], seed_set=1)
    [100000, 100001, 100002]
"""

from __future__ import annotations

#: seeds in a conf stay below this, so seed sets never overlap
STRIDE = 100_000


def shift(seeds: int | list[int], seed_set: int) -> int | list[int]:
    """``seeds`` moved into seed set ``seed_set`` (a seed, or a list of seeds)."""
    if not isinstance(seed_set, int) or seed_set < 0:
        raise ValueError(f"seed_set must be an integer >= 0, got {seed_set!r}")
    if isinstance(seeds, int):
        if not 0 <= seeds < STRIDE:
            raise ValueError(f"seeds must lie in [0, {STRIDE}), got {seeds}")
        return seeds + STRIDE * seed_set
    return [shift(s, seed_set) for s in seeds]
