"""Registered designs: every decided claim has one, no conf drifted from it unlogged, and the
records were made under the design that is registered now."""

import json

import pytest
import yaml

from initrepro.core.claims import REPO_ROOT, all_paper_claims
from initrepro.core.designs import design_hash, design_state

PROFILE = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["profile"]
CLAIMS = all_paper_claims()
DECIDED = [cid for cid, c in CLAIMS.items() if c["expected"].get(PROFILE) != "skipped"]


@pytest.mark.parametrize("claim_id", DECIDED)
def test_every_decided_claim_has_a_registered_design(claim_id):
    state = design_state(claim_id, PROFILE, CLAIMS)
    assert state is not None, f"{claim_id}: no design registered for profile {PROFILE!r} in its paper YAML"
    design = CLAIMS[claim_id]["design"][PROFILE]
    for key in ("keys", "test", "paper_precision", "registered"):
        assert design.get(key), f"{claim_id}: design lacks {key!r}"
    assert str(design["registered"].get("date")), f"{claim_id}: registration without a date"


@pytest.mark.parametrize("claim_id", DECIDED)
def test_conf_matches_its_registered_design_or_a_logged_change(claim_id):
    state = design_state(claim_id, PROFILE, CLAIMS)
    assert state is not None and state.ok, (
        f"{claim_id}: conf hash {state.current} differs from {state.expected}: log the change in design_log "
        f"(date, change, the result seen, the new hash)")


def test_design_log_entries_say_what_was_seen():
    for cid, spec in CLAIMS.items():
        for entry in spec.get("design_log") or []:
            assert {"date", "change", "seen", "hash"} <= set(entry), f"{cid}: incomplete design_log entry {entry}"
            assert str(entry["change"]).strip(), f"{cid}: design_log entry without a change"


@pytest.mark.parametrize("claim_id", DECIDED)
def test_record_was_made_under_the_registered_design(claim_id):
    stage = CLAIMS[claim_id]["stage"]
    record = json.loads((REPO_ROOT / "results" / stage / "claims.json").read_text())
    entry = next(c for c in record["claims"] if c["id"] == claim_id)
    state = design_state(claim_id, PROFILE, CLAIMS)
    assert entry.get("design", {}).get("hash") == state.current, (
        f"{claim_id}: the record was made under design {entry.get('design', {}).get('hash')}, the conf now "
        f"hashes to {state.current}: rerun `make repro`")
    assert entry["design"]["post_hoc_changes"] == state.post_hoc_changes


def test_a_changed_conf_without_a_log_entry_is_caught(tmp_path, monkeypatch):
    import initrepro.core.designs as designs

    cid = DECIDED[0]
    spec = CLAIMS[cid]
    conf = yaml.safe_load(designs.conf_path(spec["stage"], PROFILE).read_text())
    keys = spec["design"][PROFILE]["keys"]
    changed = {**conf, keys[0]: ["changed", conf[keys[0]]]}
    (tmp_path / spec["stage"]).mkdir()
    (tmp_path / spec["stage"] / f"{PROFILE}.yaml").write_text(yaml.safe_dump(changed))
    monkeypatch.setattr(designs, "CONF_DIR", tmp_path)
    assert design_hash(changed, keys) != design_hash(conf, keys)
    without_log = {cid: {**spec, "design_log": [e for e in spec.get("design_log") or [] if not e["hash"]]}}
    assert not design_state(cid, PROFILE, without_log).ok
    logged = {cid: {**spec, "design_log": (spec.get("design_log") or []) + [
        {"date": "2026-12-01", "profile": PROFILE, "change": "x", "seen": "y", "hash": design_hash(changed, keys)}]}}
    state = design_state(cid, PROFILE, logged)
    assert state.ok and state.post_hoc_changes == sum(1 for e in logged[cid]["design_log"] if str(e["seen"]).strip())
