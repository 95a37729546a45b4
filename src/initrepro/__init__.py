"""initrepro: re-runs published claims about neural-network initialization."""

__version__ = "0.1.0"
