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
import math
import pickle
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..io import save_tensors
from ..limits import MAX_ARRAY_BYTES, MAX_CLASSES, MAX_DEFLATE_RATIO
from .dataset import Dataset, check_bytes, check_labels

# what a pickled numpy array may hold: plain numbers and byte/text strings, never objects
_ARRAY_KINDS = "biufSU"
_PLACEHOLDER_BYTES = 64  # numpy pickles an empty (0,) array, then fills it from the state


class _CheckedArray(np.ndarray):
    """The array a pickle rebuilds, checked before numpy allocates it.

    numpy pickles an array as ``_reconstruct(ndarray, (0,), 'b')`` followed by
    ``__setstate__((version, shape, dtype, fortran, raw bytes))``. Here the shape, the type and
    the byte count are checked first: the shape's product (in Python integers) times the item
    size must equal the raw bytes the pickle really holds, so an array is never larger than
    the file, and never over ``MAX_ARRAY_BYTES``.
    """

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("malformed numpy array state")
        shape, dtype, _, raw = state[-4:]
        _check_array(shape, dtype, raw)
        super().__setstate__(state)


def _check_array(shape: object, dtype: object, raw: object) -> None:
    """Refuse an array state unless ``raw`` holds exactly its prod(shape) x itemsize bytes."""
    if not isinstance(shape, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise pickle.UnpicklingError(f"array shape {shape!r} is not a tuple of sizes")
    if not isinstance(dtype, np.dtype) or dtype.kind not in _ARRAY_KINDS:
        raise pickle.UnpicklingError(f"array type {dtype!r} is not numbers or strings")
    nbytes = math.prod(shape) * dtype.itemsize  # Python integers: no wrap-around
    if math.prod(max(d, 1) for d in shape) * dtype.itemsize > MAX_ARRAY_BYTES:
        raise pickle.UnpicklingError(f"a {shape} array of {dtype} is over the size cap")
    held = len(raw) if isinstance(raw, (bytes, bytearray, str)) else None
    if held != nbytes:
        raise pickle.UnpicklingError(
            f"a {shape} array of {dtype} needs {nbytes:,} bytes, the pickle holds "
            f"{type(raw).__name__ if held is None else f'{held:,}'}"
        )


def _frombuffer(raw, dtype, shape, order="C") -> np.ndarray:
    """numpy's ``_frombuffer``: how protocol-5 pickles store an array (its bytes, then shape)."""
    _check_array(shape, dtype, raw)
    if order not in ("C", "F") or isinstance(raw, str):
        raise pickle.UnpicklingError(f"malformed protocol-5 array (order {order!r})")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order)


class _NdarrayName:
    """What ``numpy.ndarray`` names in a pickle: an argument of ``_reconstruct`` only. The real
    class is not handed out, since a pickle could call it with any shape and allocate."""


_NDARRAY = _NdarrayName()


def _reconstruct(subtype, shape, dtype) -> np.ndarray:
    """numpy's ``_reconstruct``, for the empty placeholder numpy writes and nothing larger."""
    if subtype is not _NDARRAY or not isinstance(shape, tuple) or len(shape) != 1:
        raise pickle.UnpicklingError(f"refusing to rebuild an array of shape {shape!r}")
    if not isinstance(shape[0], int) or not 0 <= shape[0] <= _PLACEHOLDER_BYTES:
        raise pickle.UnpicklingError(f"refusing to allocate an array of shape {shape!r}")
    return _CheckedArray(shape, np.uint8)


def _dtype(spec, align=False, copy=False) -> np.dtype:
    """numpy's ``dtype``, for plain number and string types only (no objects, no records)."""
    if not isinstance(spec, str) or len(spec) > 8:
        raise pickle.UnpicklingError(f"refusing the numpy type {spec!r}")
    try:
        dtype = np.dtype(spec)
    except TypeError as e:
        raise pickle.UnpicklingError(f"unknown numpy type {spec!r} ({e})") from None
    if dtype.kind not in _ARRAY_KINDS:
        raise pickle.UnpicklingError(f"refusing the numpy type {spec!r}")
    return dtype


