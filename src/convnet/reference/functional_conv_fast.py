"""The convolution the engine's layers run: the results of :mod:`.functional_conv`, faster.

:mod:`.functional_conv` is the recipe (im2col, one GEMM, col2im). This file computes the same
convolution, with the same shapes, arguments and cache contract, but picks per layer and group
the fastest of six ways ("modes") to do it:

============  ==============================================  ==================================
mode          taken when                                      forward
============  ==============================================  ==================================
``1x1-chw``   1x1 kernel, stride 1, no padding                ``W @ x`` per image: x is already
                                                              its own column matrix
``1x1-hwc``   the same, on a channels-last input              ``x_rows @ W.T``
``winograd``  3x3, stride 1, no dilation, C and K >= 16       Winograd's F(4x4, 3x3),
                                                              :mod:`.winograd`: 4x fewer MACs
``chw_t``     C <= OW (first layers, wide images)             the notes' ``W_row @ X_col``
``hwc``       C > OW and C >= kw (deep layers, small images)  ``cols @ W.T``, (kh, kw, C) columns
``chw``       the rest                                        ``cols @ W.T``, (C, kh, kw) columns
============  ==============================================  ==================================

(:func:`conv_algorithm` turns Winograd off, or on for shallow inputs too.) The layout rule
prefers the column order whose innermost copied run is longest, see :func:`choose_layout`.

Three more things make it fast, each explained where it happens:

- temporaries come from reused scratch buffers (:mod:`._scratch`: fresh pages fault on first
  touch);
- "hwc", "1x1-hwc" and "winograd" return (N, K, OH, OW) *views* of channels-last memory, which
  the next convolution reads without a copy; NCHW -> NHWC copies are staged (:mod:`.nhwc`);
- at stride 1 the input gradient is the convolution of dout with the flipped filters
  (:func:`~.functional_conv.conv2d_input_grad_flipped`), itself fast (Winograd for 3x3), which
  saves col2im's kh*kw strided adds when K <= C.

>>> rng = np.random.default_rng(0)
>>> x, w = rng.standard_normal((2, 16, 8, 8)), rng.standard_normal((16, 16, 3, 3))
>>> out, cache = conv2d_forward(x, w, None, padding=1)
>>> [mode for mode, _ in cache.cols]
['winograd']
>>> from convnet.reference.functional_conv import conv2d_forward_im2col
>>> bool(np.allclose(out, conv2d_forward_im2col(x, w, None, padding=1)[0]))
True
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ._scratch import scratch
from .functional_conv import ConvCache, _args, _check, conv2d_input_grad_flipped
from .im2col import Pair, col2im, col2im_t, conv_geometry, im2col, im2col_t
from .nhwc import copy_to_nhwc, is_nhwc
from .winograd import applies as winograd_applies
from .winograd import pays as winograd_pays
from .winograd import winograd_conv3x3, winograd_weight_grad

__all__ = ["FastConvCache", "conv2d_backward", "conv2d_forward", "conv_algorithm"]

ALGORITHMS = ("auto", "im2col", "winograd")
_ALGORITHM: contextvars.ContextVar[str] = contextvars.ContextVar("conv_algorithm", default="auto")


@contextlib.contextmanager
def conv_algorithm(name: str) -> Iterator[None]:
    """Choose how the fast convolution computes, inside a ``with`` block.

    ``"auto"`` (the default): Winograd's F(4x4, 3x3) for 3x3 stride-1 convolutions on inputs
    deep enough for it to pay (see :mod:`.winograd`), im2col + GEMM for everything else.
    ``"im2col"``: always im2col, whose sums run in the same order as a direct convolution's
    (the closest float32 match to torch). ``"winograd"``: Winograd wherever it applies, even on
    shallow inputs (to study it); other shapes still use im2col.
    """
    if name not in ALGORITHMS:
        raise ValueError(f"conv algorithm must be one of {', '.join(ALGORITHMS)}; got {name!r}")
    token = _ALGORITHM.set(name)
    try:
        yield
    finally:
        _ALGORITHM.reset(token)


@dataclass
class FastConvCache(ConvCache):
    """:class:`ConvCache` plus, per group, ``(mode, what its backward reads)``."""

    cols: list[tuple[str, np.ndarray]] = field(default_factory=list)


class _Spec(NamedTuple):
    stride: Pair
    padding: Pair
    dilation: Pair


def choose_layout(channels: int, kernel_w: int, out_w: int) -> str:
    """Pick the im2col column layout: ``"chw_t"``, ``"hwc"`` or ``"chw"``.

    The one whose innermost copied run is longest (see :mod:`.im2col`): OW values for
    ``"chw_t"``, C for ``"hwc"``, kw for ``"chw"``; ties go to ``"chw_t"``, which also skips
    the channels-last transpose of an NCHW input and whose GEMM ``w_matrix @ cols_t`` runs a
    little faster in OpenBLAS. So first layers (C = 3) and wide images use ``"chw_t"``, deep
    layers with many channels on small images use ``"hwc"``.
    """
    if channels <= out_w:
        return "chw_t"
    return "hwc" if channels >= kernel_w else "chw"


def choose_mode(x: np.ndarray, w_shape: tuple[int, ...], spec: _Spec) -> str:
    """The mode (see the module docstring) for one group: x (N, C, H, W), w (K, C, kh, kw)."""
    k, c, kh, kw = w_shape
    if (kh, kw) == (1, 1) and spec.stride == (1, 1) and spec.padding == (0, 0):
        return "1x1-hwc" if is_nhwc(x) else "1x1-chw"
    algorithm = _ALGORITHM.get()
    if (
        algorithm != "im2col"
        and winograd_applies((kh, kw), spec.stride, spec.dilation)
        and (algorithm == "winograd" or winograd_pays(c, k))
    ):
        return "winograd"
    ow = conv_geometry(x.shape, (kh, kw), *spec)[1]
    return choose_layout(c, kw, ow)


def _w_matrix(w: np.ndarray, layout: str) -> np.ndarray:
    """w (K, C, kh, kw) as the (K, C*kh*kw) matrix whose columns match ``layout``'s."""
    k = w.shape[0]
    return (
        w.reshape(k, -1) if layout in ("chw", "chw_t") else w.transpose(0, 2, 3, 1).reshape(k, -1)
    )


