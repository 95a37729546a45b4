"""GPU hours per stage at the paper profile: optimizer steps counted from the confs, times
measured seconds per step.

    python -m initrepro.core.estimate [--profile paper] [--times reports/gpu_step_times.json] [--markdown]

A *member-step* is one SGD step of one network (one arm, one seed, one lr) on one batch of the
conf's size: stages train their arms as vectorized ensembles, so a GPU test times an ensemble
step at the paper shape and divides by its members. Each stage is a sum of terms, one per
network shape, each ``member-steps x seconds per member-step`` of its key in the measurement
file (written by ``tests/test_gpu.py`` on a GPU)::

    {"device": "NVIDIA H100 80GB HBM3", "date": "2026-12-01", "seconds_per_step": {"zero_init": 0.012, ...}}

What is counted is the training (every lr of the search grid on every search seed, then every
evaluation seed), each formula printed next to its count. Not counted: lr-grid extensions
(``select_lr`` adds at most ``max_extensions`` lrs per arm), evaluation passes, shallow positive
controls (a few layers against the claim's depth), Monte Carlo and Jacobian measurements, CPU
kernel probes, and breaker overheads. One seed set; ``make stability`` runs one more per set.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from initrepro.core.claims import REPO_ROOT

PIPELINES_DIR = REPO_ROOT / "pipelines"
TIMES_FILE = REPO_ROOT / "reports" / "gpu_step_times.json"
#: training-set sizes of the torchvision datasets (official splits)
TRAIN_SIZES = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "cifar100": 50000}


@dataclass(frozen=True)
class Term:
    """``member_steps`` steps of the network that ``key`` names (``what``), counted by ``formula``."""

    key: str
    what: str
    formula: str
    member_steps: int


def notebook_defaults(stage: str) -> dict:
    """The literal values of the parameters cell of ``pipelines/<stage>.py`` (jupytext percent)."""
    lines = (PIPELINES_DIR / f"{stage}.py").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# %%") and "parameters" in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("# %%")), len(lines))
    values = {}
    for node in ast.parse("\n".join(lines[start + 1:end])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                values[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # not a literal: no default to count with
    return values


def stage_params(stage: str, profile: str = "paper") -> dict:
    """The parameters a stage runs with under ``profile``: notebook defaults, then the conf."""
    conf = yaml.safe_load((PIPELINES_DIR / "conf" / stage / f"{profile}.yaml").read_text()) or {}
    return {**notebook_defaults(stage), **conf}


def steps_per_epoch(dataset: str, batch_size: int, val_fraction: float = 0.0) -> int:
    """Batches in one epoch of ``dataset``'s training set, less a held-out ``val_fraction``
    (the last batch may be short)."""
    n = TRAIN_SIZES[dataset]
    return math.ceil((n - int(n * val_fraction)) / batch_size)


def _search_and_eval(key: str, what: str, p: dict, arms: int, lrs_key: str, epochs_key: str) -> Term:
    """``arms`` x (lrs x search seeds x epochs x batches of the search split + seeds x epochs x
    batches of the training set): the lr search, then the evaluation at the chosen lr."""
    search = steps_per_epoch(p["dataset"], p["batch_size"], p["val_fraction"])
    full = steps_per_epoch(p["dataset"], p["batch_size"])
    lrs, search_seeds, seeds, epochs = len(p[lrs_key]), len(p["search_seeds"]), len(p["seeds"]), p[epochs_key]
    steps = arms * (lrs * search_seeds * epochs * search + seeds * epochs * full)
    return Term(key, what, f"{arms} arms x ({lrs} lrs x {search_seeds} search seeds x {epochs} epochs x {search} "
                           f"+ {seeds} seeds x {epochs} epochs x {full})", steps)


def _constnet_arms(p: dict, arm_epochs: list[int], key: str) -> Term:
    per_epoch = steps_per_epoch(p["dataset"], p["batch_size"])
    steps = sum(arm_epochs) * len(p["seeds"]) * per_epoch
    return Term(key, f"WRN-{p['depth']}-{p['widen_factor']}, {p['dataset']}, batch {p['batch_size']}",
                f"({' + '.join(map(str, arm_epochs))}) arm-epochs x {len(p['seeds'])} seeds x {per_epoch}", steps)


def zero_init(p: dict) -> list[Term]:
    """ConstNet with its breaker and the He WRN, every seed, ``epochs`` each."""
    return [_constnet_arms(p, [p["epochs"], p["epochs"]], "zero_init")]


def nondeterminism(p: dict) -> list[Term]:
    """He for the longest budget, ConstNet without breaker, ConstNet with each breaker."""
    epochs = p["arm_epochs"]
    arms = [max(epochs.values()), epochs["none"]] + [epochs[b] for b in p["breakers"]]
    return [_constnet_arms(p, arms, "nondeterminism")]


def risotto_fixup(p: dict) -> list[Term]:
    """RISOTTO, Fixup, SkipInit, RISOTTO + BN, BN-ResNet (He): lr search, then evaluation."""
    return [_search_and_eval("risotto_fixup", f"ResNet widths {p['widths']} x blocks {p['blocks']}, {p['dataset']}",
                             p, 5, "lrs", "epochs")]


def eoi_deep_sparse(p: dict) -> list[Term]:
    """The control, EOI and every sparse baseline, every training seed, on the MLP and the CNN."""
    arms, seeds = 2 + len(p["sparse_baselines"]), len(p["train_seeds"])
    return [Term("eoi_deep_sparse/mlp", f"{p['depth']}-layer tanh MLP width {p['width']}, {p['dataset']}",
                 f"{arms} arms x {seeds} seeds x {p['mlp_steps']} steps", arms * seeds * p["mlp_steps"]),
            Term("eoi_deep_sparse/cnn", f"{p['depth']}-layer tanh CNN {p['cnn_channels']} channels, {p['cnn_dataset']}",
                 f"{arms} arms x {seeds} seeds x {p['cnn_steps']} steps (arms gated on the control: at most)",
                 arms * seeds * p["cnn_steps"])]


def fractional_lognorm(p: dict) -> list[Term]:
    """The s-moment scheme and Kaiming, every training seed."""
    per_epoch = steps_per_epoch(p["dataset"], p["batch_size"])
    seeds = len(p["train_seeds"])
    return [Term("fractional_lognorm", f"{p['train_depth']}-layer MLP width {p['train_width']}, {p['dataset']}",
                 f"2 schemes x {seeds} seeds x {p['epochs']} epochs x {per_epoch}",
                 2 * seeds * p["epochs"] * per_epoch)]


def identity_init(p: dict) -> list[Term]:
    """Every scheme on every seed, on the paper's dataset and again on CIFAR-10 (control left out)."""
    terms = []
    for key, dataset in (("identity_init", p["dataset"]), ("identity_init/cifar10", p["cifar_dataset"])):
        per_epoch = steps_per_epoch(dataset, p["batch_size"])
        schemes, seeds = len(p["schemes"]), len(p["train_seeds"])
        terms.append(Term(key, f"{p['depth']}-layer class-unit MLP, {dataset}, batch {p['batch_size']}",
                          f"{schemes} schemes x {seeds} seeds x {p['epochs']} epochs x {per_epoch}",
                          schemes * seeds * p["epochs"] * per_epoch))
    return terms


