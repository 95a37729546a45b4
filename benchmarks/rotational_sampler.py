"""Rotational sampler against the matrix path for log||x_L|| of random ReLU networks.

    .venv/bin/python benchmarks/rotational_sampler.py [--threads 2] [--networks 100000 --depth 1000]

Two timings, as issue 8 asks:
1. speedup at width 64 on the same work (matrix path: a d x d Gaussian matrix per layer and a
   batched matmul; rotational: one d-vector of normals per layer), target >= 20x;
2. 10^5 networks of depth 1000 at width 64 by the rotational sampler (6.4e9 normals), target
   under a minute on the 2-core CPU;
3. the smoke stage's sampler validation for one activation and one sample (``--validate-networks``
   matrix-path networks of depth ``--validate-depth`` and ``--validate-ratio`` times as many
   rotational ones; the stage runs 3 activations x 2 samples).
Wall and CPU seconds are both printed, with the load average: on a shared machine the CPU
seconds divided by the threads estimate the wall time of an idle one.
"""

import argparse
import os
import time

import torch

from initrepro.studies.fractional import log_norm_ratios, rotational_log_norms, rotational_log_ratios
from initrepro.theory.fractional import sigma_s


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--compare-networks", type=int, default=1000)
    parser.add_argument("--compare-depth", type=int, default=100)
    parser.add_argument("--networks", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--validate-networks", type=int, default=2761)
    parser.add_argument("--validate-depth", type=int, default=50)
    parser.add_argument("--validate-ratio", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sigma, gen = sigma_s(args.width, 1.0), torch.Generator().manual_seed(0)
    print(f"threads {args.threads}, load average before {os.getloadavg()}")

    work = (args.compare_networks, args.width, args.compare_depth, sigma)
    _, m_wall, m_cpu = timed(lambda: log_norm_ratios(*work, generator=gen))
    _, r_wall, r_cpu = timed(lambda: rotational_log_ratios(*work, generator=gen))
    print(f"width {args.width}, {args.compare_networks} networks x depth {args.compare_depth}: matrix path "
          f"{m_wall:.2f} s wall ({m_cpu:.2f} s CPU), rotational {r_wall:.3f} s wall ({r_cpu:.3f} s CPU): "
          f"speedup {m_wall / r_wall:.0f}x wall, {m_cpu / r_cpu:.0f}x CPU (target >= 20x)")

    work = (args.width, args.validate_depth, sigma)
    _, m_wall, m_cpu = timed(lambda: log_norm_ratios(args.validate_networks, *work, generator=gen))
    _, r_wall, r_cpu = timed(lambda: rotational_log_ratios(args.validate_ratio * args.validate_networks, *work,
                                                           generator=gen))
    print(f"validation sample (one activation): matrix path {args.validate_networks} x {args.validate_depth} "
          f"{m_wall:.2f} s wall ({m_cpu:.2f} s CPU), rotational {args.validate_ratio}x as many {r_wall:.2f} s wall "
          f"({r_cpu:.2f} s CPU); the stage's 6 samples: about {6 * (m_cpu + r_cpu) / args.threads:.1f} s on an idle "
          f"{args.threads}-core machine")

    g, wall, cpu = timed(lambda: rotational_log_norms(args.networks, args.width, args.depth, sigma, generator=gen,
                                                      progress=True))
    normals = args.networks * args.depth * args.width
    print(f"{args.networks} networks x depth {args.depth} (width {args.width}, {normals:.2g} normals): "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU ({normals / cpu / 1e6:.0f} M normals per CPU second; "
          f"idle {args.threads}-core estimate {cpu / args.threads:.1f} s; target < 60 s); "
          f"load average after {os.getloadavg()}; mean log-norm {g.mean().item():.4f}")


if __name__ == "__main__":
    main()
