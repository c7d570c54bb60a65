"""MNIST-style data: the bundled sample and IDX files (MNIST, Fashion-MNIST), raw or gzipped.

IDX format (yann.lecun.com/exdb/mnist): a 4-byte magic number ``0x00 0x00 TYPE NDIM`` (TYPE
0x08 = unsigned byte), then NDIM big-endian int32 sizes, then the values in row-major order.
Image files are 3-d (magic 2051 = 0x00000803), label files 1-d (magic 2049 = 0x00000801).
"""

from __future__ import annotations

import gzip
import importlib.resources
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import Dataset

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

# IDX type byte -> numpy big-endian dtype
_IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# the four files of an MNIST-style data set; the separator before "idx" is "-" in the
# official names and "." in some re-packagings, and each may be gzipped
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def load_sample() -> Dataset:
    """The bundled 5,000 real MNIST digits: 4,000 train / 1,000 test, 400 / 100 per class."""
    ref = importlib.resources.files("convnet.data") / "assets" / "mnist_sample.npz"
    with ref.open("rb") as f, np.load(f) as npz:
        arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    return Dataset(
        name="mnist-sample",
        x_train=torch.from_numpy(arrays["x_train"]).unsqueeze(1).contiguous(),
        y_train=torch.from_numpy(arrays["y_train"].astype(np.int64)),
        x_test=torch.from_numpy(arrays["x_test"]).unsqueeze(1).contiguous(),
        y_test=torch.from_numpy(arrays["y_test"].astype(np.int64)),
        classes=list(MNIST_CLASSES),
    )


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or ``.gz``) into a numpy array of its stored shape and type."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e}); download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: IDX header is truncated")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if len(raw) - header != count * dtype.itemsize:
        raise DataError(
            f"{path}: IDX header promises {shape} values of {dtype.itemsize} byte(s) but the file "
            f"holds {len(raw) - header} data bytes; the file is truncated or corrupt, download it again"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four IDX files in ``folder`` (any of the usual spellings), or None if one is missing."""
    if not folder.is_dir():
        return None
    names = {p.name: p for p in folder.iterdir() if p.is_file()}
    found = {}
    for key, stem in IDX_FILES.items():
        pattern = re.compile(re.escape(stem).replace(r"\-idx", r"[-.]idx") + r"(\.gz)?$")
        hits = sorted((n for n in names if pattern.match(n)), key=lambda n: n.endswith(".gz"))
        if not hits:
            return None
        found[key] = names[hits[0]]  # prefer the raw file when both are there (no decompression)
    return found


def load_idx_folder(
    folder: str | Path, name: str | None = None, classes: list[str] | None = None
) -> Dataset:
    """Load MNIST-style IDX files from ``folder``.

    Returns images as uint8 (N, 1, H, W). Fashion-MNIST is recognised by "fashion" in the
    folder's path (its files have the same names as MNIST's); pass ``classes`` to override.
    """
    folder = Path(folder)
    files = find_idx_files(folder)
    if files is None:
        wanted = ", ".join(f"{s}[.gz]" for s in IDX_FILES.values())
        raise DataError(f"{folder}: needs the four IDX files {wanted}")
    arrays = {key: read_idx(p) for key, p in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if x.ndim != 3 or y.ndim != 1:
            raise DataError(
                f"{files[f'{split}_images']}: expected 3-d images and 1-d labels, "
                f"got {x.shape} and {y.shape}"
            )
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"{folder}: {x.shape[0]} {split} images but {y.shape[0]} {split} labels"
            )
        if x.dtype != np.uint8:
            raise DataError(
                f"{files[f'{split}_images']}: images must be unsigned bytes, got {x.dtype}"
            )
    if classes is None:
        fashion = "fashion" in str(folder.resolve()).lower()
        n = (
            int(max(arrays["train_labels"].max(initial=0), arrays["test_labels"].max(initial=0)))
            + 1
        )
        classes = (
            list(FASHION_CLASSES if fashion else MNIST_CLASSES)
            if n <= 10
            else [str(k) for k in range(n)]
        )
    return Dataset(
        name=name or str(folder),
        x_train=torch.from_numpy(arrays["train_images"]).unsqueeze(1),
        y_train=torch.from_numpy(arrays["train_labels"].astype(np.int64)),
        x_test=torch.from_numpy(arrays["test_images"]).unsqueeze(1),
        y_test=torch.from_numpy(arrays["test_labels"].astype(np.int64)),
        classes=classes,
    )
