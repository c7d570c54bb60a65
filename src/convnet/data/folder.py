"""Image-folder trees: one class per sub-folder, JPEG/PNG files, decoded into memory as uint8.

Two layouts are recognised:

    root/train/<class>/*.png  and  root/test/<class>/*.png   (or root/val/...)
    root/<class>/*.jpg        (a seeded, stratified share of each class becomes the test split)

With ``train/``, ``test/`` and a ``val/`` (or ``valid/``, ``validation/``) folder, ``val/`` is the
validation split (``Dataset.x_val``); with ``train/`` and ``val/`` alone, ``val/`` is the test
split (ImageNet's layout: its test labels are not public) and training carves a validation
split from ``train/`` (``convnet.data.splits``).

Images are converted to RGB (or kept grayscale when every image is grayscale), resized so the
shorter side fits ``image_size`` and centre-cropped to it. A file that cannot be decoded is
reported by its path: skipped with a warning listing every such file, or, with ``strict``,
raised as a DataError. Never a crash in the middle of an epoch: all decoding happens here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..limits import MAX_IMAGE_SIDE
from .dataset import Dataset, check_bytes

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


class CorruptImageWarning(UserWarning):
    """Some images in a folder could not be decoded and were left out."""


def _classes_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    files = [
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in EXTENSIONS and p.is_file() and not p.name.startswith(".")
    ]
    return sorted(files)


_VAL_NAMES = ("val", "valid", "validation")


def _split_folders(root: Path) -> tuple[Path, Path | None, Path] | None:
    """(train, validation or None, test) folders of a split tree, or None for a flat one."""
    train = root / "train"
    if not (train.is_dir() and _classes_in(train)):
        return None
    val = next((root / n for n in _VAL_NAMES if (root / n).is_dir()), None)
    if (root / "test").is_dir():
        return train, val, root / "test"
    return (train, None, val) if val is not None else None


def _decode(path: Path, size: tuple[int, int] | None) -> np.ndarray | str:
    """(H, W) or (H, W, 3) uint8 array, or the reason the file could not be decoded."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            if img.width * img.height > Image.MAX_IMAGE_PIXELS:  # read from the header alone
                # PIL only warns up to twice this: a crafted header would decode gigabytes
                return f"{img.width}x{img.height} pixels, more than {Image.MAX_IMAGE_PIXELS:,}"
            img.load()  # decode now: a truncated file fails here, not later
            img = ImageOps.exif_transpose(img)  # camera photos: apply the orientation tag
            img = img.convert("L") if img.mode in _GRAY_MODES else img.convert("RGB")
            if size is not None:
                img = _resize_crop(img, size)
            return np.asarray(img, dtype=np.uint8)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
        return f"{type(e).__name__}: {e}".splitlines()[0]


def _resize_crop(img, size: tuple[int, int]):
    """Scale so the image covers (H, W) (its shorter side fits), then cut the centre."""
    from PIL import Image

    th, tw = size
    w, h = img.size
    scale = max(th / h, tw / w)
    nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - tw) // 2, (nh - th) // 2
    return img.crop((left, top, left + tw, top + th))


def _stack(arrays: list[np.ndarray], channels: int, size: tuple[int, int]) -> torch.Tensor:
    out = np.empty((len(arrays), channels, *size), dtype=np.uint8)
    for i, a in enumerate(arrays):
        out[i] = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # gray broadcasts to RGB
    return torch.from_numpy(out)