def _dout_rows(dout: np.ndarray) -> np.ndarray:
    """dout (N, K, OH, OW) as (N*OH*OW, K): free when dout is a channels-last view."""
    return dout.transpose(0, 2, 3, 1).reshape(-1, dout.shape[1])


# ------------------------------------------------------------------- forward, one per mode
# Each takes one group's x (N, C, H, W), w (K, C, kh, kw), b (K,) or None and the spec, and
# returns (out (N, K, OH, OW), what backward reads).


def _forward_1x1_chw(x, w, b, spec):
    # a 1x1 convolution is a dot product over depth at every pixel (the notes' 1x1 case):
    # x itself is the column matrix, so no im2col is needed
    n, c, h, wd = x.shape
    k = w.shape[0]
    x3 = x.reshape(n, c, h * wd)
    out = np.matmul(w.reshape(k, c), x3)  # (N, K, H*W)
    if b is not None:
        out += b[:, None]
    return out.reshape(n, k, h, wd), x3


def _forward_1x1_hwc(x, w, b, spec):
    n, c, h, wd = x.shape
    k = w.shape[0]
    xm = x.transpose(0, 2, 3, 1).reshape(n * h * wd, c)  # free: x is channels-last
    out = xm @ w.reshape(k, c).T
    if b is not None:
        out += b  # along the contiguous last axis, before the layout becomes a view
    return out.reshape(n, h, wd, k).transpose(0, 3, 1, 2), xm


