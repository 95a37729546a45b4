import pytest
import torch

# Deep tanh nets slow down ~100x on denormals on CPU.
torch.set_flush_denormal(True)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: without it they are skipped, and say so."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu); none here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
