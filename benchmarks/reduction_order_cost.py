"""Cost of the reduction_order emulation vs a plain step, at the nondeterminism smoke size.

    .venv/bin/python benchmarks/reduction_order_cost.py [--threads 1] [--widen-factor 1]

ConstNet arms train on channel-uniform kernels (uniform_conv2d); the last lines are the cost
of oneDNN and of the oneDNN-off path. Only ratios of times from one run are compared (the least time over the steps,
the best estimate of the uncontended cost on a shared CPU). The issue's budget: a
reduction_order step costs at most 3x a plain step on a 2-core CPU.
"""

import argparse

import torch

from initrepro.data import load_dataset
from initrepro.studies.constnet import seconds_per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--widen-factor", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_set, _ = load_dataset("digits", seed=0)
    x, y = train_set.x[:64], train_set.y[:64]
    shape = dict(depth=10, widen_factor=args.widen_factor, num_classes=10, steps=args.steps)
    times = {arm: seconds_per_step(arm, x, y, **shape) for arm in ("none", "reduction_order", "ulp_jitter")}
    times["none, oneDNN on"] = seconds_per_step("none", x, y, kernels="onednn", **shape)
    times["none, oneDNN off"] = seconds_per_step("none", x, y, kernels="onednn_off", **shape)
    for arm, t in times.items():
        print(f"{arm:>16}: {t / times['none']:.2f}x a channel-uniform step without breaker")


if __name__ == "__main__":
    main()