def _forward_winograd(x, w, b, spec):
    # 4x fewer multiply-adds than im2col's GEMM. The transformed input tiles are kept: the
    # weight gradient reuses them
    out, v = winograd_conv3x3(x, w, spec.padding)
    if b is not None:
        out += b[:, None, None]  # out is an (N, K, OH, OW) view of channels-last memory
    return out, v


def _forward_chw_t(x, w, b, spec):
    # the notes' form, out_row = W_row @ X_col: a (K, N*OH*OW) result whose rows are whole
    # output planes; both operands are contiguous, so BLAS reads them as they are
    n, k = x.shape[0], w.shape[0]
    oh, ow = conv_geometry(x.shape, w.shape[2:], *spec)
    cols_t = im2col_t(x, w.shape[2:], *spec)
    out_t = scratch("conv.out_t", (k, cols_t.shape[1]), np.result_type(x, w))
    np.matmul(_w_matrix(w, "chw_t"), cols_t, out=out_t)
    # (K, N, OH, OW) -> NCHW: a copy of whole OH*OW planes, cheap next to the GEMM, that adds
    # the bias on the way. out_t is scratch, so this is always a new array
    planes = out_t.reshape(k, n, oh, ow).transpose(1, 0, 2, 3)
    if b is None:
        return planes.copy(), cols_t
    return np.add(planes, b[:, None, None], order="C"), cols_t


def _forward_cols(layout: str) -> Callable:
    """The forward of the "hwc" and "chw" modes: ``out_matrix = cols @ w_matrix.T``."""

    def forward(x, w, b, spec):
        n, k = x.shape[0], w.shape[0]
        oh, ow = conv_geometry(x.shape, w.shape[2:], *spec)
        cols = im2col(x, w.shape[2:], *spec, layout)  # (N*OH*OW, C*kh*kw)
        out = cols @ _w_matrix(w, layout).T
        if b is not None:
            out += b  # along the contiguous last axis, before the layout becomes a view
        # an (N, K, OH, OW) view of channels-last memory, which the next "hwc" conv reads as is
        return out.reshape(n, oh, ow, k).transpose(0, 3, 1, 2), cols

    return forward


# ------------------------------------------------------------------ backward, one per mode
# Each takes one group's dout (N, K, OH, OW), w, what its forward kept, the group's input
# shape (N, C, H, W) and the spec, and returns (dx (N, C, H, W), dw (K, C, kh, kw)).


def _flipped_ok(spec: _Spec, kernel: Pair, in_hw: Pair, out_hw: Pair) -> bool:
    """Whether dx can be computed as a plain stride-1 convolution with the flipped filters."""
    if spec.stride != (1, 1):
        return False
    for k, p, d, size, o in zip(kernel, spec.padding, spec.dilation, in_hw, out_hw):
        if p > d * (k - 1) or o + d * (k - 1) - 2 * p != size:
            return False
    return True


def _dx_flipped(dout: np.ndarray, w: np.ndarray, spec: _Spec) -> np.ndarray:
    return conv2d_input_grad_flipped(dout, w, spec.padding, spec.dilation, conv2d_forward)


def _col2im_t(dcols_t: np.ndarray, x_shape, kernel: Pair, spec: _Spec) -> np.ndarray:
    """col2im_t adding into a reused buffer: the first layer's is tens of MB of fresh pages."""
    n, c, h, wd = x_shape
    (ph, pw) = spec.padding
    work = scratch("col2im_t.dxp", (c, n, h + 2 * ph, wd + 2 * pw), dcols_t.dtype)
    return col2im_t(dcols_t, x_shape, kernel, *spec, work=work)


def _backward_1x1_chw(dout, w, x3, x_shape, spec):
    n, c, h, wd = x_shape
    k = w.shape[0]
    d3 = dout.reshape(n, k, h * wd)
    dw = np.tensordot(d3, x3, axes=([0, 2], [0, 2])).reshape(k, c, 1, 1)
    return np.matmul(w.reshape(k, c).T, d3).reshape(n, c, h, wd), dw


