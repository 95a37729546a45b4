"""Claim records: what each stage measured, the thresholds it compared with, and the verdicts.

A record is ``results/<stage>/claims.json`` (see DESIGN.md). Verdicts are never set by hand:
they follow from checks that can fail.

- ``reproduced``: every claim check passed (and every precondition held);
- ``not_reproduced``: some claim check failed while every precondition held;
- ``inconclusive``: a precondition failed (e.g. the baseline itself did not train), so the
  claim checks say nothing either way;
- ``skipped``: nothing could be measured here (e.g. a CUDA arm on a CPU machine); never
  counted as reproduced.

Example::

    record = StageRecord("fractional_lognorm", profile="smoke", seed=0)
    record.claim("fractional.moment_preserved",
                 checks=[Check("max |z| of moment ratio", 1.3, "<=", 3.0)])
    record.write()  # results/fractional_lognorm/claims.json
"""

from __future__ import annotations

import json
import math
import operator
import os
import platform
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable

import yaml

from initrepro.core.files import atomic_path, atomic_write_text  # noqa: F401 (re-exported)

MEASUREMENTS = "measurements.json"
VERDICTS = ("reproduced", "not_reproduced", "inconclusive", "skipped")
OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}


def find_repo_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder holding ``dvc.yaml`` at or above ``start`` (default: the working
    directory), else the checkout this package was installed from. So a shared environment
    runs the notebooks, confs and papers of the checkout it is called in."""
    try:
        here = Path(start if start is not None else os.getcwd()).resolve()
    except OSError:  # the working directory was removed
        return Path(__file__).resolve().parents[2]
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    return Path(__file__).resolve().parents[2]


REPO_ROOT = find_repo_root()
PAPERS_DIR = REPO_ROOT / "papers"


@dataclass
class Check:
    """One comparison of a measured value with a threshold fixed before the run.

    ``precondition=True`` marks a check that makes the experiment meaningful rather than
    testing the claim (e.g. "the baseline learned at all"); when one fails the verdict is
    ``inconclusive``. ``part`` groups the checks of one comparison within a claim: a part's
    own preconditions (e.g. "its interval lies on one side of the margin") decide only that
    part (see :func:`derive_verdict`).
    """

    name: str
    value: float
    op: str
    threshold: float
    precondition: bool = False
    note: str = ""
    part: int | None = None

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"op must be one of {sorted(OPS)}, got {self.op!r}")
        self.value = _plain(self.value)
        self.threshold = _plain(self.threshold)

    @property
    def passed(self) -> bool:
        if self.value is None or (isinstance(self.value, float) and math.isnan(self.value)):
            return False
        return bool(OPS[self.op](self.value, self.threshold))

    def to_dict(self) -> dict:
        d = {"name": self.name, "value": self.value, "op": self.op,
             "threshold": self.threshold, "passed": self.passed}
        if self.precondition:
            d["precondition"] = True
        if self.note:
            d["note"] = self.note
        if self.part is not None:
            d["part"] = self.part
        return d


def _part_verdict(checks: list[dict]) -> str:
    if not all(c["passed"] for c in checks if c.get("precondition")):
        return "inconclusive"
    return "reproduced" if all(c["passed"] for c in checks) else "not_reproduced"


def derive_verdict(checks: Iterable[Check | dict], skip_reason: str | None = None) -> str:
    """The verdict that a list of checks implies (see the module docstring).

    Preconditions outside any part (positive controls, lr searches) hold for the whole claim:
    one failing makes it *inconclusive*. Otherwise each part (a comparison) and the claim's
    own checks get a verdict of their own; the claim is *not reproduced* when any part is
    refuted, else *inconclusive* when any part is undecided, else *reproduced*. So one
    straddling comparison cannot hide another that refutes the claim.
    """
    checks = [c.to_dict() if isinstance(c, Check) else c for c in checks]
    if skip_reason is not None or not checks:
        return "skipped"
    if not all(c["passed"] for c in checks if c.get("precondition") and c.get("part") is None):
        return "inconclusive"
    parts: dict = {}
    for c in checks:
        if c.get("part") is not None or not c.get("precondition"):
            parts.setdefault(c.get("part"), []).append(c)
    verdicts = {_part_verdict(p) for p in parts.values()}
    for verdict in ("not_reproduced", "inconclusive"):
        if verdict in verdicts:
            return verdict
    return "reproduced"


def paper_claims(paper: str) -> dict[str, dict]:
    """Claims of ``papers/<paper>.yaml`` keyed by claim id."""
    path = PAPERS_DIR / f"{paper}.yaml"
    data = yaml.safe_load(path.read_text())
    return {c["id"]: {**c, "paper": data["id"]} for c in data["claims"]}


def all_paper_claims() -> dict[str, dict]:
    """Every claim of every paper YAML, keyed by claim id."""
    claims = {}
    for path in sorted(PAPERS_DIR.glob("*.yaml")):
        claims.update(paper_claims(path.stem))
    return claims


class StageRecord:
    """Collects the claims a stage checks, the measurements its figures are drawn from and its
    curves, and writes them atomically: ``results/<stage>/claims.json``, ``metrics.json``,
    ``measurements.json`` and ``curves/<name>.csv``.

    With ``replot=True`` the record is the one already under ``output_root`` (claims and
    measurements of ``results/<stage>/``, copied there from the project by ``initrepro.core.pipeline
    --replot``): a notebook run with its compute cells left out redraws every figure from it,
    and writes nothing else.
    """

    def __init__(self, stage: str, profile: str, seed: int | None = None,
                 output_root: str | os.PathLike = REPO_ROOT, seed_set: int = 0, replot: bool = False):
        self.stage, self.profile, self.seed, self.seed_set = stage, profile, seed, seed_set
        self.output_root = Path(output_root)
        self.claims: list[dict] = []
        self.measurements: dict[str, Any] = {}
        self.curves: dict[str, dict] = {}
        self.replot = replot
        self._start = time.perf_counter()
        if replot:
            saved = self.output_root / "results" / stage
            record = load_record(saved / "claims.json")
            if record["profile"] != profile:
                raise ValueError(f"replot: results/{stage} holds profile {record['profile']!r}, not {profile!r}")
            data = json.loads((saved / MEASUREMENTS).read_text())
            self.claims, self.measurements, self.curves = record["claims"], data["measurements"], data["curves"]

    @property
    def path(self) -> Path:
        return self.output_root / "results" / self.stage / "claims.json"

    def measure(self, name: str, value: Any) -> Any:
        """Keep ``value`` (numbers, arrays, tensors, nested in dicts and lists) as measurement
        ``name``, which figures are drawn from; returns it as saved (plain Python, NaN kept),
        so that a figure drawn now and one redrawn from the file are the same."""
        if self.replot:
            raise RuntimeError("replot: measurements come from the committed record")
        self.measurements[name] = json.loads(json.dumps(_numbers(value)))
        return self.measurements[name]

    def curve(self, name: str, series: dict[str, tuple], x: str = "step", y: str = "value") -> dict:
        """Keep training curves as data: ``series`` maps a label (e.g. ``"RISOTTO seed 3"``) to
        ``(xs, ys)``; ``x`` and ``y`` say what they are. Written as
        ``results/<stage>/curves/<name>.csv`` (``dvc plots`` overlays them across runs and
        experiments) and kept for the figures; returns it as saved."""
        if self.replot:
            raise RuntimeError("replot: curves come from the committed record")
        plain = {str(label): [json.loads(json.dumps(_numbers(list(v)))) for v in xy] for label, xy in series.items()}
        for label, (xs, ys) in plain.items():
            if len(xs) != len(ys):
                raise ValueError(f"curve {name!r}, series {label!r}: {len(xs)} x values but {len(ys)} y values")
        self.curves[name] = {"x": x, "y": y, "series": plain}
        return self.curves[name]

    def figure(self, fig, name: str, claims: Iterable[str] = ()) -> str:
        """Save ``fig`` as ``figures/<stage>/<name>`` and return that repo-relative path. With
        ``claims`` (ids recorded already), the figure is titled with each claim and its
        verdict, and listed among the claims' figures."""
        from initrepro.core.plotting import claim_title, save_figure

        rel = Path("figures") / self.stage / name
        entries = [self._entry(c) for c in claims]
        if entries:
            title = fig.get_suptitle()
            fig.suptitle(claim_title(entries) + (f"\n{title}" if title else ""), fontsize="medium")
            for entry in entries:
                if rel.as_posix() not in entry["figures"]:
                    entry["figures"].append(rel.as_posix())
        save_figure(fig, self.output_root / rel)
        return rel.as_posix()

    def verdicts_figure(self, name: str = "verdicts.png") -> str:
        """``figures/<stage>/verdicts.png``: every claim check of every decided claim against
        its threshold or margin, with the interval it was decided by (see
        :func:`initrepro.core.plotting.verdict_panels`); listed among each decided claim's figures."""
        from initrepro.core.plotting import verdict_panels

        decided = [c["id"] for c in self.claims if c["verdict"] != "skipped"]
        fig = verdict_panels(self.claims)
        fig.suptitle(f"{self.stage}: what decided each verdict ({self.profile} profile, seed set {self.seed_set})",
                     fontsize="medium")
        path = self.figure(fig, name)
        for cid in decided:
            entry = self._entry(cid)
            if path not in entry["figures"]:
                entry["figures"].append(path)
        return path

    def _entry(self, claim_id: str) -> dict:
        for c in self.claims:
            if c["id"] == claim_id:
                return c
        raise KeyError(f"claim {claim_id!r} is not recorded yet in stage {self.stage!r}: draw its figure after "
                       f"record.claim (recorded: {[c['id'] for c in self.claims]})")

    def claim(self, claim_id: str, checks: list = (), *, figures: Iterable[str] = (),
              reason: str = "", skip_reason: str | None = None, measured: dict | None = None) -> dict:
        """Add a claim; its statement and paper come from ``papers/*.yaml``; returns the entry.

        ``checks`` holds :class:`Check` objects and :class:`initrepro.core.verdicts.Evidence`. The
        recorded reason is derived: the checks that decided the verdict, the evidence
        summaries, then ``reason`` (context that the stage words from its own numbers).
        """
        evidence = [c for c in checks if not isinstance(c, Check)]
        checks = [c for c in checks if isinstance(c, Check)] + [
            replace(k, part=i) if any(not x.precondition for x in e.checks) else k
            for i, e in enumerate(evidence) for k in e.checks]
        if evidence:
            # a key that several pieces of evidence measure stays only in the per-evidence list
            counts = Counter(k for e in evidence for k in e.measured)
            measured = {**{k: v for e in evidence for k, v in e.measured.items() if counts[k] == 1},
                        **({"evidence": [{"summary": e.summary, **e.measured} for e in evidence]}
                           if len(evidence) > 1 else {}),
                        **(measured or {})}
        known = all_paper_claims()
        if claim_id not in known:
            raise KeyError(f"claim {claim_id!r} is not in papers/*.yaml (known: {sorted(known)})")
        spec = known[claim_id]
        if skip_reason is not None and checks:
            raise ValueError(f"claim {claim_id!r}: a skipped claim carries no checks")
        if spec["stage"] != self.stage:
            raise ValueError(f"claim {claim_id!r} belongs to stage {spec['stage']!r}, not {self.stage!r}")
        entry = {
            "id": claim_id,
            "paper": spec["paper"],
            "statement": spec["statement"].strip(),
            "verdict": derive_verdict(checks, skip_reason),
            "reason": skip_reason.strip() if skip_reason is not None else derive_reason(
                checks, [e.summary for e in evidence], reason),
            "figures": [str(f) for f in figures],
            "checks": [c.to_dict() for c in checks],
        }
        from initrepro.core.designs import design_state, log_anchor

        state = design_state(claim_id, self.profile, known)
        if state is not None:
            entry["design"] = {**state.to_dict(), "log_in": log_anchor(claim_id, known)}
        if measured:
            entry["measured"] = _plain(measured)
        self.claims = [c for c in self.claims if c["id"] != claim_id] + [entry]
        return entry

    def to_dict(self) -> dict:
        return {
            "stage": self.stage,
            "profile": self.profile,
            "runtime_s": round(time.perf_counter() - self._start, 1),
            "environment": environment(self.seed, self.seed_set),
            "claims": self.claims,
        }

    def write(self) -> dict:
        """Validate and write the record atomically to ``results/<stage>/claims.json`` (last), its
        measurements and curves, and its flat metrics (see :func:`flat_metrics`) to
        ``results/<stage>/metrics.json``."""
        if self.replot:
            raise RuntimeError("replot: the committed record is not rewritten")
        record = validate_record(self.to_dict())
        folder = self.path.parent
        atomic_write_text(folder / MEASUREMENTS, json.dumps({"measurements": self.measurements,
                                                             "curves": self.curves}) + "\n")
        for name, curve in self.curves.items():
            atomic_write_text(folder / "curves" / f"{name}.csv", curve_csv(curve))
        atomic_write_text(self.path, json.dumps(record, indent=2) + "\n")
        atomic_write_text(self.path.with_name("metrics.json"), json.dumps(flat_metrics(record), indent=2) + "\n")
        return record

    def summary(self) -> str:
        """A short table of verdicts, for the end of a notebook."""
        lines = []
        for c in self.claims:
            lines.append(f"{c['verdict']:>15}  {c['id']}")
            lines += [f"{'':>17}{'ok ' if k['passed'] else 'FAIL'} {k['name']}: {format_value(k['value'])} "
                      f"{k['op']} {format_value(k['threshold'])}" for k in c["checks"]]
        return "\n".join(lines)


