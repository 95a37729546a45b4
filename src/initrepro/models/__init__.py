"""Model families, one module each."""

from initrepro.models.deep_tanh import DeepTanhCNN, DeepTanhMLP
from initrepro.models.mlp import mlp
from initrepro.models.resnet import resnet
from initrepro.models.wrn import wrn

__all__ = ["DeepTanhCNN", "DeepTanhMLP", "mlp", "resnet", "wrn"]
