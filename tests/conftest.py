import torch

# Deep tanh nets slow down ~100x on denormals on CPU.
torch.set_flush_denormal(True)