def headline_check(claim: dict) -> dict | None:
    """The check that states a claim's verdict in one number, following :func:`derive_verdict`:
    a failed claim-wide precondition (a control, an lr search); else, for *not reproduced*, the
    failed claim check of a refuted part; for *inconclusive*, the failed precondition of an
    undecided part; else the last claim check."""
    checks = claim["checks"]
    if not checks:
        return None
    global_failed = [k for k in checks if k.get("precondition") and k.get("part") is None and not k["passed"]]
    if global_failed:
        return global_failed[0]
    parts: dict = {}
    for k in checks:
        if k.get("part") is not None or not k.get("precondition"):
            parts.setdefault(k.get("part"), []).append(k)
    verdicts = {key: _part_verdict(p) for key, p in parts.items()}
    for verdict, wanted in (("not_reproduced", lambda k: not k.get("precondition") and not k["passed"]),
                            ("inconclusive", lambda k: k.get("precondition") and not k["passed"])):
        for key, part_verdict in verdicts.items():
            if part_verdict == verdict:
                return next(k for k in parts[key] if wanted(k))
    claim_checks = [k for k in checks if not k.get("precondition")] or checks
    return claim_checks[-1]


def flat_metrics(record: dict) -> dict:
    """One flat dict per record, as DVC displays it (``dvc metrics show``, ``dvc exp show``):
    per claim id ``<id>.verdict`` (word), ``<id>.reproduced`` (0/1), and its headline check
    (:func:`headline_check`): ``<id>.headline`` (name), ``.value``, ``.op``, ``.threshold``
    (the margin or threshold it was held to)."""
    out: dict[str, Any] = {"runtime_s": record["runtime_s"], "seed_set": record["environment"].get("seed_set")}
    for c in record["claims"]:
        out[f"{c['id']}.verdict"] = c["verdict"]
        out[f"{c['id']}.reproduced"] = int(c["verdict"] == "reproduced")
        k = headline_check(c)
        if k is not None:
            out.update({f"{c['id']}.headline": k["name"], f"{c['id']}.value": k["value"],
                        f"{c['id']}.op": k["op"], f"{c['id']}.threshold": k["threshold"]})
    return out


