"""CIFAR-10 / CIFAR-100 "python version" batches, from the official tar.gz or its extracted folder.

Each batch is a pickled dict: ``data`` a uint8 array (N, 3072) holding each image as
1024 red, then 1024 green, then 1024 blue values (row-major 32x32), and ``labels``
(CIFAR-10) or ``fine_labels`` / ``coarse_labels`` (CIFAR-100). The class names are in
``batches.meta`` (``label_names``) or ``meta`` (``fine_label_names``).

The batches are pickles, so they are read with an unpickler that only rebuilds numpy arrays
and plain Python values: a doctored file cannot run code.
"""

from __future__ import annotations

import contextlib
import io
import json
import pickle
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..io import save_tensors
from .dataset import Dataset

# (module, name) pairs a CIFAR batch may reference: numpy's array reconstruction, nothing else
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}

# the official layouts: folder inside the archive -> (train batches, test batch, meta file, label key)
LAYOUTS = {
    "cifar-10-batches-py": (
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        "labels",
    ),
    "cifar-100-python": (["train"], "test", "meta", "fine_labels"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        # latin1 lets numpy arrays pickled by Python 2 (the official files) load as bytes
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:
        raise DataError(f"{where}: not a CIFAR python batch ({e})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR python batch (holds a {type(obj).__name__})")
    # Python 3 pickles may use bytes keys; make them str
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _images_labels(batch: dict, label_key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{where}: a CIFAR batch needs 'data' and '{label_key}' entries")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{where}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise DataError(f"{where}: {data.shape[0]} images but {labels.shape[0]} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _class_names(meta: dict, label_key: str, where: str) -> list[str]:
    key = "label_names" if label_key == "labels" else label_key.replace("labels", "label_names")
    if key not in meta:
        raise DataError(f"{where}: the meta file has no '{key}'")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]


def _build(read: Callable[[str], bytes], prefix: str, name: str, where: str) -> Dataset:
    train_files, test_file, meta_file, label_key = LAYOUTS[prefix]
    xs, ys = [], []
    for f in train_files:
        x, y = _images_labels(_unpickle(read(f), f"{where}/{f}"), label_key, f"{where}/{f}")
        xs.append(x)
        ys.append(y)
    x_test, y_test = _images_labels(
        _unpickle(read(test_file), f"{where}/{test_file}"), label_key, where
    )
    classes = _class_names(_unpickle(read(meta_file), f"{where}/{meta_file}"), label_key, where)
    return Dataset(
        name=name,
        x_train=torch.from_numpy(np.concatenate(xs)),
        y_train=torch.from_numpy(np.concatenate(ys)),
        x_test=torch.from_numpy(np.ascontiguousarray(x_test)),
        y_test=torch.from_numpy(y_test),
        classes=classes,
    )


def find_cifar_folder(path: Path) -> tuple[Path, str] | None:
    """``(folder, layout)`` if ``path`` is or contains an extracted CIFAR folder."""
    for candidate in (path, *(path / p for p in LAYOUTS)):
        for prefix, (train_files, test_file, meta_file, _) in LAYOUTS.items():
            files = [*train_files, test_file, meta_file]
            if candidate.is_dir() and all((candidate / f).is_file() for f in files):
                return candidate, prefix
    return None


def load_cifar_folder(path: str | Path, name: str | None = None) -> Dataset:
    """Load an extracted ``cifar-10-batches-py`` or ``cifar-100-python`` folder."""
    path = Path(path)
    found = find_cifar_folder(path)
    if found is None:
        raise DataError(
            f"{path}: not a CIFAR folder (needs data_batch_1..5, test_batch, batches.meta "
            "for CIFAR-10, or train, test, meta for CIFAR-100)"
        )
    folder, prefix = found
    return _build(lambda f: (folder / f).read_bytes(), prefix, name or str(path), str(folder))


def load_cifar_archive(path: str | Path, name: str | None = None) -> Dataset:
    """Load the official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz`` without extracting it.

    Decompressing and decoding the archive takes about 3 s, so the decoded arrays are kept
    beside it in ``ARCHIVE.decoded.safetensors`` (uint8 images and labels, stamped with the
    archive's size and modification time) and read from there while the archive is unchanged.
    A folder that cannot be written just goes without.
    """
    path = Path(path)
    cache = path.with_name(path.name + ".decoded.safetensors")
    stamp = _stamp(path)
    cached = _read_cache(cache, stamp)
    if cached is not None:
        x_train, y_train, x_test, y_test, classes = cached
        return Dataset(name or str(path), x_train, y_train, x_test, y_test, classes)
    data = _decode_archive(path, name)
    with contextlib.suppress(OSError):
        save_tensors(
            cache,
            {k: getattr(data, k) for k in ("x_train", "y_train", "x_test", "y_test")},
            metadata={"stamp": stamp, "classes": json.dumps(data.classes)},
        )
    return data


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError as e:
        raise DataError(f"{path}: cannot read the archive ({e})") from None
    return f"{st.st_size}:{st.st_mtime_ns}"


def _read_cache(cache: Path, stamp: str):
    """(x_train, y_train, x_test, y_test, classes) from a cache matching ``stamp``, else None."""
    if not cache.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(cache), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("stamp") != stamp:
                return None
            arrays = [f.get_tensor(k) for k in ("x_train", "y_train", "x_test", "y_test")]
        classes = json.loads(meta["classes"])
    except Exception:  # a damaged or foreign cache is ignored and rewritten
        return None
    return (*arrays, classes)


def _decode_archive(path: Path, name: str | None) -> Dataset:
    wanted = {f"{p}/{f}" for p, (tr, te, me, _) in LAYOUTS.items() for f in (*tr, te, me)}
    blobs: dict[str, bytes] = {}
    try:
        # one pass in stream order: seeking back in a gzip stream would decompress it again
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if member.isfile() and name in wanted:
                    fobj = tar.extractfile(member)
                    assert fobj is not None  # isfile() members always extract
                    blobs[name] = fobj.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise DataError(f"{path}: cannot read the archive ({e}); download it again") from None
    prefix = next((p for p, (tr, te, me, _) in LAYOUTS.items() if f"{p}/{me}" in blobs), None)
    if prefix is None:
        raise DataError(
            f"{path}: not a CIFAR python archive (no cifar-10-batches-py/batches.meta "
            "or cifar-100-python/meta inside)"
        )

    def read(f: str) -> bytes:
        if f"{prefix}/{f}" not in blobs:
            raise DataError(f"{path}: {prefix}/{f} is missing from the archive")
        return blobs.pop(f"{prefix}/{f}")  # pop: free each batch's bytes once it is decoded

    return _build(read, prefix, name or str(path), str(path))
