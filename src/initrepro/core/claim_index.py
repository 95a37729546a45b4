"""The claim index: each claim of ``papers/*.yaml`` traced to its code, figures and tests.

    python -m initrepro.core.claim_index            # write reports/claim_index.md
    python -m initrepro.core.claim_index --check    # exit 1 unless reports/claim_index.md is up to date

One row per claim: its paper and the paper's section (``source``), its stage, the notebook
line of ``pipelines/<stage>.py`` that records it (``record.claim("<id>", ...)``; a claim whose
id comes from a loop points to the ``for`` line and says so), the ``initrepro`` modules the
notebook imports (via :mod:`initrepro.core.deps`), the figures its record
``results/<stage>/claims.json`` lists, and the tests that import one of the stage's own
modules or name the claim. ``make report`` rewrites it; a test keeps it from going stale.

A stage's own modules are those that no notebook of another paper imports (``models.wrn``,
``symmetry_breakers``, ...); the others are shared (records, data, training, verdicts, generic
models). Only its own modules link a test to a stage.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from initrepro.core.claims import REPO_ROOT
from initrepro.core.files import atomic_write_text
from initrepro.core.deps import PACKAGE, imported_names, module_file, notebook_imports

OUTPUT = Path("reports") / "claim_index.md"
SOURCE_CHARS = 60


# -- where a notebook records each claim ------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """Where ``pipelines/<stage>.py`` records a claim: ``line`` holds ``record.claim(`` with
    the id as its first argument, or (``loop`` set) the ``for`` statement that supplies the id
    to the calls at ``calls``."""
    line: int
    calls: tuple[int, ...]
    loop: str | None = None


def _is_record_claim(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "claim"
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "record")


def _pattern(fstring: ast.JoinedStr) -> re.Pattern:
    """An f-string as a regex: its literal parts, anything for each ``{...}``."""
    return re.compile("".join(re.escape(v.value) if isinstance(v, ast.Constant) else ".+" for v in fstring.values))


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _loop_source(loop: ast.For, tree: ast.Module) -> tuple[str, set[str]]:
    """A short name for what ``loop`` iterates over, and the strings it may yield (those of a
    literal, or of the module-level assignment of the name it iterates over)."""
    it = loop.iter
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Attribute) and it.func.attr in ("items", "keys", "values"):
        it = it.func.value
    if isinstance(it, ast.Name):
        values = [n.value for n in tree.body if isinstance(n, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == it.id for t in n.targets)]
        return f"`{it.id}`", set().union(*map(_strings, values)) if values else set()
    kind = {ast.Dict: "dict", ast.Tuple: "tuple", ast.List: "list"}.get(type(it))
    return (f"a {kind} literal" if kind else f"`{ast.unparse(loop.iter)}`"), _strings(loop.iter)


def _bound_vars(target: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}


def claim_cells(source: str, claim_ids) -> dict[str, list[Cell]]:
    """Claim id -> the cells of notebook ``source`` that record it, for the ids in ``claim_ids``."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    ids = list(claim_ids)
    out: dict[str, list[Cell]] = {}

    def add(cid, cell):
        cells = out.setdefault(cid, [])
        same = next((c for c in cells if (c.line, c.loop) == (cell.line, cell.loop)), None)
        if same is None:
            cells.append(cell)
        elif not set(cell.calls) <= set(same.calls):
            cells[cells.index(same)] = Cell(same.line, tuple(sorted({*same.calls, *cell.calls})), same.loop)

    def loops(node):
        while node in parents:
            node = parents[node]
            if isinstance(node, ast.For):
                yield node

    for call in (n for n in ast.walk(tree) if _is_record_claim(n)):
        arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "claim_id"), None)
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            if arg.value in ids:
                add(arg.value, Cell(call.lineno, (call.lineno,)))
            continue
        matches, loop = set(), None
        if isinstance(arg, ast.JoinedStr):
            loop = next(loops(call), None)
            matches = {c for c in ids if _pattern(arg).fullmatch(c)}
        elif isinstance(arg, ast.Name):
            for candidate in loops(call):
                if arg.id in _bound_vars(candidate.target):  # for claim_id, ... in <iterable>
                    loop, matches = candidate, _loop_source(candidate, tree)[1] & set(ids)
                    break
                assigned = [n.value for stmt in candidate.body for n in ast.walk(stmt) if isinstance(n, ast.Assign)
                            and any(isinstance(t, ast.Name) and t.id == arg.id for t in n.targets)]
                if assigned:  # claim_id = f"..." inside the loop
                    loop = candidate
                    for value in assigned:
                        if isinstance(value, ast.JoinedStr):
                            matches |= {c for c in ids if _pattern(value).fullmatch(c)}
                        matches |= _strings(value) & set(ids)
                    break
        for cid in sorted(matches, key=ids.index):
            if loop is None:
                add(cid, Cell(call.lineno, (call.lineno,)))
            else:
                add(cid, Cell(loop.lineno, (call.lineno,), _loop_source(loop, tree)[0]))
    for cells in out.values():
        cells.sort(key=lambda c: c.line)
    return out


# -- modules and tests --------------------------------------------------------------------------

