"""The claims table, regenerated from the committed claim records.

    python -m initrepro.core.report     # writes reports/claims.md and the table in README.md

The README keeps the table between two marker lines, so the rest of it is hand-written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from initrepro.core.claims import REPO_ROOT, format_value, load_record
from initrepro.core.stability import held

START, END = "<!-- claims-table:start -->", "<!-- claims-table:end -->"
VERDICT_MARK = {"reproduced": "reproduced", "not_reproduced": "**not reproduced**",
                "inconclusive": "*inconclusive*", "skipped": "skipped"}


def load_records(root: Path = REPO_ROOT) -> list[dict]:
    return [load_record(p) for p in sorted((root / "results").glob("*/claims.json"))]


def measured_summary(claim: dict, limit: int = 2) -> str:
    """The first failing check(s), else the first checks: "name: value op threshold"."""
    checks = sorted(claim["checks"], key=lambda k: k["passed"])
    parts = [f"{k['name']}: {format_value(k['value'])} (needs {k['op']} {format_value(k['threshold'])})" for k in checks[:limit]]
    if len(checks) > limit:
        parts.append(f"+{len(checks) - limit} more checks")
    return "; ".join(parts) or claim["reason"]


def short_statement(statement: str, limit: int = 160) -> str:
    """The statement's first sentence, cut at ``limit`` characters."""
    text = " ".join(statement.split())
    first = text.split(": ", 1)[0] if len(text.split(": ", 1)[0]) < limit else text
    first = first.split(". ", 1)[0].rstrip(".")
    return first if len(first) <= limit else first[:limit - 1].rstrip() + "…"


def load_stability(root: Path = REPO_ROOT) -> dict:
    """``reports/stability.json`` (written by ``python -m initrepro.core.stability``), if present."""
    path = root / "reports" / "stability.json"
    return json.loads(path.read_text()) if path.exists() else {"commit": None, "verdicts": {}}


def notebook_link(stage: str) -> str:
    """The executed notebook of ``stage`` as HTML (written by ``initrepro.core.pipeline`` on success)."""
    return f"reports/notebooks/{stage}.html"


def design_changes(claim: dict, profile: str, papers: dict) -> str:
    """How many design changes followed a seen result, linked to the claim's design log: from
    the record's ``design`` block, else from the paper YAML (``initrepro.core.designs``)."""
    spec = papers.get(claim["id"], {})
    link = f"papers/{spec.get('paper', claim['paper'])}.yaml"
    count = (claim.get("design") or {}).get("post_hoc_changes")
    if count is None:
        from initrepro.core.designs import design_state

        try:
            state = design_state(claim["id"], profile, papers) if spec else None
        except (OSError, ValueError, KeyError) as err:
            return f"[design log unreadable]({link}): {type(err).__name__}"
        if state is None:
            return f"[not registered]({link})"
        count = state.post_hoc_changes
    return f"[{count}]({link})"


def paper_precision(claim: dict, profile: str, papers: dict) -> str:
    """The paper's own precision or gap next to the margin used here (``design.<profile>.paper_precision``)."""
    design = (papers.get(claim["id"], {}).get("design") or {}).get(profile) or {}
    return " ".join(str(design.get("paper_precision") or "-").split()).replace("|", "/")


def claims_table(records: list[dict], stability: dict, full: bool = True) -> str:
    from initrepro.core.claims import all_paper_claims

    papers = all_paper_claims()
    rows = ["| stage | claim | paper | measured | verdict | held on seed sets 0-3 "
            "| design changes after a seen result | paper's precision vs the margin here | figure |",
            "|---|---|---|---|---|---|---|---|---|"]
    for record in records:
        stage = f"[{record['stage']}]({notebook_link(record['stage'])}) ({record['profile']})"
        for c in record["claims"]:
            figure = ", ".join(f"[{Path(f).stem}]({f})" for f in c["figures"]) or "-"
            statement = " ".join(c["statement"].split()) if full else short_statement(c["statement"])
            seeds = {int(k): v for k, v in stability["verdicts"].get(c["id"], {}).items()}
            stable = held(seeds) if seeds.get(0) == c["verdict"] else "not run on this record"
            rows.append(f"| {stage} | `{c['id']}`: {statement} | {c['paper']} "
                        f"| {measured_summary(c).replace('|', '/')} | {VERDICT_MARK[c['verdict']]} | {stable} "
                        f"| {design_changes(c, record['profile'], papers)} "
                        f"| {paper_precision(c, record['profile'], papers)} | {figure} |")
    return "\n".join(rows)


def reasons(records: list[dict]) -> str:
    lines = [f"- `{c['id']}` ({c['verdict'].replace('_', ' ')}): {c['reason']}"
             for r in records for c in r["claims"] if c["verdict"] != "reproduced"]
    return "\n".join(lines)


def render(records: list[dict], stability: dict | None = None, full: bool = True) -> str:
    """The claims table (statements in full, or their first sentence for the README), the stage
    runtimes, and the reason for every claim that is not reproduced."""
    stability = stability or {"commit": None, "verdicts": {}}
    runtime = ", ".join(f"{r['stage']} {r['runtime_s']:.0f} s" for r in records)
    total = sum(r["runtime_s"] for r in records)
    text = (claims_table(records, stability, full) + f"\n\nStage runtimes: {runtime} (total {total / 60:.1f} min).\n"
            "Each stage links its executed notebook (HTML, figures inline). Design changes after a seen result: "
            "the entries of the claim's `design_log` made after a result of it was seen "
            "(`python -m initrepro.core.designs`).\n")
    if stability["commit"]:
        text += f"Seed-set stability from [reports/stability.md](reports/stability.md), commit {stability['commit']}.\n"
    if reasons(records):
        text += "\nWhy a claim is not (yet) reproduced here:\n\n" + reasons(records) + "\n"
    return text


def update_readme(readme: Path, table: str) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} lacks the marker lines {START} / {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}{END}{tail}")


def main(root: Path = REPO_ROOT) -> int:
    records, stability = load_records(root), load_stability(root)
    out = root / "reports" / "claims.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Claims\n\nGenerated by `python -m initrepro.core.report` from results/*/claims.json.\n\n"
                   + render(records, stability))
    update_readme(root / "README.md", render(records, stability, full=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
