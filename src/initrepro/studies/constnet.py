"""Symmetry breakers for ConstNet training, one option of the training run each.

ConstNet's channels are identical at init and, in exact (or deterministic, channel-uniform)
arithmetic, every update keeps them identical (Blumenfeld, Gilboa & Soudry 2020, Sec. 4).
What breaks the symmetry is anything that treats channels differently within one step:

- ``none``: nothing; fully deterministic (on CUDA it turns on deterministic algorithms);
- ``cuda``: cuDNN's non-deterministic kernels (atomic adds accumulate each weight-gradient
  element in its own order); runs only on a CUDA device, elsewhere the arm is skipped;
- ``reduction_order``: the CPU emulation of ``cuda``: every conv weight gradient is summed in
  float32 over batch x positions in blocks whose partial sums are added in an independent
  random order per output channel (as atomic adds of thread-block partial sums do);
- ``ulp_jitter``: every non-zero gradient element moves one float32 ulp up or down at random
  (rounding-size multiplicative noise, ``g * (1 +- ~2^-24)``, done with ``nextafter`` since
  ``1 + 2^-24 u`` is not representable);
- ``dropout``: dropout p = 0.01 on the residual branch, the authors' explicit breaker.

On CPU the breaker must be the only source of channel asymmetry, so ConstNet arms train
under :func:`channel_uniform_kernels`: oneDNN (mkldnn) convolutions are off and the
convolutions run im2col + BLAS, whose arithmetic is the same for every output channel.
oneDNN's own kernels are not: on some instruction sets (AVX2, seen on two machines) they
round identical filters differently and break the symmetry by themselves within a few
dozen steps. :func:`probe_kernels` measures that CPU-kernel effect per instruction set in
fresh interpreters (``ONEDNN_MAX_CPU_ISA`` is read once, when torch first uses oneDNN).

    >>> result = train_arm("ulp_jitter", "constnet", train_set, test_set, cfg, depth=10, widen_factor=2)
    >>> result.tracker.min_distinct[-1]
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from initrepro.data import TensorData, load_dataset
from initrepro.models.wrn import wrn
from initrepro.measures.symmetry import SymmetryTracker, conv_layers, distinct_rows
from initrepro.training import History, Hook, TrainConfig, train

REDUCTION_BLOCKS = 32  # partial sums per weight-gradient reduction in the reduction_order emulation
MIN_BLOCK_ROWS = 16  # fewer, larger blocks for small reductions: the partial sums stay cheap


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def uniform_im2col(x: torch.Tensor, kernel_size, stride=1, padding=0) -> tuple[torch.Tensor, int, int]:
    """The patches of a convolution as one (N*Ho*Wo, kh*kw*C) matrix, channel index fastest
    (the image's NHWC layout): one strided copy per kernel tap, arithmetic-free."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    n, _, h, w = x.shape
    xp = x.permute(0, 2, 3, 1)  # (N, H, W, C)
    if ph or pw:  # zero padding by a copy into zeros (F.pad of a permuted view is several times slower)
        xp = x.new_zeros(n, h + 2 * ph, w + 2 * pw, x.shape[1])
        xp[:, ph:ph + h, pw:pw + w] = x.permute(0, 2, 3, 1)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    taps = [xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] for i in range(kh) for j in range(kw)]
    return torch.stack(taps, dim=3).reshape(n * ho * wo, -1), ho, wo


