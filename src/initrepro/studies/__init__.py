"""Experiment helpers, one module per paper."""