def _backward_1x1_hwc(dout, w, xm, x_shape, spec):
    n, c, h, wd = x_shape
    k = w.shape[0]
    dm = _dout_rows(dout)
    dw = (dm.T @ xm).reshape(k, c, 1, 1)
    return (dm @ w.reshape(k, c)).reshape(n, h, wd, c).transpose(0, 3, 1, 2), dw


def _backward_winograd(dout, w, v, x_shape, spec):
    # dw from the forward's transformed tiles; dx as the flipped-filter convolution (itself a
    # 3x3 stride-1 conv, so Winograd again) or, with padding above 2, col2im. Both read dout
    # channels-last: transpose it once, here
    n, _, h, wd = x_shape
    k = w.shape[0]
    oh, ow = dout.shape[2:]
    if not is_nhwc(dout):
        dcl = scratch("conv.dout_nhwc", (n, oh, ow, k), dout.dtype)
        copy_to_nhwc(dout, dcl)
        dout = dcl.transpose(0, 3, 1, 2)
    dw = winograd_weight_grad(dout, v)
    if _flipped_ok(spec, w.shape[2:], (h, wd), (oh, ow)):
        return _dx_flipped(dout, w, spec), dw
    dcols = _dout_rows(dout) @ _w_matrix(w, "hwc")
    return col2im(dcols, x_shape, w.shape[2:], *spec, layout="hwc"), dw


def _backward_chw_t(dout, w, cols_t, x_shape, spec):
    n, c, h, wd = x_shape
    k, _, kh, kw = w.shape
    oh, ow = dout.shape[2:]
    # dout as (K, N*OH*OW), the layout of the forward's result: from NCHW dout a copy of whole
    # OH*OW planes. dw = dout_t @ cols_t.T (BLAS reads the transpose in place)
    dmt = scratch("conv.dout_t", (k, n * oh * ow), dout.dtype)
    np.copyto(dmt.reshape(k, n, oh, ow), dout.transpose(1, 0, 2, 3))
    dw = (dmt @ cols_t.T).reshape(k, c, kh, kw)
    if k <= c and _flipped_ok(spec, (kh, kw), (h, wd), (oh, ow)):
        # see _backward_cols for why the flipped-filter route is taken here
        return _dx_flipped(dout, w, spec), dw
    # the column gradient transposed, (C*kh*kw, N*OH*OW): each kernel offset then adds whole
    # (C, N, OH, OW) planes whose rows are contiguous
    dcols_t = scratch("conv.dcols_t", (c * kh * kw, dmt.shape[1]), dmt.dtype)
    np.matmul(_w_matrix(w, "chw_t").T, dmt, out=dcols_t)
    return _col2im_t(dcols_t, x_shape, (kh, kw), spec), dw


def _backward_cols(layout: str) -> Callable:
    """The backward of the "hwc" and "chw" modes: two GEMMs, then col2im or a flipped conv."""

    def backward(dout, w, cols, x_shape, spec):
        n, c, h, wd = x_shape
        k, _, kh, kw = w.shape
        oh, ow = dout.shape[2:]
        dm = _dout_rows(dout)
        dwm = dm.T @ cols
        if layout == "chw":
            dw = dwm.reshape(k, c, kh, kw)
        else:
            dw = dwm.reshape(k, kh, kw, c).transpose(0, 3, 1, 2)
        if k <= c and _flipped_ok(spec, (kh, kw), (h, wd), (oh, ow)):
            # stride 1: dx is a convolution of dout with the flipped filters. Its im2col of dout
            # is no larger than the column gradient when K <= C, and it saves col2im's kh*kw
            # strided adds; with K > C (a first layer) the column route moves less memory.
            # dout enters as the channels-last view of dm, the copy made above for the dw GEMM:
            # the flipped conv's padding copy then reads contiguous rows of K values instead of
            # transposing dout a second time (for a contiguous NCHW dout that transpose is the
            # slow part of the padding copy)
            dm_view = dm.reshape(n, oh, ow, k).transpose(0, 3, 1, 2)
            return _dx_flipped(dm_view, w, spec), dw
        wmat = _w_matrix(w, layout)
        if layout == "chw":
            # the column gradient transposed, (C*kh*kw, N*OH*OW): each kernel offset then adds
            # whole (C, N, OH, OW) planes whose rows are contiguous
            return _col2im_t(wmat.T @ dm.T, x_shape, (kh, kw), spec), dw
        return col2im(dm @ wmat, x_shape, (kh, kw), *spec, layout="hwc"), dw

    return backward


