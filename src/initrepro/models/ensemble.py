"""Many independent networks of one architecture, trained in one vectorized pass."""

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
    must be equal in every member and are shared read-only: models with running statistics
    (batch norm) are not supported.

        >>> ens = Ensemble([mlp(64, 32, 3, 10) for _ in range(5)])
        >>> ens(torch.randn(8, 1, 8, 8)).shape
        torch.Size([5, 8, 10])
    """

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("models must be a non-empty list")
        params, buffers = stack_module_state(models)
        if any(isinstance(m, nn.modules.batchnorm._NormBase) for m in models[0].modules()) or not all(
                torch.equal(b[0], b[i]) for b in buffers.values() for i in range(len(models))):
            raise ValueError("models must have no running-statistics buffers (batch norm) and equal other buffers")
        self.shared = {n: b[0].detach().clone() for n, b in buffers.items()}
        self.names = list(params)
        self.stacked = nn.ParameterList(nn.Parameter(params[n].detach().clone()) for n in self.names)
        # The architecture without storage; kept in a tuple so it is not registered as a submodule.
        self._skeleton = (copy.deepcopy(models[0]).to("meta"),)

    def __len__(self) -> int:
        return self.stacked[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def one(params, inputs):
            return functional_call(self._skeleton[0], {**params, **{n: b.to(inputs.device) for n, b in self.shared.items()}}, (inputs,))

        return torch.vmap(one, in_dims=(0, None))(dict(zip(self.names, self.stacked)), x)
