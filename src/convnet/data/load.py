"""``load(spec)``: one entry point for every data source.

A spec is a name (``mnist-sample``, ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``)
or a path: a folder or file of MNIST IDX files, a CIFAR python tar.gz or its extracted
folder, a ``.npz`` with ``x_train, y_train, x_test, y_test``, or an image-folder tree.
"""

from __future__ import annotations

import math
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..limits import MAX_DEFLATE_RATIO
from .catalog import CATALOG, canonical, default_data_dir
from .dataset import Dataset, check_bytes, check_labels

NAMES = ("mnist-sample", *CATALOG)
CIFAR_LAYOUT_OF = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def load(
    spec: str | Path = "mnist-sample",
    root: str | Path | None = None,
    *,
    image_size: int | tuple[int, int] | None = None,
    strict: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
) -> Dataset:
    """Load a data set into memory as uint8 (N, C, H, W) tensors.

    Args:
        spec: a name from ``NAMES`` or a path (see the module docstring).
        root: where named data sets live (``root/NAME/``, as ``convnet data get --dir`` writes
            them); default ``$CONVNET_DATA`` or ``~/.cache/convnet/data``.
        image_size: image folders only: (H, W) (or one int for square) to resize the shorter
            side to and centre-crop; default: the images' own size, which must then agree.
        strict: image folders only: raise on a corrupt image instead of skipping it with a warning.
        test_fraction, seed: image folders without ``train/`` and ``test/`` (or ``val/``)
            sub-folders: the share of each class held out for testing, chosen by a seeded
            permutation so the split is the same on every machine.
        progress: show a progress bar while decoding an image folder.
    """
    text = str(spec)
    if text == "mnist-sample":
        from .mnist import load_sample

        return load_sample()
    key = canonical(text)
    if key is not None and not Path(text).exists():
        return _load_named(key, Path(root).expanduser() if root else default_data_dir())
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(
            f"unknown data set {text!r}: give one of {', '.join(NAMES)}, "
            "or the path of IDX files, a CIFAR archive or folder, a .npz, or an image folder"
        )
    return load_path(
        path,
        image_size=image_size,
        strict=strict,
        test_fraction=test_fraction,
        seed=seed,
        progress=progress,
    )


def _candidates(key: str, base: Path) -> list[Path]:
    entry = CATALOG[key]
    folders = [base / key, *(base / o for o in entry.other_folders)]
    if base.name == key:  # root already names the data set's own folder
        folders.insert(0, base)
    return folders


def _load_named(key: str, base: Path) -> Dataset:
    from .cifar import find_cifar_folder, load_cifar_archive, load_cifar_folder
    from .mnist import find_idx_files, load_idx_folder

    entry = CATALOG[key]
    for folder in _candidates(key, base):
        if key in ("mnist", "fashion-mnist"):
            if find_idx_files(folder) is not None:
                from .mnist import FASHION_CLASSES, MNIST_CLASSES

                classes = FASHION_CLASSES if key == "fashion-mnist" else MNIST_CLASSES
                return load_idx_folder(folder, name=key, classes=list(classes))
        else:
            archive = folder / entry.files[0].filename
            if archive.is_file():
                return load_cifar_archive(archive, name=key)
            found = find_cifar_folder(folder)
            if found is not None and CIFAR_LAYOUT_OF[key] == found[1]:
                return load_cifar_folder(found[0], name=key)
    where = base / key
    files = ", ".join(f.filename for f in entry.files)
    raise DataError(
        f"{entry.title} not found: run `convnet data get {key}` (add --dir {base} for this folder) "
        f"or put {files} in {where}"
    )


def load_path(
    path: Path,
    *,
    image_size: int | tuple[int, int] | None = None,
    strict: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
) -> Dataset:
    """Load a data set from a file or folder, recognising its format by its contents."""
    from .cifar import find_cifar_folder, load_cifar_archive, load_cifar_folder
    from .mnist import IDX_FILES, find_idx_files, load_idx_folder

    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path)
        if any(path.name.startswith(stem.split("-idx")[0]) for stem in IDX_FILES.values()):
            return load_idx_folder(path.parent)
        if path.name.endswith((".tar.gz", ".tgz", ".tar")) or _is_tar(path):
            return load_cifar_archive(path)  # reports an unreadable archive by its path
        raise DataError(
            f"{path}: unknown file format (expected a CIFAR python .tar.gz, an MNIST IDX file "
            "or a .npz with x_train, y_train, x_test, y_test)"
        )
    if find_idx_files(path) is not None:
        return load_idx_folder(path)
    if find_cifar_folder(path) is not None:
        return load_cifar_folder(path)
    archives = sorted(path.glob("cifar-*-python.tar.gz"))
    if archives:
        return load_cifar_archive(archives[0])
    from .folder import load_image_folder

    return load_image_folder(
        path,
        image_size=image_size,
        strict=strict,
        test_fraction=test_fraction,
        seed=seed,
        progress=progress,
    )


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError, zlib.error):
        return False


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes", "x_val", "y_val")


