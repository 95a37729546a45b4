"""Registered designs: what decides each claim is fixed, as a hash, before its confirmatory run.

A claim's entry in ``papers/<paper>.yaml`` registers its design for a profile::

    design:
      smoke:
        keys: [seeds, margin, epochs, lrs]   # the conf keys that decide it
        test: superiority                    # or non-inferiority, theory, ...; quoting the paper
        paper_precision: "Table 2: 0.2 points"
        power: "pilot sd 0.011 on seed set 0: 7 seeds for 80% power at the margin"
        registered: {date: 2026-11-30, hash: 3f2a9c01b4}
    design_log:
      - {date: 2026-11-30, profile: smoke, hash: 9b1c..., change: "epochs 30 -> 40",
         seen: "seed set 1: CI -0.01 to 0.05 straddled the margin 0.02"}

The hash covers the values of ``keys`` in ``pipelines/conf/<stage>/<profile>.yaml``. Each
later change of them needs a ``design_log`` entry with the new hash and the result that was
seen before the change (``seen``; empty only for a change made before any result of the
claim was seen). Changes made before registration, recovered from the git history, are
logged too, with ``hash: null`` and the ``commit`` that made them: they count as changes that
followed a seen result, but the registered hash stays the one to match. ``python -m initrepro.core.designs`` lists every claim's state; a test fails on
any conf that differs from its registered (or last logged) hash.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from initrepro.core.claims import PAPERS_DIR, REPO_ROOT, all_paper_claims

CONF_DIR = REPO_ROOT / "pipelines" / "conf"


def conf_path(stage: str, profile: str) -> Path:
    return CONF_DIR / stage / f"{profile}.yaml"


def design_hash(conf: dict, keys) -> str:
    """A short hash of the values of ``keys`` in ``conf`` (order-free; a missing key is an error).

        >>> design_hash({"seeds": [1, 2], "margin": 0.02, "other": 5}, ["margin", "seeds"])
        'b5a0ff4d8d'
    """
    missing = [k for k in keys if k not in conf]
    if missing:
        raise KeyError(f"design keys {missing} are not in the conf (keys: {sorted(conf)})")
    canonical = json.dumps({k: conf[k] for k in sorted(keys)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


@dataclass
class DesignState:
    """Where one claim's design stands against its conf."""

    claim: str
    profile: str
    current: str
    expected: str
    registered: str
    post_hoc_changes: int
    log: list

    @property
    def ok(self) -> bool:
        return self.current == self.expected

    def to_dict(self) -> dict:
        plain = lambda v: v.isoformat() if isinstance(v, datetime.date) else v  # noqa: E731 (YAML dates)
        return {"hash": self.current, "registered": self.registered, "matches_registration": self.ok,
                "post_hoc_changes": self.post_hoc_changes,
                "log": [{k: plain(v) for k, v in e.items()} for e in self.log]}


def design_state(claim_id: str, profile: str, claims: dict | None = None) -> DesignState | None:
    """The design state of ``claim_id`` under ``profile``, or None where none is registered."""
    spec = (claims or all_paper_claims())[claim_id]
    design = (spec.get("design") or {}).get(profile)
    if design is None:
        return None
    conf = yaml.safe_load(conf_path(spec["stage"], profile).read_text()) or {}
    log = [e for e in spec.get("design_log") or [] if e.get("profile", profile) == profile]
    for entry in log:
        for key in ("date", "change", "seen", "hash"):
            if key not in entry:
                raise ValueError(f"{claim_id}: design_log entry {entry} lacks {key!r}")
    registered = str(design["registered"]["hash"])
    hashed = [e for e in log if e["hash"]]
    expected = str(hashed[-1]["hash"]) if hashed else registered
    return DesignState(claim_id, profile, design_hash(conf, design["keys"]), expected, registered,
                       sum(1 for e in log if str(e["seen"]).strip()), log)


def log_anchor(claim_id: str, claims: dict | None = None) -> str:
    """Repo-relative path of the paper YAML that holds the claim's design log."""
    spec = (claims or all_paper_claims())[claim_id]
    return f"papers/{spec['paper']}.yaml"


def main(argv: list[str] | None = None) -> int:
    """Print each claim's registered and current design hash under a profile (default smoke)."""
    profile = (argv or sys.argv[1:] or ["smoke"])[0]
    claims = all_paper_claims()
    bad = 0
    for cid in claims:
        state = design_state(cid, profile, claims)
        if state is None:
            print(f"{'unregistered':>14}  {cid}")
            continue
        bad += not state.ok
        print(f"{'ok' if state.ok else 'CHANGED':>14}  {cid}: conf {state.current}, expected {state.expected} "
              f"(registered {state.registered}; {state.post_hoc_changes} changes after a seen result)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
