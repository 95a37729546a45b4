"""What training does to weights that start at (padded) identities and zeros (Pan et al. 2025).

- :func:`unchanged_fraction`: the fraction of parameter entries that training left bitwise
  unchanged, per ensemble member (IDInit's "dead neurons", Sec. 3.2 and Fig. 5).
- :func:`update_rank`: the numerical rank of a weight's change ``W - W_init`` (Thm 3.1 and
  Fig. 4b bound ``rank(theta_k - I)`` for zero-padded identities).
- :func:`deep_linear_descent`: (stochastic) gradient descent, with or without momentum, of a
  deep linear network from the identity on ``y = A x`` (Sec. 3.1, Table 1), vectorized over
  independent data sets.
- :func:`live_coordinates`, :func:`standardize_live`: the structural bound of an update's rank
  (the live coordinates of a layer's input) and inputs in which every coordinate is live.
- :func:`train_members`: many nets of one architecture trained side by side in one vmapped
  pass, each with its own learning rate and data order (lr searches and seeds vectorized).

    >>> losses = deep_linear_descent(x, -x, steps=3000, lr=0.01, momentum=0.9)
    >>> losses[:, -1]  # final full-data loss per data set
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch


@torch.no_grad()
def unchanged_fraction(before: Iterable[torch.Tensor], after: Iterable[torch.Tensor]) -> torch.Tensor:
    """Per member, the fraction of entries equal in ``before`` and ``after`` (bitwise).

    Both are sequences of stacked tensors ``(members, ...)`` (e.g. ``Ensemble.stacked`` before
    and after training), paired in order.
    """
    same = total = 0
    for b, a in zip(before, after, strict=True):
        if b.shape != a.shape or b.dim() < 1:
            raise ValueError(f"before and after must pair stacked tensors of equal shape, got {tuple(b.shape)} "
                             f"and {tuple(a.shape)}")
        same = same + (b == a).flatten(1).sum(1)
        total += b[0].numel()
    if not total:
        raise ValueError("before must hold at least one tensor")
    return same / total


@torch.no_grad()
def update_rank(weight: torch.Tensor, initial: torch.Tensor, rtol: float) -> int:
    """Numerical rank of ``weight - initial``: singular values above ``rtol * s_max``."""
    if weight.shape != initial.shape or weight.dim() != 2:
        raise ValueError(f"weight and initial must be matrices of one shape, got {tuple(weight.shape)} "
                         f"and {tuple(initial.shape)}")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol}")
    return int(torch.linalg.matrix_rank(weight - initial, rtol=rtol))


def deep_linear_descent(x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, momentum: float = 0.0,
                        depth: int = 3, batch_size: int | None = None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Train ``W_depth ... W_1`` from ``W_l = I`` on ``(x, y)`` and return the full-data losses.

    ``x`` and ``y`` are ``(sets, n, d)``: independent data sets trained side by side (one net
    each). Loss ``0.5 mean_i ||W x_i - y_i||^2`` (0.5 d at the zero product for ``y = -x``).
    ``batch_size=None`` is full-batch gradient descent; otherwise each step uses ``batch_size``
    samples drawn without replacement (per set, with ``generator``). SGD with heavy-ball
    ``momentum`` as in ``torch.optim.SGD``. Returns ``(sets, steps + 1)`` losses (the first at init).
    """
    if x.dim() != 3 or x.shape != y.shape:
        raise ValueError(f"x and y must be (sets, n, d) of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if steps < 1 or depth < 1:
        raise ValueError(f"steps and depth must be >= 1, got {steps} and {depth}")
    sets, n, d = x.shape
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] or None, got {batch_size}")
    weights = torch.eye(d, dtype=x.dtype).expand(sets, depth, d, d).clone().requires_grad_(True)
    optimizer = torch.optim.SGD([weights], lr=lr, momentum=momentum)

    def moments(xb, yb):  # the loss is quadratic: second moments (sets, d, d) decide it
        m = len(xb[0])
        return xb.transpose(1, 2) @ xb / m, xb.transpose(1, 2) @ yb / m, (yb ** 2).sum((1, 2)) / m

    def loss(sxx, sxy, syy):  # 0.5 E||W x - y||^2, per set
        w = weights[:, 0]
        for layer in range(1, depth):
            w = weights[:, layer] @ w
        return 0.5 * ((w @ sxx * w).sum((1, 2)) - 2 * (w * sxy.transpose(1, 2)).sum((1, 2)) + syy)

    full_moments = moments(x, y)
    losses = torch.empty(sets, steps + 1, dtype=x.dtype)
    for step in range(steps + 1):
        full = loss(*full_moments)
        losses[:, step] = full.detach()
        if step == steps:
            break
        if batch_size is None:
            objective = full.sum()
        else:
            idx = torch.rand(sets, n, generator=generator).argsort(1)[:, :batch_size, None].expand(-1, -1, d)
            objective = loss(*moments(x.gather(1, idx), y.gather(1, idx))).sum()
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
    return losses


@torch.no_grad()
def live_coordinates(x: torch.Tensor) -> int:
    """Coordinates (columns of ``x``, samples in rows) that are non-zero for some sample: the
    dimension available to a weight change behind them. For a layer fed ``x``, every update is
    a sum of outer products ``delta x^T``, so ``rank(W - W_init) <= live_coordinates(x)``
    (and ``<= rank(x)``); a zero-filled (dead) coordinate adds nothing."""
    if x.dim() != 2:
        raise ValueError(f"x must be (samples, coordinates), got shape {tuple(x.shape)}")
    return int((x != 0).any(0).sum())


