"""Convolution forward and backward as plain loops: the formula, one dot product per output.

The readable definition that the im2col version (:mod:`.functional_conv`, whose docstring gives
the shapes, output size and formula) and the fast one (:mod:`.functional_conv_fast`) are checked
against. Slow on purpose; it warns with :class:`SlowPathWarning` when a call would loop more
than ``NAIVE_WARN_ITERATIONS`` times.
"""

from __future__ import annotations

import warnings

import numpy as np

from .functional_conv import ConvCache, _args, _check
from .im2col import Pair, conv_geometry, pad_nchw

__all__ = ["SlowPathWarning", "conv2d_backward_naive", "conv2d_forward_naive"]

# Python-level loop iterations above which the naive versions warn that they will be slow.
NAIVE_WARN_ITERATIONS = 50_000


class SlowPathWarning(UserWarning):
    """A naive (Python loop) reference function was called on an input large enough to be slow."""


def conv2d_forward_naive(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, ConvCache]:
    """The formula above as loops over (n, k, i, j): one dot product per output value.

    Slow on purpose (it is the readable definition); warns with :class:`SlowPathWarning` when
    the loop would run more than ``NAIVE_WARN_ITERATIONS`` times.
    """
    _check(x, w, b, groups)
    stride, padding, dilation = _args(stride, padding, dilation)
    (sh, sw), (dh, dw) = stride, dilation
    n, _, _, _ = x.shape
    k, cg, kh, kw = w.shape
    oh, ow = conv_geometry(x.shape, (kh, kw), stride, padding, dilation)
    if n * k * oh * ow > NAIVE_WARN_ITERATIONS:
        warnings.warn(
            f"conv2d_forward_naive runs {n * k * oh * ow:,} Python iterations; "
            "use conv2d_forward (im2col + GEMM) for inputs this large",
            SlowPathWarning,
            stacklevel=2,
        )
    xp = pad_nchw(x, padding)
    kg = k // groups
    out = np.zeros((n, k, oh, ow), dtype=np.result_type(x, w))
    for ni in range(n):
        for ki in range(k):
            c0 = (ki // kg) * cg
            for i in range(oh):
                for j in range(ow):
                    field = xp[
                        ni,
                        c0 : c0 + cg,
                        i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                        j * sw : j * sw + dw * (kw - 1) + 1 : dw,
                    ]
                    out[ni, ki, i, j] = np.sum(field * w[ki]) + (b[ki] if b is not None else 0.0)
    return out, ConvCache(x.shape, x, w, b is not None, stride, padding, dilation, groups)


def conv2d_backward_naive(
    dout: np.ndarray, cache: ConvCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Loops again: every output value sends ``dout * w`` to its field and ``dout * field`` to w.

    Parameter sharing shows here: dw[k] is a *sum* over all positions (n, i, j) that used it.
    """
    x, w = cache.x, cache.w
    (sh, sw), (dh, dw_), groups = cache.stride, cache.dilation, cache.groups
    n, k, oh, ow = dout.shape
    _, cg, kh, kw = w.shape
    if n * k * oh * ow > NAIVE_WARN_ITERATIONS:
        warnings.warn(
            f"conv2d_backward_naive runs {n * k * oh * ow:,} Python iterations; use conv2d_backward",
            SlowPathWarning,
            stacklevel=2,
        )
    xp = pad_nchw(x, cache.padding)
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    kg = k // groups
    for ni in range(n):
        for ki in range(k):
            c0 = (ki // kg) * cg
            for i in range(oh):
                for j in range(ow):
                    hs = slice(i * sh, i * sh + dh * (kh - 1) + 1, dh)
                    ws = slice(j * sw, j * sw + dw_ * (kw - 1) + 1, dw_)
                    g = dout[ni, ki, i, j]
                    dw[ki] += g * xp[ni, c0 : c0 + cg, hs, ws]
                    dxp[ni, c0 : c0 + cg, hs, ws] += g * w[ki]
    ph, pw = cache.padding
    h, wd = x.shape[2:]
    dx = dxp[:, :, ph : ph + h, pw : pw + wd]
    db = dout.sum(axis=(0, 2, 3)) if cache.has_bias else None
    return np.ascontiguousarray(dx), dw, db