def load_image_folder(
    root: str | Path,
    *,
    image_size: int | Sequence[int] | None = None,
    strict: bool = False,
    test_fraction: float = 0.2,
    seed: int = 0,
    progress: bool = True,
) -> Dataset:
    """Decode an image-folder tree into a :class:`Dataset` of uint8 (N, C, H, W) images.

    Args:
        image_size: (H, W) or an int; default the images' own size, which must then be the same
            for every image.
        strict: raise DataError naming the first corrupt file instead of skipping it.
        test_fraction, seed: for a tree without train/test sub-folders, each class's files are
            permuted with ``torch.Generator().manual_seed(seed)`` and the first
            ``round(n * test_fraction)`` become test images.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    size = _checked_options(image_size, test_fraction, seed)

    split = _split_folders(root)
    classes, train_files, val_files, test_files = _list_files(root, split, test_fraction, seed)
    if not train_files:
        raise DataError(f"{root}: no images ({', '.join(sorted(EXTENSIONS))}) in the class folders")

    everything = train_files + val_files + test_files
    if size is not None:  # what the decoded images will take, before any is decoded
        check_bytes(len(everything) * 3 * size[0] * size[1], str(root), "the decoded images")
    decoded = _decode_all([p for p, _ in everything], size, progress)
    bad = [(p, r) for (p, _), r in zip(everything, decoded) if isinstance(r, str)]
    if bad and strict:
        path, reason = bad[0]
        raise DataError(f"{path}: cannot decode image ({reason}); remove or replace it")
    if bad:
        listed = "; ".join(f"{p} ({r})" for p, r in bad)
        warnings.warn(
            f"skipped {len(bad)} corrupt image(s) in {root}: {listed}",
            CorruptImageWarning,
            stacklevel=3,
        )
    n_train, n_val = len(train_files), len(val_files)
    part_of = ["train"] * n_train + ["val"] * n_val + ["test"] * len(test_files)
    good = [(a, k, part) for a, (_, k), part in zip(decoded, everything, part_of)]
    good = [t for t in good if not isinstance(t[0], str)]
    if not any(part == "train" for _, _, part in good):
        raise DataError(f"{root}: no training image could be decoded")

    if size is None:
        sizes = {a.shape[:2] for a, _, _ in good}
        if len(sizes) > 1:
            a, b = sorted(sizes)[:2]
            raise DataError(
                f"{root}: images differ in size ({a[0]}x{a[1]}, {b[0]}x{b[1]}, ...); "
                "pass image_size=(H, W) (--image-size) to resize and centre-crop them"
            )
        size = next(iter(sizes))
    channels = 1 if all(a.ndim == 2 for a, _, _ in good) else 3

    def part(which: str) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [(a, k) for a, k, t in good if t == which]
        x = _stack([a for a, _ in rows], channels, size)
        return x, torch.tensor([k for _, k in rows], dtype=torch.int64)

    x_train, y_train = part("train")
    x_test, y_test = part("test")
    x_val, y_val = part("val") if split is not None and split[1] is not None else (None, None)
    return Dataset(str(root), x_train, y_train, x_test, y_test, classes, x_val=x_val, y_val=y_val)


def _checked_options(
    image_size: int | Sequence[int] | None, test_fraction: float, seed: int
) -> tuple[int, int] | None:
    """``image_size`` as (H, W) (None: the images' own), once the options' ranges are checked."""
    if not 0.0 <= test_fraction < 1.0:
        raise DataError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise DataError(f"seed must be a whole number in [0, 2**63), got {seed!r}")
    return None if image_size is None else _pair(image_size)


Files = list[tuple[Path, int]]  # (image path, class index)


def _list_files(
    root: Path, split: tuple[Path, Path | None, Path] | None, test_fraction: float, seed: int
) -> tuple[list[str], Files, Files, Files]:
    """The class names and the (path, class) pairs of the train, validation and test splits:
    from the split folders, or, in a flat tree, each class's files permuted with
    ``torch.Generator().manual_seed(seed)`` and the first ``round(n * test_fraction)`` tested."""
    train_files: Files = []
    val_files: Files = []
    test_files: Files = []
    if split is not None:
        train_dir, val_dir, test_dir = split
        classes = _classes_in(train_dir)
        for other in (val_dir, test_dir):
            for name in _classes_in(other) if other is not None else ():
                if name not in classes:
                    raise DataError(f"{other / name}: class {name!r} has no folder in {train_dir}")
        for k, name in enumerate(classes):
            train_files += [(p, k) for p in _images_in(train_dir / name)]
            for other, files in ((val_dir, val_files), (test_dir, test_files)):
                if other is not None and (other / name).is_dir():
                    files += [(p, k) for p in _images_in(other / name)]
        return classes, train_files, val_files, test_files
    classes = _classes_in(root)
    if not classes:
        raise DataError(
            f"{root}: no class sub-folders (expected {root}/<class>/*.png or "
            f"{root}/train/<class>/ and {root}/test/<class>/)"
        )
    g = torch.Generator().manual_seed(seed)
    for k, name in enumerate(classes):
        files = _images_in(root / name)
        order = torch.randperm(len(files), generator=g).tolist()
        n_test = int(round(len(files) * test_fraction))
        test_files += [(files[i], k) for i in sorted(order[:n_test])]
        train_files += [(files[i], k) for i in sorted(order[n_test:])]
    return classes, train_files, val_files, test_files


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from an int or a pair, each side a whole number in 1..MAX_IMAGE_SIDE."""
    sides = list(size) if isinstance(size, (list, tuple)) else [size]
    if len(sides) not in (1, 2) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 1 <= v <= MAX_IMAGE_SIDE
        for v in sides
    ):
        raise DataError(
            f"image_size {size!r}: give H x W (or one side) in pixels, each 1..{MAX_IMAGE_SIDE} "
            "(a longer side is a typo)"
        )
    return int(sides[0]), int(sides[-1])


def _decode_all(
    paths: list[Path], size: tuple[int, int] | None, progress: bool
) -> list[np.ndarray | str]:
    """Decode in threads (PIL releases the GIL while decoding), keeping the order of ``paths``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    workers = min(8, os.cpu_count() or 1)
    results: list[np.ndarray | str] = []
    columns = (
        TextColumn("decoding images"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with (
        ThreadPoolExecutor(workers) as pool,
        Progress(*columns, transient=True, disable=not progress or len(paths) < 500) as bar,
    ):
        task = bar.add_task("decode", total=len(paths))
        for r in pool.map(lambda p: _decode(p, size), paths, chunksize=16):
            results.append(r)
            bar.advance(task)
    return results
