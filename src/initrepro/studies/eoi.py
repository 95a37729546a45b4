"""Static sparse training: masks fixed at initialization for the whole run.

SGD's momentum and weight decay would revive pruned weights (their gradients are not zero),
so the masks are re-applied after every optimizer step (Nowak et al. 2024, Sec. 4; as in the
authors' code). Pruned weights therefore stay exactly zero.

Networks are built and drawn on the CPU (the same draws on any machine), then moved to
``device``; a mask follows its weight to whatever device training moved it to.

    >>> masks = StaticMasks(layers, sparse_init_(layers, "eoi", 0.125))
    >>> train(model, train_set, test_set, cfg, after_step=masks)
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from initrepro.init.sparse import sparse_init_


def _on_device_of(mask: Tensor, weight: Tensor) -> Tensor:
    """``mask`` on ``weight``'s device (itself when it is there already)."""
    return mask if mask.device == weight.device else mask.to(weight.device)


class StaticMasks:
    """Fixed boolean masks for the weights of ``layers``; calling it (the ``after_step`` hook of
    :func:`initrepro.training.train`) zeroes every pruned weight in place."""

    def __init__(self, layers: Sequence[nn.Module], masks: Sequence[Tensor]):
        if len(layers) != len(masks):
            raise ValueError(f"masks must have one entry per layer ({len(layers)}), got {len(masks)}")
        for index, (layer, mask) in enumerate(zip(layers, masks)):
            if mask.shape != layer.weight.shape:
                raise ValueError(f"masks[{index}] has shape {tuple(mask.shape)}, "
                                 f"but layer {index}'s weight is {tuple(layer.weight.shape)}")
        self.layers = list(layers)
        self.masks = [mask.to(torch.bool) for mask in masks]  # bool: an eighth of a float mask's memory
        self._pruned = [~mask for mask in self.masks]
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every pruned weight (a mask first moves to its weight's device, once)."""
        for index, (layer, pruned) in enumerate(zip(self.layers, self._pruned)):
            self._pruned[index] = pruned = _on_device_of(pruned, layer.weight)
            layer.weight.masked_fill_(pruned, 0.0)

    def __call__(self, model: nn.Module, step: int) -> None:
        self.apply()

    @property
    def weights(self) -> list[Tensor]:
        """The masked weights, read from their layers (so they are the moved ones after ``.to``)."""
        return [layer.weight for layer in self.layers]

    @property
    def density(self) -> float:
        """Fraction of unmasked weights over all masked layers."""
        kept = sum(int(m.sum()) for m in self.masks)
        return kept / sum(m.numel() for m in self.masks)


def init_static_sparse(layers: Sequence[nn.Module], scheme: str, density: float, *, gain: float = 1.0,
                       bias_std: float = 0.0, generator: torch.Generator | None = None,
                       **builder_kwargs) -> StaticMasks:
    """Initialize ``layers`` with ``scheme`` (see :data:`initrepro.init.sparse.SCHEMES`) and
    return their fixed masks, ready as the ``after_step`` hook of training."""
    masks = sparse_init_(layers, scheme, density, gain=gain, bias_std=bias_std, generator=generator,
                         **builder_kwargs)
    return StaticMasks(layers, masks)


def sparse_net(build: Callable[[], nn.Module], scheme: str, density: float, seed: int, *, gain: float = 1.0,
               bias_std: float = 0.0, device: str | torch.device = "cpu",
               **builder_kwargs) -> tuple[nn.Module, StaticMasks]:
    """A fresh ``build()`` network (with ``weight_layers()``) initialized with ``scheme`` from
    ``seed`` alone, and its fixed masks: one (scheme, seed) cell of a static sparse comparison.
    Built and drawn on the CPU, then moved (with its masks) to ``device``.

        >>> net, masks = sparse_net(lambda: DeepTanhMLP(64, 10, 1000), "eoi", 0.125, seed=0)
    """
    torch.manual_seed(seed)  # the default init is overwritten; seeded anyway
    net = build()
    masks = init_static_sparse(net.weight_layers(), scheme, density, gain=gain, bias_std=bias_std,
                               generator=torch.Generator().manual_seed(seed), **builder_kwargs)
    net.to(device)
    masks.apply()  # the masks follow the moved weights
    return net, masks


class EnsembleMasks:
    """Fixed masks of every member of an :class:`~initrepro.models.ensemble.Ensemble` of static
    sparse networks: called after each optimizer step (the ``after_step`` hook), it zeroes every
    pruned weight of every member, as :class:`StaticMasks` does for one network. Members whose
    layer is dense (all True) cost one multiply like the others."""

    def __init__(self, ensemble: nn.Module, member_masks: Sequence[dict[str, Tensor]]):
        if len(member_masks) != len(ensemble):
            raise ValueError(f"member_masks must have one entry per member ({len(ensemble)}), got {len(member_masks)}")
        names = list(member_masks[0])
        if any(list(m) != names for m in member_masks):
            raise ValueError("every member must mask the same parameters")
        params = dict(zip(ensemble.names, ensemble.stacked))
        missing = [n for n in names if n not in params]
        if missing:
            raise ValueError(f"masked parameters {missing} are not in the ensemble")
        self.pairs = []
        for name in names:
            mask = torch.stack([m[name] for m in member_masks]).to(torch.bool)
            if mask.shape != params[name].shape:
                raise ValueError(f"mask of {name} has shape {tuple(mask.shape)}, the stacked parameter "
                                 f"{tuple(params[name].shape)}")
            if not bool(mask.all()):  # dense everywhere: nothing to re-zero
                self.pairs.append((params[name], ~mask))
        self.members = len(member_masks)
        self.kept = [sum(float(m[n].sum()) for n in names) for m in member_masks]
        self.total = sum(member_masks[0][n].numel() for n in names)
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        """Zero every pruned weight (a mask first moves to its parameter's device, once)."""
        for index, (param, pruned) in enumerate(self.pairs):
            pruned = _on_device_of(pruned, param)
            self.pairs[index] = (param, pruned)
            param.masked_fill_(pruned, 0.0)

    def __call__(self, model: nn.Module, step: int) -> None:
        self.apply()

    @property
    def density(self) -> list[float]:
        """Per member: fraction of unmasked weights over all masked layers."""
        return [k / self.total for k in self.kept]


def stack_sparse(nets: Sequence[nn.Module], masks: Sequence[StaticMasks], device: str | torch.device = "cpu"):
    """Stack static sparse networks of one architecture (each with its :class:`StaticMasks`)
    into one :class:`~initrepro.models.ensemble.Ensemble` on ``device`` and its
    :class:`EnsembleMasks`, so that they train in one vectorized pass, each exactly as alone."""
    from initrepro.models.ensemble import Ensemble

    if len(nets) != len(masks) or not nets:
        raise ValueError(f"nets and masks must be non-empty and of equal length, got {len(nets)} and {len(masks)}")
    member_masks = []
    for net, static in zip(nets, masks):
        names = [f"{n}.weight" for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
        if len(names) != len(static.masks):
            raise ValueError(f"a net has {len(names)} weight layers but {len(static.masks)} masks")
        member_masks.append(dict(zip(names, static.masks)))
    ensemble = Ensemble(list(nets)).to(device)
    return ensemble, EnsembleMasks(ensemble, member_masks)


def sparse_ensemble(build: Callable[[], nn.Module], cells: Sequence[tuple[str, int]], density: float, *,
                    gain: float = 1.0, bias_std: float = 0.0, device: str | torch.device = "cpu", **builder_kwargs):
    """One :class:`~initrepro.models.ensemble.Ensemble` on ``device`` holding a static sparse
    network per ``(scheme, seed)`` cell, each initialized exactly as :func:`sparse_net` does alone
    (on the CPU), and its :class:`EnsembleMasks`: every cell of a comparison trained in one
    vectorized pass.

        >>> ens, masks = sparse_ensemble(lambda: DeepTanhMLP(64, 10, 100), [("eoi", 0), ("eoi", 1)], 0.125)
        >>> train(ens, train_set, test_set, cfg, after_step=masks)  # accuracies per cell
    """
    built = [sparse_net(build, scheme, density, seed, gain=gain, bias_std=bias_std, **builder_kwargs)
             for scheme, seed in cells]
    return stack_sparse([net for net, _ in built], [masks for _, masks in built], device)


class AccuracyTrace:
    """An ``after_step`` hook for :func:`initrepro.training.train` that first runs ``then`` (the
    static masks) and then, every ``every`` optimizer steps before step ``last``, records the
    accuracy on ``data`` (a list per member of an ensemble): test-accuracy curves for runs that
    are shorter than an epoch, where ``train`` evaluates only once. Evaluating draws no random
    number and changes no weight, so the run trains exactly as without it; ``every=0`` records
    nothing. :func:`merge_curve` joins it with the per-epoch evaluations.

        >>> trace = AccuracyTrace(masks, test_set, every=10, last=cfg.max_steps)
        >>> hist = train(ens, train_set, test_set, cfg, after_step=trace)
        >>> steps, accs = merge_curve(trace, hist)
    """

    def __init__(self, then: Callable[[nn.Module, int], None] | None, data, every: int, last: int,
                 device: str | torch.device = "cpu"):
        if every < 0:
            raise ValueError(f"every must be >= 0, got {every}")
        self.then, self.data, self.every, self.last, self.device = then, data, every, last, device
        self.step: list[int] = []
        self.acc: list = []
        self.seconds = 0.0  # spent evaluating (to take out of a run's time per step)

    def record(self, model: nn.Module, step: int) -> None:
        import time

        from initrepro.training import accuracy

        start = time.perf_counter()
        self.step.append(step)
        self.acc.append(accuracy(model, self.data, device=self.device))
        self.seconds += time.perf_counter() - start

    def __call__(self, model: nn.Module, step: int) -> None:
        if self.then is not None:
            self.then(model, step)
        if self.every and step % self.every == 0 and step < self.last:
            self.record(model, step)


def merge_curve(trace: AccuracyTrace, history) -> tuple[list[int], list]:
    """The steps and accuracies of ``trace`` and of ``history`` (a :class:`~initrepro.training.History`)
    in step order; at a step both evaluated, the history's entry.

        >>> merge_curve(trace, hist)  # ([0, 10, 20, 30, 40], [acc at 0, ..., acc at 40])
    """
    points = dict(zip(trace.step, trace.acc))
    points.update(zip(history.step, history.test_acc))
    steps = sorted(points)
    return steps, [points[s] for s in steps]
