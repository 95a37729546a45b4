"""Static sparse training: masks fixed at initialization for the whole run.

SGD's momentum and weight decay would revive pruned weights (their gradients are not zero),
so the masks are re-applied after every optimizer step (Nowak et al. 2024, Sec. 4; as in the
authors' code). Pruned weights therefore stay exactly zero.

    >>> masks = StaticMasks(layers, sparse_init_(layers, "eoi", 0.125))
    >>> train(model, train_set, test_set, cfg, after_step=masks)
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from initrepro.init.sparse import sparse_init_


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
        self.weights = [layer.weight for layer in layers]
        self.masks = [mask.to(dtype=layer.weight.dtype) for layer, mask in zip(layers, masks)]
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for weight, mask in zip(self.weights, self.masks):
            weight.mul_(mask)

    def __call__(self, model: nn.Module, step: int) -> None:
        self.apply()

    @property
    def density(self) -> float:
        """Fraction of unmasked weights over all masked layers."""
        kept = sum(float(m.sum()) for m in self.masks)
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
               bias_std: float = 0.0, **builder_kwargs) -> tuple[nn.Module, StaticMasks]:
    """A fresh ``build()`` network (with ``weight_layers()``) initialized with ``scheme`` from
    ``seed`` alone, and its fixed masks: one (scheme, seed) cell of a static sparse comparison.

        >>> net, masks = sparse_net(lambda: DeepTanhMLP(64, 10, 1000), "eoi", 0.125, seed=0)
    """
    torch.manual_seed(seed)  # the default init is overwritten; seeded anyway
    net = build()
    masks = init_static_sparse(net.weight_layers(), scheme, density, gain=gain, bias_std=bias_std,
                               generator=torch.Generator().manual_seed(seed), **builder_kwargs)
    return net, masks
