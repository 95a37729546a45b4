"""A deep MLP that stays in input space: width = input dim D + classes C at every layer.

Kubota et al. (ICASSP 2021) append C class units to the D input coordinates, so every layer
is square (``identity_`` applies) and each layer's first D units remain an image while its last C
units read as class scores. Logits are the class units of the last pre-activation; the class
units of every layer give a per-layer recognition accuracy (:func:`layer_accuracy`).

    >>> net = ClassUnitMLP(64, 10, depth=100)  # digits: width 74
    >>> net(torch.randn(5, 1, 8, 8)).shape
    torch.Size([5, 10])
"""

from __future__ import annotations

import torch
import torch.nn as nn

from initrepro.data import TensorData, batches
from initrepro.init.dense import reinit_linear_
from initrepro.init.identity import identity_
from initrepro.models.ensemble import Ensemble
from initrepro.models.mlp import ACTIVATIONS as MLP_ACTIVATIONS

#: hard-tanh has slope 1 at 0, so zero-valued class units pass gradient (ReLU's slope 0 does not)
ACTIVATIONS = {**MLP_ACTIVATIONS, "hard_tanh": nn.Hardtanh}


class ClassUnitMLP(nn.Module):
    """``depth`` square layers of width ``in_features + num_classes``, each ``Linear`` then
    ``activation``; zero biases. ``body`` is the whole map ``u -> x_L`` on the padded input."""

    def __init__(self, in_features: int, num_classes: int, depth: int, activation: str = "hard_tanh"):
        super().__init__()
        if in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {in_features}")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.in_features, self.num_classes, self.depth = in_features, num_classes, depth
        width = in_features + num_classes
        self.body = nn.Sequential(*[m for _ in range(depth) for m in (nn.Linear(width, width), ACTIVATIONS[activation]())])
        for layer in self.linears():
            nn.init.zeros_(layer.bias)

    def linears(self) -> list[nn.Linear]:
        return [m for m in self.body if isinstance(m, nn.Linear)]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flatten the image and append ``num_classes`` zero class units."""
        x = x.flatten(1)
        return torch.cat([x, x.new_zeros(len(x), self.num_classes)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for module in list(self.body)[:-1]:  # the last activation is left out: logits are pre-activations
            h = module(h)
        return h[:, self.in_features:]

    def preactivations(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activations ``h_l`` of every layer, shape ``(depth, batch, width)``."""
        return self._trace(x, after_linear=True)

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs ``x_l`` of every layer, shape ``(depth, batch, width)``; ``x_l[..., :D]`` is an image."""
        return self._trace(x, after_linear=False)

    def _trace(self, x: torch.Tensor, after_linear: bool) -> torch.Tensor:
        h, out = self.embed(x), []
        for module in self.body:
            h = module(h)
            if isinstance(module, nn.Linear) == after_linear:
                out.append(h)
        return torch.stack(out)

    @torch.no_grad()
    def contributions(self, x: torch.Tensor, layers: list[int], base: int = 0) -> torch.Tensor:
        """Contribution maps ``x_l[:D] - x_base[:D]`` at the 1-based ``layers`` (``x_0`` is the
        input), reshaped like ``x``: what layers ``base+1..l`` changed in input space, shape
        ``(len(layers), *x.shape)``. ``base=1`` leaves out the first layer's clipping of the input."""
        states = torch.cat([x.flatten(1)[None], self.activations(x)[..., :self.in_features]])
        return (states[layers] - states[base]).reshape(len(layers), *x.shape)


def init_class_unit_mlp_(model: ClassUnitMLP, scheme: str, gain: float = 1.0,
                         generator: torch.Generator | None = None) -> ClassUnitMLP:
    """``identity`` (``gain * I``), or a random dense scheme of :mod:`initrepro.init.dense`
    (``xavier`` = LeCun for square layers, ``kaiming`` = He); biases stay zero."""
    if scheme == "identity":
        for layer in model.linears():
            identity_(layer.weight, gain)
        return model
    return reinit_linear_(model, scheme, generator=generator)


def unstack(ensemble: Ensemble, template: nn.Module) -> list[nn.Module]:
    """The members of ``ensemble`` as separate copies of ``template`` (for per-member analysis)."""
    import copy

    out = []
    for i in range(len(ensemble)):
        member = copy.deepcopy(template)
        member.load_state_dict({n: p[i].detach() for n, p in zip(ensemble.names, ensemble.stacked)})
        out.append(member)
    return out


@torch.no_grad()
def layer_accuracy(model: ClassUnitMLP, data: TensorData, batch_size: int = 1000) -> torch.Tensor:
    """Accuracy of the argmax over the class units of each layer's pre-activation, shape ``(depth,)``,
    computed on the model's device (batches move there)."""
    device = model.linears()[0].weight.device
    correct = torch.zeros(model.depth, device=device)
    for x, y in batches(data, batch_size, shuffle=False):
        h = model.preactivations(x.to(device))[..., model.in_features:]
        correct += (h.argmax(-1) == y.to(device)).sum(-1)
    return correct / len(data)


@torch.no_grad()
def relative_change(model: nn.Module, reference: nn.Module) -> torch.Tensor:
    """``||W_l - W_l^ref||_F / ||W_l^ref||_F`` for every linear layer, shape ``(layers,)``."""
    pairs = [(m.weight, r.weight) for m, r in zip(model.modules(), reference.modules()) if isinstance(m, nn.Linear)]
    return torch.stack([torch.linalg.norm(w - r) / torch.linalg.norm(r) for w, r in pairs])