def format_value(x) -> str:
    """Numbers to 3 significant digits, anything else as is."""
    return f"{x:.3g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def derive_reason(checks: Iterable[Check], summaries: Iterable[str] = (), context: str = "") -> str:
    """The reason of a verdict, from its numbers: the checks that decided it (for *inconclusive*
    the failed preconditions, for *not reproduced* the failed claim checks), the evidence
    summaries, then ``context``."""
    checks = list(checks)
    verdict = derive_verdict(checks)
    failed_pre = [c for c in checks if c.precondition and not c.passed]
    failed_claim = [c for c in checks if not c.precondition and not c.passed
                    and _part_verdict([k.to_dict() for k in checks if k.part == c.part]) == "not_reproduced"]
    failed = failed_claim if verdict == "not_reproduced" else failed_pre if verdict == "inconclusive" else []
    failed_pre = verdict == "inconclusive"
    parts = []
    if failed:
        kind = "undecided, because" if failed_pre else "failed:"
        parts.append(f"{kind} " + "; ".join(f"{c.name} = {format_value(c.value)}, needs {c.op} "
                                             f"{format_value(c.threshold)}" for c in failed) + ".")
    parts += [s.rstrip(".") + "." for s in summaries]
    if context.strip():
        parts.append(context.strip())
    return " ".join(parts)


