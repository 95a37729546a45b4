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

    >>> result = train_arm("ulp_jitter", "constnet", train_set, test_set, cfg, depth=10, widen_factor=2)
    >>> result.tracker.min_distinct[-1]
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from initrepro.data import TensorData
from initrepro.models.wrn import wrn
from initrepro.symmetry import SymmetryTracker
from initrepro.training import History, Hook, TrainConfig, train

REDUCTION_BLOCKS = 32  # partial sums per weight-gradient reduction in the reduction_order emulation
MIN_BLOCK_ROWS = 16  # fewer, larger blocks for small reductions: the partial sums stay cheap


class _ReductionOrderConv2d(torch.autograd.Function):
    """conv2d whose weight gradient is a per-output-channel randomly ordered float32 sum."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, generator):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.generator = stride, padding, generator
        return F.conv2d(x, weight, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        grad_x = (torch.nn.grad.conv2d_input(x.shape, weight, grad_out, stride=ctx.stride, padding=ctx.padding)
                  if ctx.needs_input_grad[0] else None)
        grad_w = permuted_weight_grad(x, grad_out, weight.shape, ctx.stride, ctx.padding, ctx.generator)
        return grad_x, grad_w, None, None, None


def permuted_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, weight_shape: torch.Size, stride, padding,
                         generator: torch.Generator | None = None, blocks: int = REDUCTION_BLOCKS) -> torch.Tensor:
    """The conv weight gradient ``sum_p grad_out[p, o] * patch[p, j]`` over the N*L rows ``p``,
    split into ``blocks`` partial sums (one batched matmul; at least ``MIN_BLOCK_ROWS`` rows
    each) that are added in a random order drawn independently for every output channel ``o``;
    float32 throughout."""
    out_channels = weight_shape[0]
    patches = F.unfold(x, weight_shape[2:], padding=padding, stride=stride)  # (N, J, L)
    patches = patches.transpose(1, 2).reshape(-1, patches.shape[1])  # (N*L, J)
    grads = grad_out.flatten(2).transpose(1, 2).reshape(-1, out_channels)  # (N*L, O)
    rows = patches.shape[0]
    blocks = max(1, min(blocks, rows // MIN_BLOCK_ROWS))
    pad = -rows % blocks
    if pad:  # zero rows add exact zeros
        patches, grads = F.pad(patches, (0, 0, 0, pad)), F.pad(grads, (0, 0, 0, pad))
    partial = torch.bmm(grads.view(blocks, -1, out_channels).transpose(1, 2),
                        patches.view(blocks, -1, patches.shape[1]))  # (blocks, O, J)
    order = torch.argsort(torch.rand(out_channels, blocks, generator=generator), dim=1).to(x.device)
    # Row (order[o, k], o) of partial, i.e. flat row order[o, k] * O + o, is channel o's k-th addend.
    rows_of = order * out_channels + torch.arange(out_channels, device=x.device)[:, None]
    shuffled = partial.view(-1, partial.shape[2]).index_select(0, rows_of.flatten())
    return shuffled.view(out_channels, blocks, -1).sum(dim=1).view(weight_shape)


def _reduction_order_forward(module: nn.Conv2d, generator: torch.Generator):
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _ReductionOrderConv2d.apply(x, module.weight, module.stride, module.padding, generator)
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
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if m.bias is not None or m.groups != 1 or m.dilation != (1, 1):
                raise ValueError("reduction_order supports bias-free, ungrouped, undilated convs only")
            # An instance attribute shadows Conv2d.forward: same values, permuted weight-gradient sum.
            m.forward = _reduction_order_forward(m, generator)


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

    @property
    def final_test_acc(self) -> float:
        return float("nan") if self.history is None else self.history.final_test_acc


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
              progress: bool = True) -> ArmResult:
    """Train one arm (a breaker and an init), tracking its symmetry every ``track_every`` steps
    (None: only at init); skipped if it cannot run here."""
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
    start = time.perf_counter()
    result.history = train(model, train_set, test_set, cfg, before_step=before_step,
                           after_step=result.tracker if track_every else None,
                           progress=progress, desc=f"{init}/{breaker}/seed{cfg.seed}")
    result.train_seconds = time.perf_counter() - start
    return result


def seconds_per_step(breaker: str, x: torch.Tensor, y: torch.Tensor, *, depth: int, widen_factor: int,
                     num_classes: int, steps: int = 10, seed: int = 0) -> float:
    """Least wall time over ``steps`` SGD steps (forward, backward, breaker, update) of a
    ConstNet with ``breaker`` on the batch ``(x, y)``: on a shared CPU the least time is the
    best estimate of the uncontended cost."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    model, before_step = build_arm(breaker, "constnet", depth=depth, widen_factor=widen_factor,
                                   num_classes=num_classes, in_channels=x.shape[1], seed=seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for step in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        if before_step:
            before_step(model, step)
        optimizer.step()
        times.append(time.perf_counter() - start)
    return min(times[2:])
