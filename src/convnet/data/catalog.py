"""The downloadable data sets: official files, their checksums and sizes, and where they live.

MD5 sums and sizes are those of the official archives (the same ones torchvision checks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    md5: str
    size: int  # bytes, used for the progress bar when a server sends no Content-Length


@dataclass(frozen=True)
class Entry:
    name: str
    title: str
    mirrors: tuple[str, ...]  # base URLs, tried in order; a file's URL is base + "/" + filename
    files: tuple[RemoteFile, ...]
    other_folders: tuple[
        str, ...
    ] = ()  # other layouts we accept under the data root (torchvision's)


CATALOG: dict[str, Entry] = {
    "mnist": Entry(
        "mnist",
        "MNIST",
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist",
            "http://yann.lecun.com/exdb/mnist",
        ),
        (
            RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", 9912422),
            RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", 28881),
            RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", 1648877),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", 4542),
        ),
        ("MNIST/raw",),
    ),
    "fashion-mnist": Entry(
        "fashion-mnist",
        "Fashion-MNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",),
        (
            RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26421880),
            RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", 29515),
            RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", 4422102),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", 5148),
        ),
        ("FashionMNIST/raw",),
    ),
    "cifar10": Entry(
        "cifar10",
        "CIFAR-10",
        ("https://www.cs.toronto.edu/~kriz",),
        (RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170498071),),
        (".",),
    ),
    "cifar100": Entry(
        "cifar100",
        "CIFAR-100",
        ("https://www.cs.toronto.edu/~kriz",),
        (RemoteFile("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", 169001437),),
        (".",),
    ),
}

ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
}

MIRROR_ENV = "CONVNET_DATA_MIRROR"
DATA_ENV = "CONVNET_DATA"


def canonical(name: str) -> str | None:
    """The catalog key for ``name`` (case and common spellings forgiven), or None."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in CATALOG else None


def default_data_dir() -> Path:
    """``$CONVNET_DATA``, else ``$XDG_CACHE_HOME/convnet/data``, else ``~/.cache/convnet/data``."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "convnet" / "data"
