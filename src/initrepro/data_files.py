"""The paper profile's datasets on disk: where each lives under ``data/``, the MD5s its files
are verified against, the stages that use it, and ``make data``, which fetches and verifies them.

    python -m initrepro.data_files fetch            # every dataset a paper conf names
    python -m initrepro.data_files fetch cifar10    # only these
    python -m initrepro.data_files check            # verify what is there; download nothing

The checksums are the MD5s torchvision publishes in its dataset classes (``train_list``,
``test_list`` and ``meta`` of CIFAR, ``resources`` of MNIST and Fashion-MNIST), copied here so
that a file is checked against a committed value, not against the code that downloaded it
(``tests/test_data.py`` keeps the two in step). They cover the files that stay on disk:
CIFAR's extracted batches, MNIST's ``.gz`` archives.

This module imports neither torch nor torchvision until it downloads, so that the pipeline's
check of a run's data answers in a fraction of a second.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import yaml

from initrepro.core.claims import REPO_ROOT

DATA_DIR = REPO_ROOT / "data"
CONF_DIR = REPO_ROOT / "pipelines" / "conf"
#: datasets shipped inside packages (see :mod:`initrepro.data`): nothing to fetch
EMBEDDED_NAMES = ("digits", "mnist5k")
#: conf keys that name a dataset end with this (``dataset``, ``cnn_dataset``, ...)
DATASET_KEY_SUFFIX = "dataset"


@dataclass(frozen=True)
class Dataset:
    """One torchvision dataset: its class, the folder :func:`initrepro.data.load_dataset` reads
    (under ``data/``), the MD5 of every file that must be there (paths under ``data/``), and
    about how many MB it downloads and then occupies (archive included)."""

    name: str
    torchvision: str
    folder: str
    md5: dict[str, str]
    download_mb: int
    disk_mb: int


def _mnist_like(folder: str, md5s: tuple[str, str, str, str]) -> dict[str, str]:
    files = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
    return {f"{folder}/{file}": md5 for file, md5 in zip(files, md5s)}


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("mnist", "MNIST", "MNIST/raw", _mnist_like("MNIST/raw", (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
        "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")), 12, 67),
    Dataset("fashion_mnist", "FashionMNIST", "FashionMNIST/raw", _mnist_like("FashionMNIST/raw", (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
        "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")), 31, 86),
    Dataset("cifar10", "CIFAR10", "cifar-10-batches-py", {
        "cifar-10-batches-py/data_batch_1": "c99cafc152244af753f735de768cd75f",
        "cifar-10-batches-py/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "cifar-10-batches-py/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "cifar-10-batches-py/data_batch_4": "634d18415352ddfa80567beed471001a",
        "cifar-10-batches-py/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "cifar-10-batches-py/test_batch": "40351d587109b95175f43aff81a1287e",
        "cifar-10-batches-py/batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}, 170, 360),
    Dataset("cifar100", "CIFAR100", "cifar-100-python", {
        "cifar-100-python/train": "16019d7e3df5f24257cddd939b257f8d",
        "cifar-100-python/test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "cifar-100-python/meta": "7973b15100ade9c7d40fb424638fde48"}, 169, 360),
)}
#: dataset name -> class in ``torchvision.datasets``
TORCHVISION = {name: d.torchvision for name, d in DATASETS.items()}
#: dataset name -> the folder under ``data/`` that holds its files
TORCHVISION_FILES = {name: d.folder for name, d in DATASETS.items()}


class FetchError(RuntimeError):
    """A dataset could not be fetched or verified; the message is one line saying what to do."""


def conf_datasets(profile: str = "paper", conf_dir: Path = CONF_DIR) -> dict[str, list[str]]:
    """Torchvision dataset -> the stages whose ``profile`` conf names it (in a ``*dataset`` key)."""
    uses: dict[str, list[str]] = {}
    for path in sorted(conf_dir.glob(f"*/{profile}.yaml")):
        conf = yaml.safe_load(path.read_text()) or {}
        for key, name in conf.items():
            if key.endswith(DATASET_KEY_SUFFIX) and name in DATASETS and path.parent.name not in uses.get(name, []):
                uses.setdefault(name, []).append(path.parent.name)
    return dict(sorted(uses.items()))


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def problems(name: str, data_dir: Path = DATA_DIR, verify: bool = True) -> list[str]:
    """What is wrong with ``name`` under ``data_dir``: each missing file and, with ``verify``,
    each MD5 mismatch (empty: every file is there, and verified)."""
    found = []
    for file, expected in DATASETS[name].md5.items():
        path = Path(data_dir) / file
        if not path.is_file():
            found.append(f"{file} is missing")
        elif verify and md5sum(path) != expected:
            found.append(f"{file} has MD5 {md5sum(path)}, expected {expected}")
    return found


def _download(name: str, data_dir: Path) -> None:
    """torchvision's downloader for both splits of ``name`` (it checks its archive's MD5 and
    extracts it under ``data_dir``)."""
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION[name])
    for train in (True, False):
        cls(root=str(data_dir), train=train, download=True)


def fetch(name: str, data_dir: Path = DATA_DIR) -> str:
    """Download ``name`` into ``data_dir`` unless it is there and verified, then verify it;
    returns a one-line status, raises :class:`FetchError` with a one-line reason."""
    if name not in DATASETS:
        raise FetchError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    where = f"({len(DATASETS[name].md5)} files) in {Path(data_dir) / DATASETS[name].folder}"
    if not problems(name, data_dir):
        return f"{name}: present and verified {where}"
    try:
        _download(name, Path(data_dir))
    except (URLError, OSError, RuntimeError) as err:  # offline, a refused mirror, a bad archive
        reason = " ".join(str(err).split())[:200]
        raise FetchError(
            f"could not download {name} ({type(err).__name__}: {reason}); this needs internet: run `make data` "
            f"on a machine that has it and copy {Path(data_dir) / DATASETS[name].folder} here") from err
    wrong = problems(name, data_dir)
    if wrong:
        raise FetchError(f"{name} does not verify after download: {'; '.join(wrong)}; delete "
                         f"{Path(data_dir) / DATASETS[name].folder} and run `make data` again")
    return f"{name}: downloaded and verified {where}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch", "check"])
    parser.add_argument("names", nargs="*", help="datasets (default: every one a paper conf names)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    names = args.names or list(conf_datasets())
    try:
        for name in names:
            if args.command == "fetch":
                print(fetch(name, args.data_dir), flush=True)
                continue
            if name not in DATASETS:
                raise FetchError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
            wrong = problems(name, args.data_dir)
            if wrong:
                raise FetchError(f"{name}: {'; '.join(wrong)} (fetch it: make data)")
            print(f"{name}: verified", flush=True)
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