_MODES: dict[str, tuple[Callable, Callable]] = {
    "1x1-chw": (_forward_1x1_chw, _backward_1x1_chw),
    "1x1-hwc": (_forward_1x1_hwc, _backward_1x1_hwc),
    "winograd": (_forward_winograd, _backward_winograd),
    "chw_t": (_forward_chw_t, _backward_chw_t),
    "hwc": (_forward_cols("hwc"), _backward_cols("hwc")),
    "chw": (_forward_cols("chw"), _backward_cols("chw")),
}


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, FastConvCache]:
    """x (N, C, H, W), w (K, C/groups, kh, kw), b (K,) or None -> (out (N, K, OH, OW), cache).

    The result of :func:`~.functional_conv.conv2d_forward_im2col`, computed per group by the
    mode :func:`choose_mode` picks. ``out`` may be a view of channels-last memory.
    """
    _check(x, w, b, groups)
    spec = _Spec(*_args(stride, padding, dilation))
    conv_geometry(x.shape, w.shape[2:], *spec)  # a kernel that does not fit fails here
    k, cg = w.shape[:2]
    kg = k // groups
    outs, saved = [], []
    for g in range(groups):
        xg = x if groups == 1 else x[:, g * cg : (g + 1) * cg]
        wg = w if groups == 1 else w[g * kg : (g + 1) * kg]
        bg = None if b is None else b[g * kg : (g + 1) * kg]
        mode = choose_mode(xg, wg.shape, spec)
        out, keep = _MODES[mode][0](xg, wg, bg, spec)
        outs.append(out)
        saved.append((mode, keep))
    out = outs[0] if groups == 1 else np.concatenate(outs, axis=1)
    cache = FastConvCache(x.shape, None, w, b is not None, *spec, groups, cols=saved)
    return out, cache


def conv2d_backward(
    dout: np.ndarray, cache: FastConvCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dout (N, K, OH, OW) -> (dx (N, C, H, W), dw (K, C/groups, kh, kw), db (K,) or None).

    The gradients of :func:`conv2d_forward`, by the backward of each group's mode.
    """
    w, groups = cache.w, cache.groups
    n, _, h, wd = cache.x_shape
    k, cg = w.shape[:2]
    kg = k // groups
    spec = _Spec(cache.stride, cache.padding, cache.dilation)
    # float64 accumulation: a float32 sum over N*OH*OW strided values drifts
    db = dout.sum(axis=(0, 2, 3), dtype=np.float64).astype(dout.dtype) if cache.has_bias else None
    dxs, dws = [], []
    for g, (mode, keep) in enumerate(cache.cols):
        dg = dout if groups == 1 else dout[:, g * kg : (g + 1) * kg]
        wg = w if groups == 1 else w[g * kg : (g + 1) * kg]
        dx, dw = _MODES[mode][1](dg, wg, keep, (n, cg, h, wd), spec)
        dxs.append(dx)
        dws.append(dw)
    dx = dxs[0] if groups == 1 else np.concatenate(dxs, axis=1)
    dw = dws[0] if groups == 1 else np.concatenate(dws, axis=0)
    return dx, np.ascontiguousarray(dw), db
