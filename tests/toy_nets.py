"""Tiny data and fc ResNets shared by the trainer tests (ZerO's and the member-wise trainer's)."""

import torch

from initrepro.data import TensorData
from initrepro.layers import relu_grad_at_zero
from initrepro.models.resnet import resnet


def toy_data(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = torch.randn(n, 1, 4, 4, generator=g) * 0.1 + y.view(-1, 1, 1, 1).float() / 4
    return TensorData(x, y, 4, "toy")


def toy_fc(arm, seed):
    return resnet("fc", (1, 4, 4), 4, widths=16, blocks=2, block_type="C", init=arm, seed=seed,
                  activation=relu_grad_at_zero)