def idinit(p: dict) -> list[Term]:
    """IDInit, Fixup, ZerO, Kaiming, Kaiming + BN: lr search, then evaluation (the linear,
    rank and dead-neuron probes are left out: minutes)."""
    return [_search_and_eval("idinit", f"{p['acc_kind']} ResNet widths {p['acc_widths']} x blocks "
                                       f"{p['acc_blocks']}, {p['dataset']}", p, 5, "acc_lrs", "acc_epochs")]


def relu_isometry(p: dict) -> list[Term]:
    """He and the two looks-linear schemes, every training seed (control left out)."""
    per_epoch = steps_per_epoch(p["dataset"], p["batch_size"])
    seeds = len(p["train_seeds"])
    return [Term("relu_isometry", f"{p['train_depth']}-layer ReLU MLP width {p['train_width']}, {p['dataset']}",
                 f"3 schemes x {seeds} seeds x {p['epochs']} epochs x {per_epoch}", 3 * seeds * p["epochs"] * per_epoch)]


def zero_hadamard(p: dict) -> list[Term]:
    """The rank probe (three schemes), then ZerO and Kaiming on the conv and the fc ResNet: lr
    search, then evaluation (the deep fc proxy is left out: minutes)."""
    terms = [Term("zero_hadamard/rank", f"MLP {p['mlp_widths']}, {p['rank_dataset']}",
                  f"3 schemes x {p['rank_steps']} steps", 3 * p["rank_steps"])]
    for kind in ("conv", "fc"):
        terms.append(_search_and_eval(f"zero_hadamard/{kind}", f"{kind} ResNet widths {p[f'{kind}_widths']} x "
                                      f"blocks {p[f'{kind}_blocks']}, {p['dataset']}", p, 2, "lrs", "epochs"))
    return terms


