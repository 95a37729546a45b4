"""The files each DVC stage really depends on, computed from the imports.

    python -m initrepro.core.deps            # print each stage's deps and whether dvc.yaml lists them
    python -m initrepro.core.deps --check    # exit 1 unless dvc.yaml lists exactly these deps
    python -m initrepro.core.deps --write    # rewrite the deps lists of dvc.yaml

A claim stage depends on its notebook ``pipelines/<stage>.py``, its paper YAML(s) (the papers
whose claims name the stage) and every module of ``initrepro`` that the notebook or the stage
runner (``initrepro.core.pipeline``) imports, transitively: imports inside functions count, and so
do the packages' ``__init__.py``. Its conf file is a DVC param, not a dep. The report stage
depends on the modules ``initrepro.core.report`` imports, the records and the paper YAMLs. So an
edit of ``report.py`` reruns only the report, and an edit of one paper's study module only
the stages that import it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import yaml

from initrepro.core.claims import REPO_ROOT

PACKAGE = "initrepro"
#: the stage runner: ``cmd`` of every claim stage
RUNNER = f"{PACKAGE}.core.pipeline"
REPORT = f"{PACKAGE}.core.report"


def package_dir(root: Path = REPO_ROOT) -> Path:
    return root / "src" / PACKAGE


def module_file(name: str, root: Path = REPO_ROOT) -> Path | None:
    """The file of module ``name`` (``initrepro.x.y``) in ``src/``, if it is one of ours."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = root / "src" / Path(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root / "src").with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_names(source: str, current: str | None = None, is_package: bool = False) -> set[str]:
    """Every module name ``source`` imports (anywhere, also inside functions), with
    ``from a import b`` giving both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if current is None:
                    continue
                parts = current.split(".") if is_package else current.split(".")[:-1]
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def module_closure(names, root: Path = REPO_ROOT) -> set[Path]:
    """The files of our modules among ``names`` and everything they import, transitively
    (importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too)."""
    seen: set[Path] = set()
    todo = [n for name in names for n in _with_parents(name)]
    while todo:
        path = module_file(todo.pop(), root)
        if path is None or path in seen:
            continue
        seen.add(path)
        current = _module_name(path, root)
        found = imported_names(path.read_text(), current, path.name == "__init__.py")
        todo += [n for name in found for n in _with_parents(name)]
    return seen


def notebook_imports(stage: str, root: Path = REPO_ROOT) -> set[str]:
    """Module names the code of ``pipelines/<stage>.py`` imports (a jupytext percent script:
    plain Python, magics aside)."""
    source = (root / "pipelines" / f"{stage}.py").read_text()
    source = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    return imported_names(source)


def stage_papers(stage: str, root: Path = REPO_ROOT) -> list[str]:
    """Repo-relative paper YAMLs with a claim of ``stage``."""
    out = []
    for path in sorted((root / "papers").glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        if any(c.get("stage") == stage for c in data.get("claims") or []):
            out.append(path.relative_to(root).as_posix())
    return out


def _rel(paths, root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in paths)


def stage_deps(stage: str, root: Path = REPO_ROOT) -> list[str]:
    """What a claim stage depends on (see the module docstring), repo-relative."""
    modules = module_closure(notebook_imports(stage, root) | {RUNNER}, root)
    return [f"pipelines/{stage}.py", *stage_papers(stage, root), *_rel(modules, root)]


def report_deps(claim_stages, root: Path = REPO_ROOT) -> list[str]:
    papers = _rel((root / "papers").glob("*.yaml"), root)
    # the stability column comes from reports/stability.json (`python -m initrepro.core.stability`)
    return [*_rel(module_closure({REPORT}, root), root), *papers,
            *[f"results/{s}/claims.json" for s in claim_stages], "reports/stability.json"]


def computed(root: Path = REPO_ROOT) -> dict[str, list[str]]:
    """Stage -> computed deps, for every stage of dvc.yaml."""
    names = list((yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {}))
    claim_stages = [s for s in names if s != "report"]
    out = {s: stage_deps(s, root) for s in claim_stages}
    if "report" in names:
        out["report"] = report_deps(claim_stages, root)
    return out


def declared(root: Path = REPO_ROOT) -> dict[str, list[str]]:
    stages = (yaml.safe_load((root / "dvc.yaml").read_text()) or {}).get("stages", {})
    return {s: [d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps", [])] for s, spec in stages.items()}


def differences(root: Path = REPO_ROOT) -> dict[str, dict[str, list[str]]]:
    """Per stage, the computed deps dvc.yaml lacks (``missing``) and those it lists in excess."""
    have = declared(root)
    out = {}
    for stage, deps in computed(root).items():
        missing = sorted(set(deps) - set(have.get(stage, [])))
        extra = sorted(set(have.get(stage, [])) - set(deps))
        if missing or extra:
            out[stage] = {"missing": missing, "extra": extra}
    return out


def write(root: Path = REPO_ROOT) -> bool:
    """Rewrite each stage's ``deps:`` block in dvc.yaml (a block list under ``    deps:``);
    returns whether anything changed."""
    path = root / "dvc.yaml"
    text = path.read_text()
    new = text
    for stage, deps in computed(root).items():
        pattern = re.compile(rf"(^  {re.escape(stage)}:[^\n]*\n(?:(?!  \S).*\n)*?    deps:[^\n]*\n)((?:      - [^\n]*\n)*)",
                             re.MULTILINE)
        if not pattern.search(new):
            raise ValueError(f"dvc.yaml: stage {stage!r} has no block list under '    deps:'")
        new = pattern.sub(lambda m: m.group(1) + "".join(f"      - {d}\n" for d in deps), new, count=1)
    if new != text:
        from initrepro.core.files import atomic_write_text

        atomic_write_text(path, new)
    return new != text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--write" in args:
        print("dvc.yaml deps rewritten" if write() else "dvc.yaml deps already up to date")
        return 0
    diff = differences()
    if "--check" not in args:
        for stage, deps in computed().items():
            print(f"{stage}: {len(deps)} deps" + (" (dvc.yaml differs)" if stage in diff else ""))
            print("".join(f"  {d}\n" for d in deps), end="")
    for stage, d in diff.items():
        print(f"{stage}: dvc.yaml lacks {d['missing']}, lists in excess {d['extra']}", file=sys.stderr)
    if diff:
        print("run `python -m initrepro.core.deps --write`", file=sys.stderr)
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
