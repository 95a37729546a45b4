"""Cost of ConstNet's channel-uniform kernels against oneDNN and PyTorch's oneDNN-off path.

    .venv/bin/python benchmarks/channel_uniform_conv.py [--threads 1] [--repeats 7] [--steps 10]

ConstNet arms must train on kernels that treat every channel alike (the breaker is then the
only source of asymmetry; oneDNN's AVX2 convolutions break the symmetry by themselves). Two
channel-uniform choices: PyTorch's convolution with oneDNN off (its per-sample im2col +
BLAS ``slow_conv2d``), and ``uniform_conv2d`` (one NHWC im2col for the whole batch and one
GEMM each way, the channels always the columns of the product). This script times a full
SGD step of the nondeterminism smoke ConstNet (WRN-10-1, digits, batch 64) on each kernel
set, and one conv layer alone, in alternating repeats (``initrepro.core.verdicts.alternating_timings``),
and prints median ratios (``initrepro.core.verdicts.speedup``): only ratios from one run are
compared. The timer is the process's CPU time (one thread; ``--wall`` for wall time), which a
loaded machine disturbs far less than wall time. That the uniform kernels keep identical channels bitwise identical on every CPU
kernel path is tested in ``tests/test_constnet.py``
(``test_uniform_kernels_keep_constnet_symmetric_on_every_cpu_kernel_path``).

Seen on a 2-core AVX512 machine, idle, one thread (full step): oneDNN 21.8 ms, uniform
24.6 ms, oneDNN off 50 ms.
"""

import argparse
import time

import torch
import torch.nn.functional as F

from initrepro.data import load_dataset
from initrepro.studies.constnet import build_arm, kernel_set, onednn, uniform_conv2d
from initrepro.core.verdicts import alternating_timings, speedup


def step_fn(kernels: str, x, y, steps: int):
    model, _ = build_arm("none", "constnet", depth=10, widen_factor=1, num_classes=10, in_channels=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def run():
        with kernel_set(model, kernels):
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
    return run


def conv_fn(kind: str, steps: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 16, 8, 8, generator=g, requires_grad=True)
    w = torch.randn(32, 16, 3, 3, generator=g, requires_grad=True)

    def run():
        with onednn(kind == "onednn"):
            for _ in range(steps):
                out = uniform_conv2d(x, w, 2, 1) if kind == "uniform" else F.conv2d(x, w, stride=2, padding=1)
                out.sum().backward()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--wall", action="store_true", help="wall time (default: this process's CPU time, "
                                                             "robust on a shared machine)")
    args = parser.parse_args()
    timer = time.perf_counter if args.wall else time.process_time
    torch.set_num_threads(args.threads)
    train_set, _ = load_dataset("digits", seed=0)
    x, y = train_set.x[:64], train_set.y[:64]
    for what, make in (("SGD step, WRN-10-1", lambda k: step_fn(k, x, y, args.steps)),
                       ("conv 16->32, 3x3, stride 2, 8x8, fwd+bwd", lambda k: conv_fn(k, args.steps * 5))):
        uniform = make("uniform")
        for other in ("onednn_off", "onednn"):
            slow_s, fast_s = alternating_timings(make(other), uniform, args.repeats, timer=timer)
            print(f"{what}: {speedup(f'uniform against {other}', slow_s, fast_s, 1.0).summary}")


if __name__ == "__main__":
    main()
