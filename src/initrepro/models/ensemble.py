"""Many independent networks of one architecture, trained in one vectorized pass (each member
on the same batch, or each on its own: ``initrepro.training.train_members``)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state


class Ensemble(nn.Module):
    """``len(models)`` independent copies of one architecture: ``forward(x)`` returns logits of
    shape ``(members, batch, classes)`` from one ``torch.vmap`` call (batched matmuls instead of a
    Python loop over seeds or schemes). Parameters are stacked along a leading member dimension;
    SGD, momentum and weight decay act elementwise, so one optimizer step on the summed member
    losses is exactly one independent step per member. Buffers (e.g. a fixed skip multiplier)
    must be equal in every member and are shared read-only, unless ``running_stats=True``: then
    every buffer is stacked per member too, and batch norm updates each member's running
    statistics in training mode and uses them in eval mode, as the network alone would.
    ``isolate_diverged=True`` keeps a member whose logits turn non-finite from stopping the
    others: from then on it outputs zeros (loss log(classes), no update that reaches the other
    members) and ``diverged`` marks it.

        >>> ens = Ensemble([mlp(64, 32, 3, 10) for _ in range(5)])
        >>> ens(torch.randn(8, 1, 8, 8)).shape
        torch.Size([5, 8, 10])
    """

    def __init__(self, models: list[nn.Module], running_stats: bool = False, isolate_diverged: bool = False):
        super().__init__()
        if not models:
            raise ValueError("models must be a non-empty list")
        params, buffers = stack_module_state(models)
        if not running_stats and (any(isinstance(m, nn.modules.batchnorm._NormBase) for m in models[0].modules())
                                  or not all(torch.equal(b[0], b[i]) for b in buffers.values()
                                             for i in range(len(models)))):
            raise ValueError("models must have no running-statistics buffers (batch norm) and equal other buffers,"
                             " unless running_stats=True")
        self.shared = {} if running_stats else {n: b[0].detach().clone() for n, b in buffers.items()}
        self.buffer_names = list(buffers) if running_stats else []
        for i, n in enumerate(self.buffer_names):
            self.register_buffer(f"member_buffer_{i}", buffers[n].detach().clone())
        self.isolate_diverged = isolate_diverged
        self.register_buffer("diverged", torch.zeros(len(models), dtype=torch.bool))
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[n].detach().clone()) for n in self.names)
        # The architecture without storage; kept in a tuple so it is not registered as a submodule.
        self._skeleton = (copy.deepcopy(models[0]).to("meta"),)

    def __len__(self) -> int:
        return self.stacked[0].shape[0]

    def train(self, mode: bool = True) -> "Ensemble":
        self._skeleton[0].train(mode)  # batch norm reads the mode from the skeleton
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(members, batch, classes)``: every member on the same batch ``x``."""
        return self._vmap(x, None)

    def forward_members(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(members, batch, classes)``: member ``i`` on its own batch ``x[i]`` (``x`` is
        ``(members, batch, ...)``), so that every member can follow its own data order."""
        if x.shape[0] != len(self):
            raise ValueError(f"x must have one leading entry per member ({len(self)}), got shape {tuple(x.shape)}")
        return self._vmap(x, 0)

    def _vmap(self, x: torch.Tensor, x_dim: int | None) -> torch.Tensor:
        def one(params, buffers, inputs):
            return functional_call(self._skeleton[0], {**params, **buffers, **{
                n: b.to(inputs.device) for n, b in self.shared.items()}}, (inputs,))

        buffers = {n: getattr(self, f"member_buffer_{i}") for i, n in enumerate(self.buffer_names)}
        out = torch.vmap(one, in_dims=(0, 0, x_dim))(dict(zip(self.names, self.stacked)), buffers, x)
        if self.isolate_diverged:
            with torch.no_grad():
                self.diverged |= ~torch.isfinite(out).flatten(1).all(1)
            out = torch.where(self.diverged.view(-1, *[1] * (out.dim() - 1)), torch.zeros((), dtype=out.dtype), out)
        return out