def environment(seed: int | None, seed_set: int = 0) -> dict:
    """What can change the bits of a result: versions, device, CPU kernels, threads, seeds."""
    import torch

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.machine()})",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "kernels": {"mkldnn_enabled": torch.backends.mkldnn.enabled,
                    **{k: os.environ.get(k) for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")}},
        "threads": torch.get_num_threads(),
        "seed": seed,
        "seed_set": seed_set,
        "git": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def validate_record(record: dict) -> dict:
    """Raise ValueError unless ``record`` follows the claim-record schema and its verdicts
    are exactly those its checks imply."""
    for key in ("stage", "profile", "runtime_s", "environment", "claims"):
        if key not in record:
            raise ValueError(f"claim record lacks {key!r}")
    if not record["claims"]:
        raise ValueError(f"claim record of stage {record['stage']!r} has no claims")
    for c in record["claims"]:
        for key in ("id", "paper", "statement", "verdict", "reason", "figures", "checks"):
            if key not in c:
                raise ValueError(f"claim {c.get('id')!r} lacks {key!r}")
        if c["verdict"] not in VERDICTS:
            raise ValueError(f"claim {c['id']!r}: verdict {c['verdict']!r} not in {VERDICTS}")
        for k in c["checks"]:
            recomputed = Check(k["name"], k["value"], k["op"], k["threshold"]).passed
            if recomputed != k["passed"]:
                raise ValueError(f"claim {c['id']!r}, check {k['name']!r}: 'passed' disagrees with value/threshold")
        if derive_verdict(c["checks"]) != c["verdict"]:
            raise ValueError(f"claim {c['id']!r}: verdict {c['verdict']!r} does not follow from its checks")
        if c["verdict"] != "reproduced" and not c["reason"]:
            raise ValueError(f"claim {c['id']!r} is {c['verdict']} without a reason")
    return record


def load_record(path: str | os.PathLike) -> dict:
    """Read and validate a claim record."""
    return validate_record(json.loads(Path(path).read_text()))


def curve_csv(curve: dict) -> str:
    """A curve kept by :meth:`StageRecord.curve` as long-format CSV with the columns ``x``,
    ``series`` and ``y`` in every file (so that one ``dvc plots`` entry per stage draws them
    all; the file name says what x and y are)."""
    lines = ["x,series,y"]
    for label, (xs, ys) in curve["series"].items():
        quoted = '"' + label.replace('"', '""') + '"'
        lines += [f"{x!r},{quoted},{y!r}" for x, y in zip(xs, ys)]
    return "\n".join(lines) + "\n"


def _numbers(x: Any) -> Any:
    """numpy/torch values and containers -> plain Python numbers and lists, NaN and inf kept."""
    if isinstance(x, dict):
        return {str(k): _numbers(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_numbers(v) for v in x]
    if hasattr(x, "tolist"):
        return _numbers(x.tolist()) if getattr(x, "ndim", 1) else x.tolist()
    return x


def _plain(x: Any) -> Any:
    """numpy/torch scalars and containers -> JSON-ready Python values."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", 0) == 0:
        x = x.item()
    if hasattr(x, "tolist"):
        return _plain(x.tolist())
    if isinstance(x, float):
        return x if math.isfinite(x) else (None if math.isnan(x) else x)
    return x
