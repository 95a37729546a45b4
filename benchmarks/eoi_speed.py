"""Cost of building one layer: ``eoi_`` (the path of ``model.apply``) against
``torch.nn.init.orthogonal_`` on the same shape and the authors' recount loop.

    .venv/bin/python benchmarks/eoi_speed.py [--size 128] [--density 0.125] [--block 20] [--repeats 7]

Each timing is a block of ``--block`` consecutive layers; the blocks alternate
(``initrepro.core.verdicts.alternating_timings``), CPU time, one thread; the ratios are those of
the stage's ``eoi.efficient`` claim (``verdicts.speedup``: median over the repeats).
"""

import argparse
import time

import numpy as np
import torch

from initrepro.init.eoi import eoi_, eoi_reference, eoi_stack
from initrepro.core.verdicts import alternating_timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--density", type=float, default=0.125)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--stack", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    weight = torch.empty(args.size, args.size)
    gens = [torch.Generator().manual_seed(0) for _ in range(3)]

    def block(fn):
        return lambda: [fn() for _ in range(args.block)]

    fast = block(lambda: eoi_(weight, args.density, generator=gens[0]))
    ref = block(lambda: eoi_reference(args.size, args.size, args.density, generator=gens[1]))
    orth = block(lambda: torch.nn.init.orthogonal_(weight, generator=gens[2]))
    ref_s, fast_s = alternating_timings(ref, fast, args.repeats, timer=time.process_time)
    orth_s, fast2_s = alternating_timings(orth, fast, args.repeats, timer=time.process_time)
    start = time.process_time()
    eoi_stack(args.stack, (args.size, args.size), args.density, generator=gens[0])
    stack_s = time.process_time() - start
    per = lambda t: 1e3 * float(np.median(t)) / args.block  # noqa: E731
    print(f"{args.size}x{args.size}, density {args.density}, {args.repeats} alternating blocks of {args.block} layers")
    print(f"  ms per layer: eoi_ {per(fast_s + fast2_s):.3f}, orthogonal_ {per(orth_s):.3f}, recount loop {per(ref_s):.3f}")
    print(f"  recount / eoi_: median {np.median(np.array(ref_s) / fast_s):.1f}x; "
          f"orthogonal_ / eoi_: median {np.median(np.array(orth_s) / fast2_s):.2f}x")
    print(f"  eoi_stack of {args.stack} layers: {stack_s:.2f} s CPU")


if __name__ == "__main__":
    main()
