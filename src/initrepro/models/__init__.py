"""Model families, one module each."""

from initrepro.models.mlp import mlp
from initrepro.models.resnet import resnet