def live_pixels(x: torch.Tensor) -> torch.Tensor:
    """Boolean mask of the flattened input coordinates that vary over the samples ``x``
    (N, ...): constant pixels carry no information and bound every rank by their absence."""
    flat = x.flatten(1)
    return flat.std(0) > 0


def standardize_live(train_x: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Flatten, drop the pixels that are constant on the training split, and standardize every
    remaining pixel with its training mean and sd, so that every coordinate is live (takes both
    signs over the data, hence passes a ReLU behind an identity for some sample)."""
    keep = live_pixels(train_x)
    flat = train_x.flatten(1)[:, keep]
    mean, sd = flat.mean(0), flat.std(0)
    return tuple(((t.flatten(1)[:, keep] - mean) / sd).to(t.dtype) for t in (train_x, *others))


class _Members:
    """Stacked parameters and buffers of ``models`` (one architecture) for :func:`train_members`."""

    def __init__(self, models):
        from torch.func import stack_module_state
        import copy

        params, buffers = stack_module_state(list(models))
        self.names = list(params)
        self.params = [params[n].detach().clone().requires_grad_(True) for n in self.names]
        self.buffer_names = list(buffers)
        self.buffers = [buffers[n].detach().clone() for n in self.buffer_names]
        self.skeleton = copy.deepcopy(models[0]).to("meta")

    def __call__(self, x: torch.Tensor, per_member: bool) -> torch.Tensor:
        from torch.func import functional_call

        def one(p, b, inputs):
            return functional_call(self.skeleton, {**p, **b}, (inputs,))

        return torch.vmap(one, in_dims=(0, 0, 0 if per_member else None))(
            dict(zip(self.names, self.params)), dict(zip(self.buffer_names, self.buffers)), x)


def train_members(models, train_x: torch.Tensor, train_y: torch.Tensor, evals: dict, *, lrs, seeds,
                  epochs: int, batch_size: int, momentum: float = 0.9, weight_decay: float = 0.0,
                  frozen: Callable[[int, str], bool] | None = None, max_steps: int | None = None,
                  eval_every_epoch: bool = False) -> dict:
    """Train ``models`` (one architecture; any init) side by side, each with its OWN learning
    rate ``lrs[i]`` and its own data order (``seeds[i]``), in one vmapped pass per step.

    SGD with heavy-ball momentum and weight decay as ``torch.optim.SGD`` (``buf = m buf + g + wd p;
    p -= lr buf``), per member. ``frozen(i, name)`` True keeps that parameter of member ``i`` at
    its init (e.g. Fixup's scalars in a scheme that has none). A member whose loss turns
    non-finite stops updating and is marked diverged; the others go on. Batch norm (if any)
    trains with batch statistics and updates each member's running statistics.

    ``evals``: name -> (x, y). Returns ``{"acc": {name: (members,) final accuracy (NaN if
    diverged)}, "curves": {name: (epochs, members)} if eval_every_epoch, "diverged": (members,),
    "steps": int, "init": [tensors], "final": [tensors], "names": [...]}``; ``init``/``final`` are
    the stacked parameters before and after training.
    """
    members = len(models)
    if len(lrs) != members or len(seeds) != members:
        raise ValueError(f"lrs and seeds must hold one entry per model ({members}), got {len(lrs)} and {len(seeds)}")
    net = _Members(models)
    init = [p.detach().clone() for p in net.params]
    lr = torch.as_tensor(list(lrs), dtype=net.params[0].dtype)
    masks = []
    for name, p in zip(net.names, net.params):
        keep = torch.tensor([not (frozen and frozen(i, name)) for i in range(members)], dtype=p.dtype)
        masks.append((lr * keep).view(-1, *[1] * (p.dim() - 1)))
    bufs = [torch.zeros_like(p) for p in net.params]
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    n = len(train_y)
    diverged = torch.zeros(members, dtype=torch.bool)
    step, curves = 0, {k: [] for k in evals}

    def evaluate():
        out = {}
        for key, (x, y) in evals.items():
            with torch.no_grad():
                net.skeleton.eval()
                correct = sum((net(x[i:i + 1000], False).argmax(-1) == y[i:i + 1000]).sum(1)
                              for i in range(0, len(y), 1000))
                net.skeleton.train()
            acc = (correct / len(y)).to(torch.float64)
            out[key] = torch.where(diverged, float("nan"), acc).numpy()
        return out

    for epoch in range(epochs):
        order = torch.stack([torch.randperm(n, generator=g) for g in gens])
        for start in range(0, n, batch_size):
            idx = order[:, start:start + batch_size]
            logits = net(train_x[idx], True)
            y = train_y[idx]
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
            loss = loss.view(members, -1).mean(1)
            with torch.no_grad():
                diverged |= ~torch.isfinite(loss)
            total = torch.where(diverged, torch.zeros((), dtype=loss.dtype), loss).sum()
            grads = torch.autograd.grad(total, net.params)
            with torch.no_grad():
                live = (~diverged).to(net.params[0].dtype)
                for p, g, buf, m in zip(net.params, grads, bufs, masks):
                    g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
                    if weight_decay:
                        g = g + weight_decay * p
                    buf.mul_(momentum).add_(g)
                    p.sub_(m * live.view(-1, *[1] * (p.dim() - 1)) * buf)
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        if eval_every_epoch:
            for key, acc in evaluate().items():
                curves[key].append(acc)
        if max_steps is not None and step >= max_steps:
            break
    result = {"acc": evaluate(), "diverged": diverged.numpy(), "steps": step, "names": net.names,
              "init": init, "final": [p.detach() for p in net.params]}
    if eval_every_epoch:
        result["curves"] = {k: np.stack(v) for k, v in curves.items()}
    return result