def _scalar(dtype, raw=None):
    """numpy's ``scalar``: one number from its bytes (how np.int64(3) pickles)."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf":
        raise pickle.UnpicklingError(f"refusing a numpy scalar of type {dtype!r}")
    raw = raw.encode("latin1") if isinstance(raw, str) else raw
    if not isinstance(raw, bytes) or len(raw) != dtype.itemsize:
        raise pickle.UnpicklingError(f"a {dtype} scalar needs {dtype.itemsize} bytes")
    return np.frombuffer(raw, dtype=dtype)[0]


def _encode(text, encoding="utf-8") -> bytes:
    """``_codecs.encode`` as numpy's pickles use it: a str's code points as latin-1 bytes.

    Only that: other codecs (hex, base64) grow their input, and a chain of them would let a
    small file ask for gigabytes.
    """
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


# (module, name) a CIFAR batch may reference -> the checked stand-in the unpickler returns
_MULTIARRAY = ("numpy.core.multiarray", "numpy._core.multiarray")  # numpy 1.x, 2.x
_ALLOWED: dict[tuple[str, str], object] = {
    **{(m, "_reconstruct"): _reconstruct for m in _MULTIARRAY},
    **{(m, "scalar"): _scalar for m in _MULTIARRAY},
    **{(m, "_frombuffer"): _frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
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
    """Rebuilds dicts, lists, numbers, strings and checked numpy arrays; nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return _ALLOWED[module, name]


def _unpickle(raw: bytes, where: str) -> dict:
    try:
        # latin1 lets numpy arrays pickled by Python 2 (the official files) load as bytes
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except MemoryError:
        # the C unpickler sizes a bytes object by its declared length before reading it
        raise DataError(
            f"{where}: not a CIFAR python batch (declares more data than the file holds)"
        ) from None
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]  # pickle's can be long
        raise DataError(f"{where}: not a CIFAR python batch ({first})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR python batch (holds a {type(obj).__name__})")
    # Python 3 pickles may use bytes keys; make them str
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _images_labels(batch: dict, label_key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, 32, 32) uint8 images and (N,) int64 labels, each checked for type and size."""
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{where}: a CIFAR batch needs 'data' and '{label_key}' entries")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape[1:] != (3072,):
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{where}: 'data' must be a uint8 (N, 3072) array, got {what}")
    labels = batch[label_key]
    if isinstance(labels, (list, tuple)):
        if not all(isinstance(v, (int, np.integer)) and type(v) is not bool for v in labels):
            raise DataError(f"{where}: '{label_key}' must be a list of whole numbers")
        labels = np.array(labels) if labels else np.zeros(0, np.int64)
    if not isinstance(labels, np.ndarray):
        raise DataError(f"{where}: '{label_key}' must be a list of whole numbers")
    check_labels(labels, f"{where}: '{label_key}'")  # integers in [0, MAX_CLASSES)
    if labels.shape != (data.shape[0],):
        raise DataError(f"{where}: {data.shape[0]} images but {labels.shape[0]} labels")
    # np.asarray: a plain ndarray view of the unpickler's checked subclass
    return np.asarray(data).reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _class_names(meta: dict, label_key: str, where: str) -> list[str]:
    key = "label_names" if label_key == "labels" else label_key.replace("labels", "label_names")
    if key not in meta:
        raise DataError(f"{where}: the meta file has no '{key}'")
    names = meta[key]
    if (
        not isinstance(names, (list, tuple))
        or not all(isinstance(n, (str, bytes)) for n in names)
        or not 0 < len(names) <= MAX_CLASSES
    ):
        raise DataError(
            f"{where}: the meta file's '{key}' must be a list of 1 to {MAX_CLASSES:,} class names"
        )
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def _read_file(path: Path) -> bytes:
    """A batch file's bytes, its size checked against the cap first."""
    try:
        check_bytes(path.stat().st_size, str(path), "the batch file")
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None


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
    return _build(lambda f: _read_file(folder / f), prefix, name or str(path), str(folder))


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
    x_train, y_train, x_test, y_test = arrays
    well_formed = (
        all(x.dtype == torch.uint8 and x.dim() == 4 for x in (x_train, x_test))
        and all(y.dtype == torch.int64 and y.dim() == 1 for y in (y_train, y_test))
        and isinstance(classes, list)
        and 0 < len(classes) <= MAX_CLASSES
        and all(isinstance(c, str) for c in classes)
    )
    return (*arrays, classes) if well_formed else None


def _decode_archive(path: Path, name: str | None) -> Dataset:
    wanted = {f"{p}/{f}" for p, (tr, te, me, _) in LAYOUTS.items() for f in (*tr, te, me)}
    blobs: dict[str, bytes] = {}
    try:
        # a member can be no larger than the archive (raw) or deflate's reach of it (gzip)
        reach = path.stat().st_size * MAX_DEFLATE_RATIO
        # one pass in stream order: seeking back in a gzip stream would decompress it again
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                member_name = member.name.removeprefix("./")
                if member.isfile() and member_name in wanted:
                    check_bytes(member.size, f"{path}: {member_name}", "the member")
                    if member.size > reach:
                        raise DataError(
                            f"{path}: {member_name} claims {member.size:,} bytes, more than an "
                            "archive of this size can hold; download it again"
                        )
                    fobj = tar.extractfile(member)
                    assert fobj is not None  # isfile() members always extract
                    blobs[member_name] = fobj.read()
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
