"""Reusable scratch buffers for the fast convolution's temporaries.

A NumPy array of a few MB is fresh memory from the operating system on every call (glibc maps
it, and unmaps it again on free), and the first touch of each 4 KiB page costs a fault: for the
first layer's 20 MB column gradient that was a third of the whole backward pass. oneDNN keeps a
scratchpad for the same reason. Only temporaries that die inside the function asking for them
come from here, never a result or anything a cache keeps for backward. Buffers above
``MAX_BYTES`` are not kept (holding a huge layer's scratch would cost more than its faults), so
a thread holds at most one buffer of 64 MiB per name (about ten names); :func:`release` frees
them.
"""

from __future__ import annotations

import threading

import numpy as np

MAX_BYTES = 64 * 2**20


class _Pool(threading.local):
    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}


_POOL = _Pool()


def scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialized array of ``shape``, reusing the last buffer called ``name`` when it fits.

    Two live temporaries must have different names; a later call with the same name (on this
    thread) overwrites the earlier array's contents.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    if size * dtype.itemsize > MAX_BYTES:
        return np.empty(shape, dtype)
    buf = _POOL.buffers.get(name)
    if buf is None or buf.dtype != dtype or buf.size < size:
        _POOL.buffers.pop(name, None)  # let the old one go before the new one is made
        buf = _POOL.buffers[name] = np.empty(size, dtype)
    return buf[:size].reshape(shape)


def release() -> None:
    """Free every scratch buffer this thread holds."""
    _POOL.buffers.clear()
