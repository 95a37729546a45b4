"""Per-layer EOI (``eoi_``, the path of ``model.apply``) against the authors' recount loop.

    .venv/bin/python benchmarks/eoi_speed.py [--layers 1000] [--size 128] [--density 0.125]

Issue 8: 1000 sequential ``eoi_`` calls on 128x128 weights at density 0.125 must be at least
10x faster than the loop that recounts all nonzeros after every rotation
(``initrepro.init.eoi.eoi_reference``). Both run here, one thread, in the same process;
CPU time (``time.process_time``) is reported next to wall time, since it is what a shared
machine's load changes least.
"""

import argparse
import time

import torch

from initrepro.init.eoi import eoi_, eoi_reference, eoi_stack


def timed(fn, repeats: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=1000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--density", type=float, default=0.125)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    weight = torch.empty(args.size, args.size)
    results = {
        "eoi_ (per layer)": timed(lambda: eoi_(weight, args.density, generator=gen), args.layers),
        "eoi_stack (all layers)": timed(lambda: eoi_stack(args.layers, (args.size, args.size), args.density,
                                                          generator=gen), 1),
        "recount reference": timed(lambda: eoi_reference(args.size, args.size, args.density, generator=gen),
                                   args.layers),
    }
    ref_wall, ref_cpu = results["recount reference"]
    print(f"{args.layers} layers {args.size}x{args.size}, density {args.density}, {args.threads} thread(s)")
    for name, (wall, cpu) in results.items():
        print(f"{name:>24}: wall {wall:7.2f} s  cpu {cpu:7.2f} s  speedup (cpu) {ref_cpu / cpu:6.1f}x"
              f"  (wall) {ref_wall / wall:6.1f}x")


if __name__ == "__main__":
    main()
