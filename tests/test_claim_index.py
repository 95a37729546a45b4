"""reports/claim_index.md: every claim traced to the notebook line that records it, and never stale."""

import re

import pytest

from initrepro.core.claim_index import OUTPUT, claim_cells, our_modules, paper_claims, render
from initrepro.core.claims import REPO_ROOT

ROW = re.compile(r"^\| `(?P<id>[^`]+)` \|(?P<rest>.*)\|$")
CELL = re.compile(r"\[L(?P<line>\d+)\]\(\.\./pipelines/(?P<stage>\w+)\.py#L(?P=line)\)"
                  r"(?: \(loop over (?P<loop>[^;]+); call (?P<calls>L\d+(?:, L\d+)*)\))?")


def _rows(text):
    rows = {}
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            assert m["id"] not in rows, f"{m['id']}: two rows"
            rows[m["id"]] = line
    return rows


def _fstring_matches(text, claim_id):
    """Whether an f-string literal in ``text`` can produce ``claim_id``."""
    for body in re.findall(r'\bf"([^"]*)"', text):
        pattern = "".join(".+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]*\})", body))
        if re.fullmatch(pattern, claim_id):
            return True
    return False


def test_every_claim_has_a_row_pointing_at_the_line_that_records_it():
    rows = _rows(render())
    claims = paper_claims()
    assert claims and set(rows) == {c["id"] for _, _, c in claims}
    for paper, _, claim in claims:
        cid, stage = claim["id"], claim["stage"]
        row = rows[cid]
        assert f"../papers/{paper}.yaml" in row and f"| {stage} |" in row, row
        cells = list(CELL.finditer(row))
        assert cells, f"{cid}: no notebook line in its row: {row}"
        lines = (REPO_ROOT / "pipelines" / f"{stage}.py").read_text().splitlines()
        for cell in cells:
            assert cell["stage"] == stage, row
            n = int(cell["line"])
            if cell["loop"] is None:
                # the line holds `record.claim(` with the id as its first argument (maybe on the next line)
                head = " ".join(line.strip() for line in lines[n - 1:n + 2])
                assert re.match(rf'record\.claim\(\s*"{re.escape(cid)}"', head), f"{cid}: line {n} is {lines[n - 1]!r}"
            else:
                # the loop line supplies the id to the record.claim calls named in the row
                assert lines[n - 1].lstrip().startswith("for "), f"{cid}: line {n} is {lines[n - 1]!r}"
                calls = [int(c) for c in re.findall(r"L(\d+)", cell["calls"])]
                assert all(n < c and "record.claim(" in lines[c - 1] for c in calls), f"{cid}: calls {calls}"
                text = "\n".join(lines)
                assert f'"{cid}"' in text or _fstring_matches("\n".join(lines[n - 1:max(calls)]), cid), (
                    f"{cid}: neither a literal of the notebook nor produced by an f-string of the loop at line {n}")


def test_committed_index_is_up_to_date():
    path = REPO_ROOT / OUTPUT
    assert path.exists(), f"{OUTPUT} is missing: run `python -m initrepro.core.claim_index`"
    assert path.read_text() == render(), f"{OUTPUT} is out of date: run `python -m initrepro.core.claim_index` (or `make report`)"


SOURCE = '''
from initrepro.core.claims import StageRecord
record = StageRecord("demo", "smoke")
record.claim("demo.literal", [])
record.claim(
    "demo.multiline",
    [],
)
TABLE = {"demo.table_a": 1, "demo.table_b": 2}
for claim_id, value in TABLE.items():
    record.claim(claim_id, [])
for claim_id, why in {
    "demo.skip_a": "no GPU",
}.items():
    record.claim(claim_id, skip_reason=why)
for kind in kinds:
    record.claim(f"demo.deep_{kind}_trains", [])
for arm in arms:
    claim_id = f"demo.{arm}_breaks"
    if skipped:
        record.claim(claim_id, skip_reason="x")
        continue
    record.claim(claim_id, [])
'''


@pytest.mark.parametrize("cid, line, calls, loop", [
    ("demo.literal", 4, (4,), None),
    ("demo.multiline", 5, (5,), None),
    ("demo.table_b", 10, (11,), "`TABLE`"),
    ("demo.skip_a", 12, (15,), "a dict literal"),
    ("demo.deep_mlp_trains", 16, (17,), "`kinds`"),
    ("demo.cuda_breaks", 18, (21, 23), "`arms`"),
])
def test_claim_cells_of_literals_and_loops(cid, line, calls, loop):
    ids = ["demo.literal", "demo.multiline", "demo.table_a", "demo.table_b", "demo.skip_a", "demo.deep_mlp_trains",
           "demo.cuda_breaks", "demo.absent"]
    cells = claim_cells(SOURCE, ids)
    assert "demo.absent" not in cells
    [cell] = cells[cid]
    assert (cell.line, cell.calls, cell.loop) == (line, calls, loop)


def test_our_modules_resolves_reexports_and_prefers_submodules():
    names = {"initrepro.init", "initrepro.init.identity_", "initrepro.models", "initrepro.models.mlp", "numpy",
             "initrepro.core.claims", "initrepro.core.claims.Check"}
    assert our_modules(names) == {"initrepro.init.identity", "initrepro.models.mlp", "initrepro.core.claims"}
