"""dvc.yaml's deps are the files each stage really imports (initrepro.core.deps)."""

import yaml

from initrepro.core.claims import REPO_ROOT
from initrepro.core.deps import computed, declared, differences, imported_names, module_closure, write

DVC = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
CLAIM_STAGES = [s for s in DVC["stages"] if s != "report"]


def test_dvc_yaml_lists_exactly_the_computed_deps():
    assert differences() == {}, "dvc.yaml deps differ from the imports: run `python -m initrepro.core.deps --write`"


def test_report_and_stability_are_no_deps_of_claim_stages():
    # editing report.py (or stability.py) leaves every claim stage up to date
    for stage in CLAIM_STAGES:
        deps = declared()[stage]
        assert "src/initrepro/core/report.py" not in deps and "src/initrepro/core/stability.py" not in deps
        assert f"pipelines/{stage}.py" in deps and "src/initrepro/core/pipeline.py" in deps
        assert "src/initrepro" not in deps  # no stage depends on the whole package


def test_confs_are_params_not_deps():
    for stage in CLAIM_STAGES:
        spec = DVC["stages"][stage]
        assert not any(d.startswith("pipelines/conf") for d in spec["deps"])
        assert {f"pipelines/conf/{stage}/${{profile}}.yaml": None} in spec["params"]


def test_imports_inside_functions_relative_and_from_count(tmp_path):
    src = tmp_path / "src" / "initrepro"
    (src / "sub").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "sub" / "__init__.py").write_text("from .leaf import f\n")
    (src / "sub" / "leaf.py").write_text("def f():\n    from initrepro import lazy\n")
    (src / "lazy.py").write_text("import os\n")
    (src / "unused.py").write_text("")
    names = imported_names("from initrepro.sub import f\n")
    files = {p.relative_to(src).as_posix() for p in module_closure(names, tmp_path)}
    assert files == {"__init__.py", "sub/__init__.py", "sub/leaf.py", "lazy.py"}


def test_write_rewrites_only_the_deps_blocks(tmp_path):
    import shutil

    for d in ("src", "pipelines", "papers"):
        shutil.copytree(REPO_ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    text = (REPO_ROOT / "dvc.yaml").read_text()
    broken = text.replace("      - src/initrepro/core/seeding.py\n", "", 1)
    (tmp_path / "dvc.yaml").write_text(broken)
    assert differences(tmp_path)
    assert write(tmp_path)
    assert differences(tmp_path) == {} and computed(tmp_path) == computed(REPO_ROOT)
