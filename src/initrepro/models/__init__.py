"""Model families, one module each."""

from initrepro.models.mlp import mlp
