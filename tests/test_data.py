import gzip
import struct

import numpy as np
import pytest
import torch

from initrepro.data import batches, crop_flip, load_dataset


@pytest.mark.parametrize("name, shape", [("digits", (1, 8, 8)), ("mnist5k", (1, 28, 28))])
def test_embedded_splits_are_seeded_stratified_and_standardized(name, shape):
    train, test = load_dataset(name, seed=3, test_fraction=0.2)
    again, _ = load_dataset(name, seed=3, test_fraction=0.2)
    assert train.input_shape == shape and train.num_classes == 10
    assert torch.equal(train.x, again.x) and torch.equal(train.y, again.y)
    frac = torch.bincount(test.y) / torch.bincount(torch.cat([train.y, test.y]))
    assert torch.allclose(frac, torch.full_like(frac, 0.2), atol=0.02)
    assert abs(train.x.mean().item()) < 1e-5 and abs(train.x.std().item() - 1) < 1e-2


def test_subset_is_stratified():
    train, _ = load_dataset("mnist5k", n_train=500, n_test=100)
    assert len(train) == 500 and torch.bincount(train.y).tolist() == [50] * 10


def test_bad_names_and_fractions_raise():
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="test_fraction"):
        load_dataset("digits", test_fraction=1.5)


def _write_idx(path, array):
    with gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb") as f:
        code = 0x08
        f.write(struct.pack(">HBB", 0, code, array.ndim))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def test_torchvision_mnist_reads_files_in_the_real_format(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    train, test = load_dataset("mnist", root=tmp_path)
    assert train.x.shape == (40, 1, 28, 28) and test.x.shape == (20, 1, 28, 28)
    assert train.y.tolist() == [i % 10 for i in range(40)]


def test_missing_torchvision_data_offline_names_the_path(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", root=tmp_path)


def test_batches_cover_every_example_once():
    train, _ = load_dataset("digits")
    seen = torch.cat([y for _, y in batches(train, 100, torch.Generator().manual_seed(0))])
    assert torch.equal(seen.sort().values, train.y.sort().values)


def test_crop_flip_keeps_shape_and_content_range():
    x = torch.randn(16, 3, 32, 32)
    out = crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.abs().max() <= x.abs().max()
