"""Does any verdict hang on one draw of the seeds? Verdicts under seed sets 0-3 (and any other).

    python -m initrepro.core.stability run --seed-sets 1 2 3 --jobs 2   # run the claim stages under them
    python -m initrepro.core.stability run --seed-sets 0 --kernels sse41  # seed set 0 on another CPU kernel path
    python -m initrepro.core.stability                                 # report: reports/stability.{md,json}
    make stability                                                # run 1-3 (jobs 1), report, `make report`

Seed set 0 is the records in ``results/``. Seed set ``k`` (any integer >= 0: 7 and 42 work as
well as 1-3) is run by ``python -m initrepro.core.pipeline <stage> --seed-set k --output-root
reports/seed_sets/<k> --no-figures``: its records land in
``reports/seed_sets/<k>/results/<stage>/claims.json`` (committed; no figures), and the
workspace's records stay as they are. ``--jobs N`` runs N (stage, seed set) pairs at once,
each stage with the threads of its conf; logs go to ``reports/seed_sets/<k>/logs/``.

The report reads seed set ``k`` only from records made under it: a record whose
``environment.seed_set`` is not ``k``, or whose profile is not the current one
(``params.yaml``), is not used (it is listed under "ignored"), and its column stays "not run".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml

from initrepro.core.claims import REPO_ROOT, validate_record
from initrepro.core.files import atomic_write_text

SEED_SETS = (0, 1, 2, 3)
SEED_SET_DIR = Path("reports") / "seed_sets"
KERNEL_PATH_DIR = Path("reports") / "kernel_paths"
#: other CPU kernel paths one machine can take (the environment variables that select them):
#: oneDNN's SSE4.1 or AVX2 convolutions, ATen's default (no SIMD) or AVX2 kernels
KERNEL_PATHS = {"sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41"}, "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2",
                                                                   "ATEN_CPU_CAPABILITY": "avx2"},
                "aten_default": {"ATEN_CPU_CAPABILITY": "default"}}


def seed_set_root(k: int, root: Path = REPO_ROOT) -> Path:
    """Where the records of seed set ``k`` live: the project for 0, else ``reports/seed_sets/<k>``."""
    return root if k == 0 else root / SEED_SET_DIR / str(k)


def current_profile(root: Path = REPO_ROOT) -> str:
    return (yaml.safe_load((root / "params.yaml").read_text()) or {}).get("profile", "smoke")


def claim_stages(root: Path = REPO_ROOT) -> list[str]:
    stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
    return [s for s in stages if s != "report"]


def found_seed_sets(root: Path = REPO_ROOT) -> list[int]:
    """0-3 and every seed set with a folder under ``reports/seed_sets/``."""
    folder = root / SEED_SET_DIR
    extra = {int(d.name) for d in folder.iterdir() if d.is_dir() and d.name.isdigit()} if folder.is_dir() else set()
    return sorted(set(SEED_SETS) | extra)


# --- run ----------------------------------------------------------------------------------


def _threads(stage: str, profile: str, root: Path) -> int | None:
    try:
        conf = yaml.safe_load((root / "pipelines" / "conf" / stage / f"{profile}.yaml").read_text()) or {}
    except OSError:
        return None
    return conf.get("threads") if isinstance(conf.get("threads"), int) else None


def _last_runtime(stage: str, root: Path) -> float:
    try:
        return float(json.loads((root / "results" / stage / "claims.json").read_text())["runtime_s"])
    except (OSError, ValueError, KeyError):
        return 0.0


def run_one(stage: str, k: int, profile: str, root: Path = REPO_ROOT,
            kernels: str | None = None) -> tuple[int, float, Path]:
    """Run ``stage`` under seed set ``k`` into ``reports/seed_sets/<k>`` (or, on another kernel
    path, ``reports/kernel_paths/<kernels>``); (exit status, seconds, log)."""
    out = root / KERNEL_PATH_DIR / kernels if kernels else seed_set_root(k, root)
    log = out / "logs" / f"{stage}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(KERNEL_PATHS[kernels] if kernels else {})}
    threads = _threads(stage, profile, root)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, "-m", "initrepro.core.pipeline", stage, "--profile", profile, "--seed-set", str(k),
           "--output-root", str(out), "--no-figures"]
    start = time.perf_counter()
    with open(log, "w") as fh:
        rc = subprocess.run(cmd, cwd=root, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    return rc, time.perf_counter() - start, log


def run(seed_sets, stages=None, jobs: int = 1, profile: str | None = None, root: Path = REPO_ROOT,
        kernels: str | None = None) -> int:
    """Run every (stage, seed set) pair, ``jobs`` at a time, longest stages first; 0 if all
    succeeded. ``kernels`` (a name of :data:`KERNEL_PATHS`) runs seed set 0 on that kernel path."""
    from initrepro.core.pipeline import ParameterError, check_params, check_seed_set

    profile = profile or current_profile(root)
    stages = list(stages or claim_stages(root))
    seed_sets = [check_seed_set(k) for k in seed_sets]
    if kernels is not None:
        if kernels not in KERNEL_PATHS:
            raise ParameterError(f"kernels must be one of {sorted(KERNEL_PATHS)}, got {kernels!r}")
        if seed_sets != [0]:
            raise ParameterError(f"--kernels runs seed set 0 only (the records it is compared with), got {seed_sets}")
    elif 0 in seed_sets:
        raise ParameterError("seed_sets must not hold 0: seed set 0 is the records in results/: run it with `dvc repro`, not here")
    for stage in stages:  # every parameter before any run
        check_params(stage, profile, seed_sets[0])
    pairs = sorted(((s, k) for k in seed_sets for s in stages), key=lambda p: -_last_runtime(p[0], root))
    print(f"{len(pairs)} runs ({len(stages)} stages x seed sets {seed_sets}, profile {profile}), {jobs} at a time",
          flush=True)
    failed = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(run_one, s, k, profile, root, kernels): (s, k) for s, k in pairs}
        for i, future in enumerate(as_completed(futures), 1):
            (stage, k), (rc, seconds, log) = futures[future], future.result()
            status = "ok" if rc == 0 else f"FAILED (exit {rc}; see {log.relative_to(root)})"
            print(f"[{i}/{len(pairs)}] {stage} seed set {k}: {status}, {seconds:.0f} s", flush=True)
            if rc:
                failed.append((stage, k))
    return 1 if failed else 0


# --- report -------------------------------------------------------------------------------


def collect(root: Path = REPO_ROOT, profile: str | None = None, seed_sets=None) -> dict:
    """Verdicts per claim and seed set, from records made under that seed set and profile.

    Returns ``{"profile", "seed_sets", "verdicts": {claim: {k: verdict}}, "reasons": {claim:
    {k: reason}}, "checks": {claim: {k: checks}}, "sources": {k: folder}, "runtime_s": {k:
    seconds}, "ignored": [why]}``.
    """
    profile = profile or current_profile(root)
    seed_sets = list(seed_sets or found_seed_sets(root))
    verdicts, reasons, checks, sources, runtime, ignored = {}, {}, {}, {}, {}, []
    designs = _current_designs(profile)
    for k in seed_sets:
        folder = seed_set_root(k, root)
        for path in sorted(folder.glob("results/*/claims.json")):
            rel = path.relative_to(root).as_posix()
            try:
                record = validate_record(json.loads(path.read_text()))
            except (ValueError, KeyError) as err:
                ignored.append(f"{rel}: not a valid record ({err})")
                continue
            made = record["environment"].get("seed_set")
            if made != k or record["profile"] != profile:
                ignored.append(f"{rel}: made under seed set {made}, profile {record['profile']} "
                               f"(this column: seed set {k}, profile {profile})")
                continue
            sources[k] = folder.relative_to(root).as_posix() or "."
            runtime[k] = runtime.get(k, 0.0) + record["runtime_s"]
            for c in record["claims"]:
                made_under = (c.get("design") or {}).get("hash")
                current = designs.get(c["id"])
                if current is not None and made_under != current:
                    ignored.append(f"{rel}: {c['id']} made under design {made_under}, registered now {current}")
                    continue
                verdicts.setdefault(c["id"], {})[k] = c["verdict"]
                reasons.setdefault(c["id"], {})[k] = c["reason"]
                checks.setdefault(c["id"], {})[k] = c["checks"]
    paths = {}
    for folder in sorted((root / KERNEL_PATH_DIR).glob("*")) if (root / KERNEL_PATH_DIR).is_dir() else []:
        for path in sorted(folder.glob("results/*/claims.json")):
            record = validate_record(json.loads(path.read_text()))
            if record["environment"].get("seed_set") != 0 or record["profile"] != profile:
                ignored.append(f"{path.relative_to(root).as_posix()}: not seed set 0 under profile {profile}")
                continue
            for c in record["claims"]:
                if designs.get(c["id"]) in (None, (c.get("design") or {}).get("hash")):
                    paths.setdefault(folder.name, {})[c["id"]] = {"verdict": c["verdict"], "checks": c["checks"],
                                                                  "kernels": record["environment"]["kernels"]}
    return {"profile": profile, "seed_sets": seed_sets, "verdicts": verdicts, "reasons": reasons,
            "checks": checks, "sources": sources, "runtime_s": runtime, "ignored": ignored, "kernel_paths": paths}


def _current_designs(profile: str) -> dict:
    """Claim id -> the design hash its conf has now (a record made under another is not used)."""
    from initrepro.core.claims import all_paper_claims
    from initrepro.core.designs import design_state

    claims = all_paper_claims()
    states = {cid: design_state(cid, profile, claims) for cid in claims}
    return {cid: st.current for cid, st in states.items() if st is not None}


def held(verdicts: dict, seed_sets=SEED_SETS) -> str:
    """'yes' when every seed set agrees with seed set 0, else the flips, or 'not run' for missing sets."""
    missing = [k for k in seed_sets if k not in verdicts]
    if missing:
        return f"not run (seed sets {', '.join(map(str, missing))})"
    flips = [f"seed set {k}: {v.replace('_', ' ')}" for k, v in sorted(verdicts.items()) if v != verdicts[0]]
    return "yes" if not flips else "no (" + "; ".join(flips) + ")"


def flip_cause(verdicts: dict[int, str], checks: dict[int, list[dict]]) -> str:
    """Why two seed sets (or kernel paths) disagree, from the numbers of one and the same
    comparison under both: the part that decided the verdict that is not *reproduced*
    (:func:`initrepro.core.claims.headline_check`), its claim check under each, and its kind:
    an interval that straddles its margin under one and clears it under the other is an
    underpowered comparison; a precondition that fails under one is named; opposite sides of a
    threshold are a sign flip."""
    from initrepro.core.claims import _part_verdict, format_value, headline_check

    keys = sorted(verdicts)
    focus = next((k for k in keys if verdicts[k] == "not_reproduced"),
                 next((k for k in keys if verdicts[k] == "inconclusive"), keys[0]))
    deciding = headline_check({"checks": checks[focus]}) or {}
    part = deciding.get("part")

    def same(k):  # the claim check of the same part (or, claim-wide, the check of the same name)
        pool = [c for c in checks[k] if c.get("part") == part] if part is not None else checks[k]
        named = [c for c in pool if c["name"] == deciding.get("name")]
        claim = [c for c in pool if not c.get("precondition")]
        return (claim or named or [None])[0] if part is not None else (named or [None])[0]

    said = []
    for k in keys:
        c = same(k)
        said.append(f"seed set {k}: {c['name']} = {format_value(c['value'])}, needs {c['op']} "
                    f"{format_value(c['threshold'])}" if c else f"seed set {k}: no such check")
    undecided = [k for k in keys if verdicts[k] == "inconclusive"]
    # the kind of flip follows from what left the undecided side undecided
    why = headline_check({"checks": checks[undecided[0]]}) if undecided else None
    name = (why or {}).get("name", "")
    if why and "from the margin" in name:
        kind = ("the interval straddles the margin under one seed set and clears it under the other: the "
                "comparison is underpowered at this difference")
    elif why and "power" in name:
        kind = "fewer seeds were run than the registered power calculation needs"
    elif why:
        other = [c for k in keys if k != undecided[0] for c in checks[k] if c["name"] == name]
        kind = (f"a precondition failed under seed set {undecided[0]}: {name} = {format_value(why['value'])}, "
                f"needs {why['op']} {format_value(why['threshold'])}"
                + (f"; it held under the other ({format_value(other[0]['value'])})" if other else ""))
    elif set(verdicts.values()) == {"reproduced", "not_reproduced"}:
        kind = "the claim check lands on opposite sides of its threshold"
    else:
        kind = "the verdicts differ"
    if part is not None:
        parts = {k: _part_verdict([c for c in checks[k] if c.get("part") == part]).replace("_", " ") for k in keys}
        kind += " (comparison " + ", ".join(f"seed set {k}: {v}" for k, v in parts.items()) + ")"
    return f"{kind}; {'; '.join(said)}"


def flips(data: dict) -> list[dict]:
    """Every verdict that differs from seed set 0's, with its cause and the reason its record gives."""
    out = []
    for cid, vs in data["verdicts"].items():
        if 0 not in vs:
            continue
        for k, v in sorted(vs.items()):
            if k != 0 and v != vs[0]:
                cause = flip_cause({0: vs[0], k: v}, {j: data["checks"][cid][j] for j in (0, k)})
                out.append({"claim": cid, "seed_set": k, "verdict": v, "seed_set_0": vs[0], "cause": cause,
                            "reason": data["reasons"][cid][k], "reason_seed_set_0": data["reasons"][cid][0]})
    return out


