"""Step counting of initrepro.core.estimate, and its table with a fake measurement file."""

import json

import pytest

from initrepro.core import estimate


def test_steps_per_epoch_counts_the_short_last_batch_and_the_held_out_part():
    assert estimate.steps_per_epoch("cifar10", 128) == 391  # 50,000 / 128 = 390.6
    assert estimate.steps_per_epoch("cifar10", 128, val_fraction=0.1) == 352  # 45,000 / 128
    assert estimate.steps_per_epoch("fashion_mnist", 64) == 938


def test_constnet_stages_count_arms_x_epochs_x_seeds_x_batches():
    p = {"dataset": "cifar10", "batch_size": 128, "seeds": [0, 1], "epochs": 3, "depth": 16, "widen_factor": 10}
    (term,) = estimate.zero_init(p)
    assert term.member_steps == 2 * 3 * 2 * 391
    p.update(arm_epochs={"none": 3, "cuda": 5, "dropout": 4}, breakers=["cuda", "dropout"])
    (term,) = estimate.nondeterminism(p)
    assert term.member_steps == (5 + 3 + 5 + 4) * 2 * 391  # He at the longest budget


def test_search_then_evaluation_counts_every_lr_and_seed():
    p = {"dataset": "cifar10", "batch_size": 128, "val_fraction": 0.1, "lrs": [0.01, 0.1], "search_seeds": [0, 1, 2],
         "seeds": [5, 6], "epochs": 10, "widths": [8], "blocks": [1]}
    (term,) = estimate.risotto_fixup(p)
    assert term.member_steps == 5 * (2 * 3 * 10 * 352 + 2 * 10 * 391)
    assert "5 arms x (2 lrs x 3 search seeds x 10 epochs x 352 + 2 seeds x 10 epochs x 391)" == term.formula


def test_notebook_defaults_fill_what_the_conf_leaves_out():
    assert estimate.notebook_defaults("zero_hadamard")["search_seeds"] == [100, 101, 102]
    assert estimate.stage_params("zero_init")["device"] == "cuda"


def test_every_stage_has_terms_from_its_paper_conf():
    rows = estimate.table("paper", None)
    assert {r["stage"] for r in rows} == set(estimate.STAGES)
    assert all(r["member_steps"] > 0 and r["gpu_hours"] is None for r in rows)


def test_measured_times_give_hours_and_a_total(tmp_path, capsys):
    keys = [r["key"] for r in estimate.table("paper", None)]
    times = tmp_path / "times.json"
    times.write_text(json.dumps({"device": "Fake GPU", "seconds_per_step": {k: 0.036 for k in keys}}))
    rows = estimate.table("paper", estimate.load_times(times))
    assert rows[0]["gpu_hours"] == pytest.approx(rows[0]["member_steps"] * 0.036 / 3600)
    assert estimate.main(["--times", str(times)]) == 0
    out = capsys.readouterr().out
    total = sum(r["gpu_hours"] for r in rows)
    assert f"{total:.0f} GPU hours" in out and "measured on Fake GPU" in out and "not yet measured" not in out


def test_without_measurements_the_table_says_not_yet_measured(tmp_path, capsys):
    assert estimate.main(["--times", str(tmp_path / "absent.json")]) == 0
    out = capsys.readouterr().out
    assert "not yet measured" in out and "no GPU was at hand" in out and "1,173,000" in out