def read_npz(path: Path, keys: tuple[str, ...] = NPZ_KEYS) -> dict[str, np.ndarray]:
    """The arrays named ``keys`` in a ``.npz`` (a zip of ``.npy`` files), read without pickle.

    ``np.load`` sizes its output by each ``.npy`` header's shape before reading, so a 200-byte
    member could claim terabytes. Here each header is checked first: prod(shape) x itemsize
    must equal the bytes the member really holds, which must be under ``MAX_ARRAY_BYTES`` and,
    when compressed, within deflate's reach of the compressed size.
    """
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                key = info.filename.removesuffix(".npy")
                if key in keys and key not in arrays:
                    arrays[key] = _read_npy(z, info, f"{path}: {key}")
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: cannot read the .npz ({e})") from None
    return arrays


def _read_npy(z: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    check_bytes(info.file_size, where, "the array")
    if info.compress_type != zipfile.ZIP_STORED and (
        info.file_size > info.compress_size * MAX_DEFLATE_RATIO + 1024
    ):
        raise DataError(f"{where}: claims {info.file_size:,} bytes, more than its data can hold")
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise DataError(f"{where}: .npy format version {version} is not supported")
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise DataError(f"{where}: holds Python objects, which would need pickle; refused")
        nbytes = math.prod(shape) * dtype.itemsize  # Python integers: no wrap-around
        check_bytes(math.prod(max(d, 1) for d in shape) * dtype.itemsize, where, "the array")
        held = info.file_size - f.tell()
        if min(shape, default=0) < 0 or nbytes != held:
            raise DataError(
                f"{where}: the header declares a {shape} array of {dtype} ({nbytes:,} bytes) "
                f"but {held:,} bytes follow it; the file is corrupt"
            )
        data = np.empty(nbytes, dtype=np.uint8)  # bounded by the member's real size now
        filled = 0
        while filled < nbytes:
            block = f.read(min(nbytes - filled, 1 << 20))
            if not block:
                raise DataError(f"{where}: the array is truncated ({filled:,} of {nbytes:,} bytes)")
            data[filled : filled + len(block)] = np.frombuffer(block, dtype=np.uint8)
            filled += len(block)
    return data.view(dtype).reshape(shape, order="F" if fortran else "C")


def load_npz(path: Path) -> Dataset:
    """A ``.npz`` holding uint8 ``x_train``/``x_test`` as (N, H, W) or (N, C, H, W), integer
    ``y_train``/``y_test``, and optionally ``classes`` (an array of strings) and a validation
    split ``x_val``/``y_val`` (used instead of one carved from the training split)."""
    arrays = read_npz(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if ("x_val" in arrays) != ("y_val" in arrays):
        missing.append("y_val" if "x_val" in arrays else "x_val")
    if missing:
        raise DataError(f"{path}: the .npz lacks {', '.join(missing)}")
    splits = ("train", "val", "test") if "x_val" in arrays else ("train", "test")
    xs = {}
    for k in (f"x_{s}" for s in splits):
        x = arrays[k]
        if x.dtype != np.uint8 or x.ndim not in (3, 4):
            raise DataError(
                f"{path}: {k} must be uint8 (N, H, W) or (N, C, H, W), got {x.dtype} {x.shape}"
            )
        xs[k] = torch.from_numpy(np.ascontiguousarray(x[:, None] if x.ndim == 3 else x))
    label_keys = [f"y_{s}" for s in splits]
    top = max(check_labels(arrays[k], f"{path}: {k}") for k in label_keys)
    ys = {k: torch.from_numpy(arrays[k].astype(np.int64)) for k in label_keys}
    if "classes" in arrays:
        names = arrays["classes"]
        if names.dtype.kind not in "US" or names.ndim != 1:
            raise DataError(
                f"{path}: classes must be a 1-d array of strings, got {names.dtype} {names.shape}"
            )
        classes = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names]
    else:
        classes = [str(k) for k in range(max(top, 1))]
    return Dataset(
        path.stem,
        xs["x_train"],
        ys["y_train"],
        xs["x_test"],
        ys["y_test"],
        classes,
        x_val=xs.get("x_val"),
        y_val=ys.get("y_val"),
    )