STAGES: dict[str, Callable[[dict], list[Term]]] = {f.__name__: f for f in (
    zero_init, nondeterminism, risotto_fixup, eoi_deep_sparse, fractional_lognorm, identity_init, relu_isometry,
    zero_hadamard, idinit)}


def stage_terms(stage: str, profile: str = "paper") -> list[Term]:
    return STAGES[stage](stage_params(stage, profile))


def load_times(path: Path = TIMES_FILE) -> dict:
    """The measurement file, or an empty one when no GPU has measured yet."""
    path = Path(path)
    if not path.exists():
        return {"device": None, "seconds_per_step": {}}
    return json.loads(path.read_text())


def table(profile: str = "paper", times: dict | None = None) -> list[dict]:
    """One row per term: stage, key, network, formula, member-steps, seconds per step, GPU hours
    (None: not yet measured)."""
    measured = (times or {}).get("seconds_per_step", {})
    rows = []
    for stage in STAGES:
        for term in stage_terms(stage, profile):
            seconds = measured.get(term.key)
            rows.append({"stage": stage, "key": term.key, "what": term.what, "formula": term.formula,
                         "member_steps": term.member_steps, "seconds_per_step": seconds,
                         "gpu_hours": None if seconds is None else term.member_steps * seconds / 3600})
    return rows


def markdown(rows: list[dict], device: str | None) -> str:
    """The table as markdown, with the device it was measured on and the total."""
    lines = ["| stage (network) | member-steps | counted as | s per member-step | GPU hours |", "|---|---|---|---|---|"]
    for r in rows:
        secs = "not yet measured" if r["seconds_per_step"] is None else f"{r['seconds_per_step']:.4g}"
        hours = "not yet measured" if r["gpu_hours"] is None else f"{r['gpu_hours']:.1f}"
        lines.append(f"| {r['key']} ({r['what']}) | {r['member_steps']:,} | {r['formula']} | {secs} | {hours} |")
    known = [r["gpu_hours"] for r in rows if r["gpu_hours"] is not None]
    total = f"{sum(known):.0f} GPU hours" if len(known) == len(rows) else \
        f"not yet measured ({len(rows) - len(known)} of {len(rows)} terms unmeasured)"
    where = f"measured on {device}" if device else "no GPU was at hand"
    return "\n".join(lines) + f"\n\nTotal for one seed set: {total} ({where}).\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="paper")
    parser.add_argument("--times", type=Path, default=TIMES_FILE, help="measured seconds per member-step (JSON)")
    args = parser.parse_args(argv)
    times = load_times(args.times)
    print(markdown(table(args.profile, times), times.get("device")), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
