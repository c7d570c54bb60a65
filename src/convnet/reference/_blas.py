"""Limit the BLAS threads NumPy's matrix products use, for a block of code (best effort).

A small network's GEMMs (LeNet-5's are a few million multiply-adds) finish faster than the
BLAS library can hand work to a second thread, and on a busy machine the hand-off can cost
several times the product itself. ``blas_threads(1)`` runs such training single-threaded.

NumPy's wheels ship OpenBLAS under a prefixed name; this finds its ``set_num_threads`` by
ctypes. Where no OpenBLAS is found (another BLAS, another platform) the limit is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from collections.abc import Iterator
from functools import cache

import numpy as np

_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads",
)
_GETTERS = (
    "scipy_openblas_get_num_threads64_",
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads",
)


@cache
def _openblas():
    """(get, set) functions of the OpenBLAS NumPy uses, or None."""
    libs_dir = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    candidates = glob.glob(os.path.join(libs_dir, "*openblas*"))
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for s_name, g_name in zip(_SETTERS, _GETTERS):
            setter, getter = getattr(lib, s_name, None), getattr(lib, g_name, None)
            if setter is not None and getter is not None:
                setter.argtypes, getter.restype = [ctypes.c_int], ctypes.c_int
                return getter, setter
    return None


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Run the block with at most ``n`` BLAS threads (``None``: leave the setting alone)."""
    fns = _openblas() if n is not None else None
    if fns is None:
        yield
        return
    get, set_ = fns
    old = get()
    set_(int(n))
    try:
        yield
    finally:
        set_(old)
