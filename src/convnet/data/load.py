"""``load(spec)``: one entry point for every data source.

A spec is a name (``mnist-sample``, ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100``)
or a path: a folder or file of MNIST IDX files, a CIFAR python tar.gz or its extracted
folder, a ``.npz`` with ``x_train, y_train, x_test, y_test``, or an image-folder tree.
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .catalog import CATALOG, canonical, default_data_dir
from .dataset import Dataset

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


def load_npz(path: Path) -> Dataset:
    """A ``.npz`` holding uint8 ``x_train``/``x_test`` as (N, H, W) or (N, C, H, W), integer
    ``y_train``/``y_test``, and optionally ``classes`` (an array of strings)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: cannot read the .npz ({e})") from None
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in arrays]
    if missing:
        raise DataError(f"{path}: the .npz lacks {', '.join(missing)}")
    xs = {}
    for k in ("x_train", "x_test"):
        x = arrays[k]
        if x.dtype != np.uint8 or x.ndim not in (3, 4):
            raise DataError(
                f"{path}: {k} must be uint8 (N, H, W) or (N, C, H, W), got {x.dtype} {x.shape}"
            )
        xs[k] = torch.from_numpy(np.ascontiguousarray(x[:, None] if x.ndim == 3 else x))
    ys = {k: torch.from_numpy(arrays[k].astype(np.int64)) for k in ("y_train", "y_test")}
    if "classes" in arrays:
        classes = [str(c) for c in arrays["classes"]]
    else:
        top = max((int(y.max()) for y in ys.values() if y.numel()), default=0)
        classes = [str(k) for k in range(top + 1)]
    return Dataset(path.stem, xs["x_train"], ys["y_train"], xs["x_test"], ys["y_test"], classes)
