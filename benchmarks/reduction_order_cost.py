"""Cost of the reduction_order emulation vs a plain step, at the nondeterminism smoke size.

    .venv/bin/python benchmarks/reduction_order_cost.py [--threads 1]

The issue's budget: a reduction_order step costs at most 3x a plain step on a 2-core CPU.
"""

import argparse

import torch

from initrepro.data import load_dataset
from initrepro.symmetry_breakers import seconds_per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_set, _ = load_dataset("digits", seed=0)
    x, y = train_set.x[:64], train_set.y[:64]
    times = {arm: seconds_per_step(arm, x, y, depth=10, widen_factor=2, num_classes=10, steps=args.steps)
             for arm in ("none", "reduction_order", "ulp_jitter")}
    for arm, t in times.items():
        print(f"{arm:>16}: {1000 * t:7.1f} ms/step  ({t / times['none']:.2f}x none)")


if __name__ == "__main__":
    main()
