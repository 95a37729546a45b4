"""Layers that the papers' code defines differently from PyTorch's, one module each."""

from initrepro.layers.relu_grad_at_zero import ReLUGradAtZero, relu_grad_at_zero

__all__ = ["ReLUGradAtZero", "relu_grad_at_zero"]