def _block_permuted_sum(grads: torch.Tensor, patches: torch.Tensor, generator: torch.Generator | None,
                        blocks: int = REDUCTION_BLOCKS) -> torch.Tensor:
    """``patches.T @ grads`` (J, O) summed over the rows in ``blocks`` partial sums (one batched
    matmul; at least ``MIN_BLOCK_ROWS`` rows each) that are added in a random order drawn
    independently for every output channel ``o``; float32 throughout. The channels are the
    products' columns, where the matmul treats them alike (see :func:`uniform_conv2d`), so
    the drawn order is the only channel asymmetry."""
    rows, out_channels = grads.shape
    blocks = max(1, min(blocks, rows // MIN_BLOCK_ROWS))
    pad = -rows % blocks
    if pad:  # zero rows add exact zeros
        patches, grads = F.pad(patches, (0, 0, 0, pad)), F.pad(grads, (0, 0, 0, pad))
    partial = torch.bmm(patches.reshape(blocks, -1, patches.shape[1]).transpose(1, 2),
                        grads.reshape(blocks, -1, out_channels))  # (blocks, J, O)
    order = torch.argsort(torch.rand(out_channels, blocks, generator=generator), dim=1).to(grads.device)
    # shuffled[o, k] = partial[order[o, k], :, o]: channel o's k-th addend
    shuffled = partial.permute(2, 0, 1).gather(1, order[:, :, None].expand(-1, -1, partial.shape[1]))
    return shuffled.sum(dim=1).T  # (J, O)


class _UniformConv2d(torch.autograd.Function):
    """conv2d (bias-free, ungrouped, undilated) as im2col + one GEMM each way, with the
    channels always the columns of the product (forward (NL, O), input gradient (NL, J),
    weight gradient (J, O)): every output channel, and every input channel, goes through the
    same arithmetic, so identical channels stay bitwise identical. (With the channels as the
    rows, e.g. ``grads.T @ patches`` for the stem's (16, 9) weight gradient, MKL's sgemm was
    seen to round rows differently: 4 distinct rows of 16.) With a ``generator``, the weight gradient is instead a
    per-output-channel randomly ordered float32 sum (the ``reduction_order`` breaker)."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, generator):
        out_channels, in_channels, kh, kw = weight.shape
        patches, ho, wo = uniform_im2col(x, (kh, kw), stride, padding)
        w2 = weight.permute(2, 3, 1, 0).reshape(kh * kw * in_channels, out_channels)  # (J, O), J = (i, j, c)
        out = (patches @ w2).view(x.shape[0], ho, wo, out_channels)
        ctx.save_for_backward(patches, weight)
        ctx.geometry = (x.shape, _pair(stride), _pair(padding), ho, wo)
        ctx.generator = generator
        return out.permute(0, 3, 1, 2)  # NCHW shape, channels-last memory

    @staticmethod
    def backward(ctx, grad_out):
        patches, weight = ctx.saved_tensors
        (n, c, h, w), (sh, sw), (ph, pw), ho, wo = ctx.geometry
        out_channels, _, kh, kw = weight.shape
        grads = grad_out.permute(0, 2, 3, 1).reshape(-1, out_channels)  # (N*Ho*Wo, O)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            w2 = weight.permute(2, 3, 1, 0).reshape(kh * kw * c, out_channels)
            dpatches = (grads @ w2.T).view(n, ho, wo, kh * kw, c)
            padded = grads.new_zeros(n, h + 2 * ph, w + 2 * pw, c)
            for t in range(kh * kw):  # fixed tap order: the same sums for every channel
                i, j = divmod(t, kw)
                padded[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] += dpatches[:, :, :, t]
            grad_x = padded[:, ph:ph + h, pw:pw + w].permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            flat = (patches.T @ grads if ctx.generator is None
                    else _block_permuted_sum(grads, patches, ctx.generator))  # (J, O)
            grad_w = flat.reshape(kh, kw, c, out_channels).permute(3, 2, 0, 1)
        return grad_x, grad_w, None, None, None


def uniform_conv2d(x: torch.Tensor, weight: torch.Tensor, stride=1, padding=0,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, stride=stride, padding=padding)`` on channel-uniform kernels: an
    NHWC im2col and one matrix product each way (forward, input and weight gradients), so
    that bitwise-identical channels stay identical on every CPU kernel path, at about the
    cost of oneDNN's convolution for ConstNet's small shapes (``benchmarks/
    channel_uniform_conv.py``). With ``generator``: the ``reduction_order`` weight gradient."""
    return _UniformConv2d.apply(x, weight, stride, padding, generator)


def permuted_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, weight_shape: torch.Size, stride, padding,
                         generator: torch.Generator | None = None, blocks: int = REDUCTION_BLOCKS) -> torch.Tensor:
    """The conv weight gradient ``sum_p grad_out[p, o] * patch[p, j]`` over the N*L rows ``p``,
    split into ``blocks`` partial sums that are added in a random order drawn independently
    for every output channel ``o`` (see :func:`_block_permuted_sum`); float32 throughout."""
    out_channels, in_channels, kh, kw = weight_shape
    patches, _, _ = uniform_im2col(x, (kh, kw), stride, padding)
    grads = grad_out.permute(0, 2, 3, 1).reshape(-1, out_channels)
    flat = _block_permuted_sum(grads, patches, generator, blocks)
    return flat.reshape(kh, kw, in_channels, out_channels).permute(3, 2, 0, 1).contiguous()


def uniform_convs_(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Every ``nn.Conv2d`` of ``model`` computes with :func:`uniform_conv2d` (in place; with
    ``generator``, the ``reduction_order`` weight gradient). Returns ``model``."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if m.bias is not None or m.groups != 1 or m.dilation != (1, 1) or m.padding_mode != "zeros":
                raise ValueError("uniform convs support bias-free, ungrouped, undilated, zero-padded convs only")
            # An instance attribute shadows Conv2d.forward: the same values, channel-uniform kernels.
            m.forward = _uniform_forward(m, generator)
            m.uniform_conv = True
    return model


def _uniform_forward(module: nn.Conv2d, generator: torch.Generator | None):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return uniform_conv2d(x, module.weight, module.stride, module.padding, generator)
    return forward


def _ulp_jitter_hook(generator: torch.Generator) -> Hook:
    def before_step(model: nn.Module, step: int) -> None:
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is None:
                    continue
                up = torch.rand(p.grad.shape, generator=generator).to(p.grad.device) < 0.5
                direction = torch.where(up, torch.inf, -torch.inf).to(p.grad.dtype)
                # Multiplicative noise: an exact zero stays zero.
                p.grad.copy_(torch.where(p.grad != 0, torch.nextafter(p.grad, direction), p.grad))
    return before_step


@contextmanager
def onednn(enabled: bool):
    """oneDNN (mkldnn) CPU kernels on or off inside the block, restored after it."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def channel_uniform_kernels(enabled: bool = True):
    """oneDNN (mkldnn) off inside the block while ``enabled`` (with ``enabled=False`` the kernels
    are left as they are). The convolutions themselves become channel-uniform through
    :func:`uniform_convs_`; this keeps every other op off oneDNN too."""
    return onednn(False) if enabled else nullcontext()


#: the CPU kernel sets a ConstNet can train with: ``uniform`` (:func:`uniform_conv2d`, what the
#: ConstNet arms use), ``onednn_off`` (PyTorch's im2col + BLAS ``slow_conv2d``, the earlier
#: channel-uniform path, ~2.5x a oneDNN step) and ``onednn`` (PyTorch's default)
KERNELS = ("uniform", "onednn_off", "onednn")


@contextmanager
def kernel_set(model: nn.Module, kernels: str):
    """Train ``model`` inside the block on the CPU kernel set ``kernels`` (one of :data:`KERNELS`)."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, got {kernels!r}")
    if kernels == "uniform" and not any(getattr(m, "uniform_conv", False) for m in model.modules()):
        uniform_convs_(model)
    with onednn(kernels == "onednn"):
        yield


def _set_cuda_determinism(deterministic: bool) -> None:
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic)


