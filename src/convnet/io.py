"""Atomic file writing and safe weight loading, shared by every feature that touches disk.

A file is written to a temporary name in the same folder, flushed and fsynced, then renamed
over the target, so a crash never leaves a half-written file where a good one was. Weights are
read with safetensors or ``torch.load(weights_only=True)``: never a full unpickle.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import WeightsError


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def load_error_reason(e: BaseException) -> str:
    """A one-line reason for a failed ``torch.load(weights_only=True)``: the refused Python object
    when the file pickles one (torch's own message is a paragraph), else the first line."""
    import re

    text = str(e)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if "Weights only load failed" in text:
        what = f" ({found.group(1)})" if found else ""
        return f"it pickles Python objects{what}, which loading never runs"
    return (text.strip().splitlines() or [type(e).__name__])[0]


def check_writable(path: str | os.PathLike, folder: bool = False, flag: str = "-o") -> None:
    """Refuse, before any work is done, an output ``path`` that cannot be written.

    ``folder``: ``path`` is a folder to create or fill (a run folder), else a file. Raises
    :class:`ConvnetError` naming ``flag`` when ``path`` is a folder where a file belongs (or the
    reverse), when a part of it is a file, or when its nearest existing folder refuses a new
    file (read-only, no permission; probed by creating and removing an empty temporary file,
    as root may write where the mode bits say no). Creates nothing that stays.
    """
    from .errors import ConvnetError

    path = Path(path)
    if path.is_dir() and not folder:
        raise ConvnetError(f"{flag} {path}: is a folder; give a file name, e.g. {path / 'out'}")
    if path.exists() and not path.is_dir() and folder:
        raise ConvnetError(f"{flag} {path}: is a file; give a folder")
    parent = path if folder and path.is_dir() else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConvnetError(f"{flag} {path}: {parent} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".convnet-probe.", dir=parent)
    except OSError as e:
        raise ConvnetError(
            f"{flag} {path}: cannot write in {parent} ({e.strerror or e}); choose another path"
        ) from None
    os.close(fd)
    os.unlink(probe)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def save_tensors(
    path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None
) -> None:
    """Save a flat dict of tensors atomically: safetensors for ``.safetensors``, else torch.save."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        atomic_write_bytes(path, save(flat, metadata=metadata))
    else:
        with atomic_open(path, "wb") as f:
            torch.save(tensors, f)


def load_tensors(path: str | os.PathLike, map_location: str = "cpu") -> dict:
    """Load a state dict from ``.safetensors`` or a ``.pt``/``.pth`` file, never unpickling objects."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"weight file not found: {path} (give the path of a .safetensors or .pth file)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=map_location)
        except Exception as e:  # safetensors raises its own error types
            raise WeightsError(f"{path}: not a valid safetensors file ({e})") from None
    try:
        with warnings.catch_warnings():  # torch's note on a pickle protocol is not the user's
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = load_error_reason(e)
        raise WeightsError(
            f"{path}: cannot be loaded safely with weights_only=True ({first}); "
            "save it as a plain state dict or as .safetensors"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    return obj
