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


# --- make data: the committed checksums, verification, and a clear line offline ---------------

from urllib.error import URLError  # noqa: E402

from initrepro import data_files  # noqa: E402


@pytest.mark.parametrize("name", sorted(data_files.DATASETS))
def test_committed_md5s_are_the_ones_torchvision_publishes(name):
    import torchvision

    cls = getattr(torchvision.datasets, data_files.TORCHVISION[name])
    folder = data_files.DATASETS[name].folder
    if hasattr(cls, "resources"):  # MNIST-like: the .gz archives stay in raw/
        published = {f"{folder}/{file}": md5 for file, md5 in cls.resources}
    else:  # CIFAR: the extracted batches
        published = {f"{folder}/{file}": md5 for file, md5 in cls.train_list + cls.test_list}
        published[f"{folder}/{cls.meta['filename']}"] = cls.meta["md5"]
    assert data_files.DATASETS[name].md5 == published


def test_paper_confs_name_their_datasets():
    uses = data_files.conf_datasets("paper")
    assert "zero_init" in uses["cifar10"] and "identity_init" in uses["fashion_mnist"] and "mnist" in uses


def test_fetch_skips_verified_files_and_reports_a_bad_one(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "a").write_bytes(b"abc")
    entry = data_files.Dataset("cifar10", "CIFAR10", "cifar-10-batches-py",
                               {"cifar-10-batches-py/a": "900150983cd24fb0d6963f7d28e17f72"}, 1, 1)
    monkeypatch.setitem(data_files.DATASETS, "cifar10", entry)
    monkeypatch.setattr(data_files, "_download", lambda *a: pytest.fail("verified data must not be downloaded"))
    assert "present and verified" in data_files.fetch("cifar10", tmp_path)
    (folder / "a").write_bytes(b"abd")
    assert "has MD5" in data_files.problems("cifar10", tmp_path)[0]
    assert data_files.problems("cifar10", tmp_path, verify=False) == []


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_offline_make_data_fails_in_one_clear_line(tmp_path, monkeypatch, capsys, name):
    import urllib.request

    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)  # torchvision's downloader, offline
    assert data_files.main(["fetch", name, "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert f"could not download {name}" in err and "make data" in err