def our_modules(names, root: Path = REPO_ROOT) -> set[str]:
    """The ``initrepro`` modules among imported ``names``: a name re-exported by a package
    (``from initrepro.init import identity_``) counts as the module that defines it, and a
    package only when none of its submodules is named too."""
    found = set()
    for name in names:
        if module_file(name, root) is not None:
            found.add(name)
            continue
        package, _, attr = name.rpartition(".")
        init = module_file(package, root)
        if init is None or init.name != "__init__.py":
            continue
        exported = imported_names(init.read_text(), package, is_package=True)
        origins = (m.rsplit(".", 1)[0] for m in exported if m.endswith("." + attr))
        found.update(m for m in origins if m != package and module_file(m, root) is not None)
    found.discard(PACKAGE)
    return {m for m in found if not any(other.startswith(m + ".") for other in found)}


def _short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".")


# -- the index ----------------------------------------------------------------------------------

def paper_claims(root: Path = REPO_ROOT) -> list[tuple[str, str, dict]]:
    """(paper id, paper file, claim) for every claim of ``papers/*.yaml``, in file order."""
    out = []
    for path in sorted((root / "papers").glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        for claim in data.get("claims") or []:
            out.append((data.get("id", path.stem), path.relative_to(root).as_posix(), claim))
    return out


def _cell_text(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _abridged(text: str, limit: int = SOURCE_CHARS) -> str:
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",;:(")
    return cut + " …"


def _link(text: str, path: str) -> str:
    return f"[{text}](../{path})"


def index_rows(root: Path = REPO_ROOT) -> list[dict]:
    """One dict per claim: what the index shows, before formatting."""
    claims = paper_claims(root)
    stages = list(dict.fromkeys(c["stage"] for _, _, c in claims))
    notebooks = {s: root / "pipelines" / f"{s}.py" for s in stages}
    modules = {s: our_modules(notebook_imports(s, root), root) if notebooks[s].is_file() else set() for s in stages}
    papers_of = {s: {p for p, _, c in claims if c["stage"] == s} for s in stages}
    importers = {m: set().union(*(papers_of[s] for s in stages if m in modules[s])) for m in set().union(*modules.values())}
    tests = {p.relative_to(root).as_posix(): (p.read_text(), our_modules(imported_names(p.read_text()), root))
             for p in sorted((root / "tests").glob("test_*.py"))}
    cells, figures = {}, {}
    for stage in stages:
        ids = [c["id"] for _, _, c in claims if c["stage"] == stage]
        cells.update(claim_cells(notebooks[stage].read_text(), ids) if notebooks[stage].is_file() else {})
        record = root / "results" / stage / "claims.json"
        if record.is_file():
            figures.update({c["id"]: list(c.get("figures") or []) for c in json.loads(record.read_text())["claims"]})
    rows = []
    for paper, paper_file, claim in claims:
        cid, stage = claim["id"], claim["stage"]
        own = {m for m in modules[stage] if importers[m] <= papers_of[stage]}
        mention = re.compile(rf"(?<![\w.]){re.escape(cid)}(?!\w)")
        rows.append({
            "id": cid, "paper": paper, "paper_file": paper_file, "source": claim.get("source", ""),
            "stage": stage, "cells": cells.get(cid, []),
            "own_modules": sorted(own), "shared_modules": sorted(modules[stage] - own),
            "figures": figures.get(cid, []),
            "tests": [t for t, (text, imported) in tests.items() if imported & own or mention.search(text)],
        })
    return rows


def _cell_links(row: dict) -> str:
    notebook = f"pipelines/{row['stage']}.py"
    parts = []
    for cell in row["cells"]:
        link = _link(f"L{cell.line}", f"{notebook}#L{cell.line}")
        calls = ", ".join(f"L{n}" for n in cell.calls)
        parts.append(link if cell.loop is None else f"{link} (loop over {cell.loop}; call {calls})")
    return ", ".join(parts) or "not found"


def render(root: Path = REPO_ROOT) -> str:
    rows = index_rows(root)
    lines = [
        "# Claim index",
        "",
        "Generated by `python -m initrepro.core.claim_index` (run by `make report`); do not edit by hand.",
        "Each claim of `papers/*.yaml`: the paper and its section, the stage, the notebook line that",
        "records it (a loop line when the id comes from a loop), the `initrepro` modules that notebook",
        "imports (its own first: no other paper's notebook imports them; then, in italics, those shared",
        "with other papers), the figures of its record `results/<stage>/claims.json`, and the tests that",
        "import one of the stage's own modules or name the claim.",
        "",
        "| Claim | Paper: section | Stage | Notebook | Modules | Figures | Tests |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        modules = ", ".join([f"`{_short(m)}`" for m in r["own_modules"]] + [f"*{_short(m)}*" for m in r["shared_modules"]])
        lines.append("| " + " | ".join([
            f"`{r['id']}`",
            f"{_link(r['paper'], r['paper_file'])}: {_cell_text(_abridged(r['source']))}",
            r["stage"],
            _cell_links(r),
            modules or "—",
            ", ".join(_link(Path(f).name, f) for f in r["figures"]) or "—",
            ", ".join(_link(Path(t).stem, t) for t in r["tests"]) or "—",
        ]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = REPO_ROOT / OUTPUT
    text = render()
    if "--check" in args:
        if not path.is_file() or path.read_text() != text:
            print(f"{OUTPUT} is out of date: run `python -m initrepro.core.claim_index`", file=sys.stderr)
            return 1
        return 0
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)
    print(f"wrote {OUTPUT} ({sum(line.startswith('| `') for line in text.splitlines())} claims)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