@dataclass(frozen=True)
class Breaker:
    """How a breaker enters a run: the model's dropout, a ``before_step`` hook factory, a
    change to the built model (``attach``), whether it needs CUDA, and, on CUDA, whether
    deterministic algorithms are on."""

    dropout: float = 0.0
    before_step: Callable[[torch.Generator], Hook] | None = None
    attach: Callable[[nn.Module, torch.Generator], None] | None = None
    needs_cuda: bool = False
    deterministic: bool = True


def _attach_reduction_order(model: nn.Module, generator: torch.Generator) -> None:
    uniform_convs_(model, generator)


BREAKERS: dict[str, Breaker] = {
    "none": Breaker(),
    "cuda": Breaker(needs_cuda=True, deterministic=False),
    "reduction_order": Breaker(attach=_attach_reduction_order),
    "ulp_jitter": Breaker(before_step=_ulp_jitter_hook),
    "dropout": Breaker(dropout=0.01),
}


def breaker_spec(breaker: str) -> Breaker:
    if breaker not in BREAKERS:
        raise ValueError(f"breaker must be one of {sorted(BREAKERS)}, got {breaker!r}")
    return BREAKERS[breaker]


def skip_reason(breaker: str, device: str | torch.device = "cpu") -> str | None:
    """Why an arm cannot run here (None: it can)."""
    if breaker_spec(breaker).needs_cuda and torch.device(device).type != "cuda":
        return "the cuda breaker needs a CUDA device (cuDNN's non-deterministic kernels); this run has none"
    return None