def render(data: dict, commit: str | None) -> str:
    sets = data["seed_sets"]
    rows = ["| claim | " + " | ".join(f"seed set {k}" for k in sets) + " | held |",
            "|---|" + "---|" * (len(sets) + 1)]
    for cid, vs in data["verdicts"].items():
        cells = [vs.get(k, "-").replace("_", " ") for k in sets]
        rows.append(f"| `{cid}` | " + " | ".join(cells) + f" | {held(vs, sets)} |")
    flip_lines = [f"- `{f['claim']}`, seed set {f['seed_set']}: {f['verdict'].replace('_', ' ')} "
                  f"(seed set 0: {f['seed_set_0'].replace('_', ' ')}). Cause: {f['cause']}.\n"
                  f"  Its record: {f['reason']}" for f in flips(data)]
    kernel_lines = []
    for name, claims in data["kernel_paths"].items():
        same = [cid for cid, c in claims.items() if data["verdicts"].get(cid, {}).get(0) == c["verdict"]]
        differ = [cid for cid in claims if cid not in same]
        env = next(iter(claims.values()))["kernels"]
        selected = ", ".join(f"{k}={v}" for k, v in env.items() if k != "mkldnn_enabled" and v)
        kernel_lines.append(f"- **{name}** ({selected}): {len(same)} of {len(claims)} verdicts as on the default path"
                            + ("" if not differ else "; differ: " + "; ".join(
                                f"`{cid}` {claims[cid]['verdict'].replace('_', ' ')} (default: "
                                f"{data['verdicts'][cid][0].replace('_', ' ')}; cause: " + flip_cause(
                                    {0: data["verdicts"][cid][0], 1: claims[cid]["verdict"]},
                                    {0: data["checks"][cid][0], 1: claims[cid]["checks"]}).replace("seed set 1", name)
                                .replace("seed set 0", "default") + ")" for cid in differ)))
    src = [f"- seed set {k}: `{data['sources'][k]}/results/*/claims.json`, stage time "
           f"{data['runtime_s'][k] / 60:.1f} min" if k in data["sources"] else f"- seed set {k}: not run"
           for k in sets]
    text = (f"# Stability across seed sets\n\nGenerated by `python -m initrepro.core.stability`"
            + (f" at commit {commit}" if commit else "") + f", profile {data['profile']}.\n"
            "Every seed of every stage moves to a disjoint range per seed set (`initrepro.core.seeding`); seed set 0 "
            "is the committed records, the others run by `python -m initrepro.core.stability run --seed-sets ...`.\n"
            "A record is used only for the seed set and profile it was made under.\n\n"
            + "\n".join(rows) + "\n\n## Flips\n\n" + ("\n".join(flip_lines) or "None: every verdict held.")
            + "\n\n## Other CPU kernel paths, seed set 0\n\n"
            + ("Stages run by `python -m initrepro.core.stability run --seed-sets 0 --kernels <path>` into "
               "`reports/kernel_paths/<path>/`:\n\n" + "\n".join(kernel_lines) if kernel_lines else "None run.")
            + "\n\n## Sources\n\n" + "\n".join(src) + "\n")
    if data["ignored"]:
        text += "\nIgnored records:\n\n" + "\n".join(f"- {why}" for why in data["ignored"]) + "\n"
    return text


