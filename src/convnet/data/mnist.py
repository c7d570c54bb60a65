"""MNIST-style data: the bundled sample and IDX files (MNIST, Fashion-MNIST), raw or gzipped.

IDX format (yann.lecun.com/exdb/mnist): a 4-byte magic number ``0x00 0x00 TYPE NDIM`` (TYPE
0x08 = unsigned byte), then NDIM big-endian int32 sizes, then the values in row-major order.
Image files are 3-d (magic 2051 = 0x00000803), label files 1-d (magic 2049 = 0x00000801).
"""

from __future__ import annotations

import gzip
import importlib.resources
import math
import os
import re
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..errors import DataError
from ..limits import MAX_DEFLATE_RATIO
from .dataset import Dataset, check_bytes, check_labels

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
    """Read one IDX file (raw or ``.gz``) into a numpy array of its stored shape and type.

    The header's sizes are checked before anything is allocated: no dimension may be negative,
    their product (in Python integers, so it cannot wrap) times the value size must equal the
    raw file's data bytes, or for a gzip file be within deflate's 1032:1 reach of its size,
    and never exceed ``MAX_ARRAY_BYTES``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            gz = f.read(2) == b"\x1f\x8b"  # gzip magic, whatever the file is called
            f.seek(0)
            if not gz:
                return _read_idx_stream(f, path, size, None)
            with gzip.GzipFile(fileobj=f) as g:
                return _read_idx_stream(g, path, size, size * MAX_DEFLATE_RATIO)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot read ({e}); download it again") from None


def _read_idx_stream(f: BinaryIO, path: Path, size: int, gz_limit: int | None) -> np.ndarray:
    """The IDX array in ``f``; ``gz_limit``: the most a gzip stream of this size can hold, or
    None for a raw file of ``size`` bytes."""
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {magic.hex() or 'none'})")
    dtype, ndim = _IDX_TYPES[magic[2]], magic[3]
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(f"{path}: IDX header is truncated")
    shape = struct.unpack(f">{ndim}i", dims)
    if any(d < 0 for d in shape):
        raise DataError(
            f"{path}: IDX header declares a negative size {shape}; the file is corrupt, "
            "download it again"
        )
    nbytes = math.prod(shape) * dtype.itemsize  # Python integers: no wrap-around
    # sizes beside a 0 count too: numpy refuses a (0, 2**30, 2**30) shape
    extent = math.prod(max(d, 1) for d in shape) * dtype.itemsize
    check_bytes(extent, str(path), f"the {shape} array its IDX header declares")
    if gz_limit is None and nbytes != size - 4 - 4 * ndim:
        raise _truncated(path, shape, dtype, f"{size - 4 - 4 * ndim}")
    if gz_limit is not None and nbytes > gz_limit:
        raise DataError(
            f"{path}: IDX header promises {shape} values ({nbytes:,} bytes) but a gzip file of "
            f"{size:,} bytes expands to at most {gz_limit:,}; the file is corrupt, download it again"
        )
    data = np.empty(nbytes, dtype=np.uint8)  # bounded by the file's size now
    view, filled = memoryview(data), 0
    while filled < nbytes:
        n = f.readinto(view[filled:])
        if not n:
            raise _truncated(path, shape, dtype, f"{filled}")
        filled += n
    if gz_limit is not None and f.read(1):
        raise DataError(
            f"{path}: more data follows the {shape} values the IDX header declares; "
            "the file is corrupt, download it again"
        )
    return data.view(dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def _truncated(path: Path, shape: tuple[int, ...], dtype: np.dtype, held: str) -> DataError:
    return DataError(
        f"{path}: IDX header promises {shape} values of {dtype.itemsize} byte(s) but the file "
        f"holds {held} data bytes; the file is truncated or corrupt, download it again"
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
    n = max(check_labels(arrays[k], str(files[k])) for k in ("train_labels", "test_labels"))
    if classes is None:
        fashion = "fashion" in str(folder.resolve()).lower()
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