@dataclass
class ArmResult:
    breaker: str
    init: str
    seed: int
    history: History | None = None
    tracker: SymmetryTracker = field(default_factory=SymmetryTracker)
    train_seconds: float = float("nan")  # wall time of training, evaluation and tracking included
    skipped: str | None = None
    kernels: str | None = None  # the CPU kernel set it trained with (see KERNELS), or the device

    @property
    def final_test_acc(self) -> float:
        return float("nan") if self.history is None else self.history.final_test_acc

    def test_acc_at(self, epoch: int) -> float:
        """Test accuracy after ``epoch`` epochs (0 if the run diverged before; NaN if skipped)."""
        if self.history is None:
            return float("nan")
        if epoch < 1 or epoch > len(self.history.test_acc) and not self.history.diverged:
            raise ValueError(f"epoch must be in [1, {len(self.history.test_acc)}], got {epoch}")
        return 0.0 if epoch > len(self.history.test_acc) else self.history.test_acc[epoch - 1]


def build_arm(breaker: str, init: str, *, depth: int, widen_factor: int, num_classes: int, in_channels: int,
              seed: int = 0, device: str | torch.device = "cpu") -> tuple[nn.Module, Hook | None]:
    """A WRN with ``init``, set up for ``breaker``; returns the model and its ``before_step`` hook."""
    spec = breaker_spec(breaker)
    init_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(seed + 1)
    torch.manual_seed(seed)  # dropout draws from the global generator
    if torch.device(device).type == "cuda":
        _set_cuda_determinism(spec.deterministic)
    model = wrn(depth, widen_factor, num_classes, in_channels, init=init, dropout=spec.dropout,
                generator=init_gen).to(device)
    if spec.attach:
        spec.attach(model, noise_gen)
    return model, spec.before_step(noise_gen) if spec.before_step else None


def train_arm(breaker: str, init: str, train_set: TensorData, test_set: TensorData, cfg: TrainConfig, *,
              depth: int, widen_factor: int, track_every: int | None = 10, device: str | torch.device = "cpu",
              progress: bool = True, channel_uniform: bool | None = None) -> ArmResult:
    """Train one arm (a breaker and an init), tracking its symmetry every ``track_every`` steps
    (None: only at init); skipped if it cannot run here. ``channel_uniform`` (default: for
    ConstNet) trains a CPU run on channel-uniform kernels (:func:`uniform_convs_`, oneDNN
    off), so that the breaker is the only source of channel asymmetry; other runs keep
    PyTorch's kernels. ``device`` (``cfg.device`` is set to it) moves model and batches."""
    reason = skip_reason(breaker, device)
    result = ArmResult(breaker, init, cfg.seed, skipped=reason,
                       tracker=SymmetryTracker(every=track_every or 1))
    if reason:
        return result
    model, before_step = build_arm(breaker, init, depth=depth, widen_factor=widen_factor,
                                   num_classes=train_set.num_classes, in_channels=train_set.input_shape[0],
                                   seed=cfg.seed, device=device)
    if torch.device(device).type != "cpu":
        train_set = TensorData(train_set.x.to(device), train_set.y.to(device), train_set.num_classes, train_set.name)
        test_set = TensorData(test_set.x.to(device), test_set.y.to(device), test_set.num_classes, test_set.name)
    result.tracker.record(model, 0)
    uniform = init == "constnet" if channel_uniform is None else channel_uniform
    cpu = torch.device(device).type == "cpu"
    kernels = "uniform" if uniform and cpu else ("onednn" if torch.backends.mkldnn.enabled else "onednn_off")
    cfg = replace(cfg, device=str(device))
    start = time.perf_counter()
    with kernel_set(model, kernels) if cpu else nullcontext():
        result.history = train(model, train_set, test_set, cfg, before_step=before_step,
                               after_step=result.tracker if track_every else None,
                               progress=progress, desc=f"{init}/{breaker}/seed{cfg.seed}")
    result.kernels = kernels if cpu else str(device)
    if track_every and result.history.step and result.tracker.step[-1] != result.history.step[-1]:
        result.tracker.record(model, result.history.step[-1])  # the final state is always recorded
    result.train_seconds = time.perf_counter() - start
    return result