def _commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        return out.stdout.strip() or None
    except OSError:
        return None


def report(root: Path = REPO_ROOT, profile: str | None = None) -> dict:
    """Write ``reports/stability.md`` and ``reports/stability.json``; returns the JSON data."""
    data = collect(root, profile)
    commit = _commit(root)
    atomic_write_text(root / "reports" / "stability.md", render(data, commit))
    out = {"commit": commit, "profile": data["profile"], "seed_sets": data["seed_sets"],
           "verdicts": {c: {str(k): v for k, v in sorted(vs.items())} for c, vs in data["verdicts"].items()},
           "flips": flips(data), "sources": {str(k): v for k, v in data["sources"].items()},
           "kernel_paths": {name: {cid: c["verdict"] for cid, c in claims.items()}
                            for name, claims in data["kernel_paths"].items()},
           "ignored": data["ignored"]}
    atomic_write_text(root / "reports" / "stability.json", json.dumps(out, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None, root: Path = REPO_ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    p_run = sub.add_parser("run", help="run the claim stages under other seed sets into reports/seed_sets/<k>/")
    p_run.add_argument("--seed-sets", nargs="+", default=["1", "2", "3"])
    p_run.add_argument("--stages", nargs="+", default=None)
    p_run.add_argument("--jobs", type=int, default=1)
    p_run.add_argument("--profile", default=None)
    p_run.add_argument("--kernels", default=None, choices=sorted(KERNEL_PATHS),
                       help="run seed set 0 on another CPU kernel path into reports/kernel_paths/<name>/")
    p_rep = sub.add_parser("report", help="write reports/stability.{md,json} (the default)")
    p_rep.add_argument("--profile", default=None)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    if args.command == "run":
        from initrepro.core.pipeline import ParameterError

        try:
            return run(args.seed_sets, args.stages, args.jobs, args.profile, root, args.kernels)
        except ParameterError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    data = report(root, getattr(args, "profile", None))
    print(f"reports/stability.md: {len(data['verdicts'])} claims, seed sets with records "
          f"{sorted(int(k) for k in data['sources'])}, {len(data['flips'])} flips, {len(data['ignored'])} ignored records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