def seconds_per_step(breaker: str, x: torch.Tensor, y: torch.Tensor, *, depth: int, widen_factor: int,
                     num_classes: int, steps: int = 10, seed: int = 0, kernels: str = "uniform") -> float:
    """Least wall time over ``steps`` SGD steps (forward, backward, breaker, update) of a
    ConstNet with ``breaker`` on the batch ``(x, y)`` on the CPU kernel set ``kernels``: on a
    shared CPU the least time is the best estimate of the uncontended cost; compare arms
    only by ratios of times from one run."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    model, before_step = build_arm(breaker, "constnet", depth=depth, widen_factor=widen_factor,
                                   num_classes=num_classes, in_channels=x.shape[1], seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    with kernel_set(model, kernels):
        for step in range(steps + 2):  # two warm-up steps
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            if before_step:
                before_step(model, step)
            optimizer.step()
            times.append(time.perf_counter() - start)
    return min(times[2:])


def _train_arm_job(job: dict) -> ArmResult:
    torch.set_num_threads(1)
    return train_arm(**job, progress=False)


def train_arms(jobs: list[dict], workers: int = 1) -> list[ArmResult]:
    """``train_arm(**job)`` for every job, in ``workers`` processes of one thread each
    (``workers=1``: in this process, on one thread). Runs are independent and seeded, so the
    results do not depend on ``workers``."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as in the workers: results depend on the thread count
        try:
            return [train_arm(**job) for job in jobs]
        finally:
            torch.set_num_threads(threads)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(tqdm(pool.map(_train_arm_job, jobs), total=len(jobs), desc="arms"))


def first_asymmetric_step(train_set: TensorData, test_set: TensorData, cfg: TrainConfig, *, depth: int,
                          widen_factor: int, kernels: str) -> int | None:
    """First SGD step after which a ConstNet without a breaker has two bitwise-distinct output
    filters or input channels in some conv (None: symmetric for all ``cfg.max_steps`` steps),
    on the CPU kernel set ``kernels`` (one of :data:`KERNELS`)."""
    model, _ = build_arm("none", "constnet", depth=depth, widen_factor=widen_factor,
                         num_classes=train_set.num_classes, in_channels=train_set.input_shape[0], seed=cfg.seed)
    first: list[int] = []

    def after_step(m: nn.Module, step: int) -> None:
        if not first and any(distinct_rows(w) > 1 or distinct_rows(w, dim=1) > 1 for w in conv_layers(m).values()):
            first.append(step)

    with kernel_set(model, kernels):
        train(model, train_set, test_set, cfg, after_step=after_step, progress=False)
    return first[0] if first else None


def _kernel_probe_main(args: dict) -> dict:
    """One probe, run in a fresh interpreter by :func:`probe_kernels`."""
    torch.set_num_threads(1)
    train_set, test_set = load_dataset(args["dataset"], seed=args["seed"])
    cfg = TrainConfig(epochs=10 ** 6, max_steps=args["steps"], batch_size=args["batch_size"], lr=args["lr"],
                      momentum=0.9, weight_decay=5e-4, seed=args["seed"])
    first = {kernels: first_asymmetric_step(train_set, test_set, cfg, depth=args["depth"],
                                            widen_factor=args["widen_factor"], kernels=kernels)
             for kernels in args["kernels"]}
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            **{k: os.environ.get(k) for k in KERNEL_ENV}, **first}


#: environment variables that choose a CPU kernel path (read once per process)
KERNEL_ENV = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def probe_kernels(envs: dict[str, dict[str, str]], *, dataset: str, seed: int, steps: int, depth: int,
                  widen_factor: int, batch_size: int, lr: float, kernels=KERNELS) -> dict[str, dict]:
    """The CPU-kernel effect on ConstNet's symmetry: for each named environment (e.g.
    ``{"AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}``; ``{}`` is this
    process's kernel path) a fresh interpreter trains a ConstNet without breaker for ``steps``
    steps on each kernel set of ``kernels`` and reports the first step with distinct filters
    (None: none). Two environments run at a time, one thread each."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    args = json.dumps(dict(dataset=dataset, seed=seed, steps=steps, depth=depth, widen_factor=widen_factor,
                           batch_size=batch_size, lr=lr, kernels=list(kernels)))
    code = "import json, sys; from initrepro.studies.constnet import _kernel_probe_main as m; " \
           "print(json.dumps(m(json.loads(sys.argv[1]))))"
    results, names = {}, list(envs)
    for start in range(0, len(names), 2):
        procs = {name: subprocess.Popen([sys.executable, "-c", code, args], stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "OMP_NUM_THREADS": "1", **envs[name]})
                 for name in names[start:start + 2]}
        for name, proc in procs.items():
            out, _ = proc.communicate()
            if proc.returncode:
                raise RuntimeError(f"kernel probe {name!r} failed with exit code {proc.returncode}")
            results[name] = {"env": envs[name], **json.loads(out.strip().splitlines()[-1])}
    return results
