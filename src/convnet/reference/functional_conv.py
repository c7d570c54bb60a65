"""Convolution forward and backward, the fast version: im2col + GEMM, or Winograd for 3x3.

The naive loop version, the formula below written out, is in :mod:`.functional_conv_naive`.

Shapes (NCHW, as in PyTorch): x (N, C, H, W), w (K, C/groups, kh, kw), b (K,) or None,
out (N, K, OH, OW) with ``OH = (H + 2P - d*(kh-1) - 1) // S + 1`` (likewise OW).

Formula: ``out[n, k, i, j] = b[k] + sum_{c, u, v} w[k, c, u, v] * xp[n, c, i*S + u*d, j*S + v*d]``
where xp is x zero-padded by P and c runs over the channels of k's group.

The notes' worked example (an 11x11x4 input, F=5, S=2, no padding, so a 4x4 output), written
with the notes' (H, W, D) arrays and checked against this NCHW implementation:

>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((11, 11, 4))
>>> W0, b0 = rng.standard_normal((5, 5, 4)), 0.5
>>> x = X.transpose(2, 0, 1)[None]  # (1, 4, 11, 11)
>>> w = W0.transpose(2, 0, 1)[None]  # (1, 4, 5, 5)
>>> out, _ = conv2d_forward(x, w, np.array([b0]), stride=2)
>>> out.shape
(1, 1, 4, 4)
>>> V = out[0].transpose(1, 2, 0)  # back to the notes' (x, y, depth) indexing
>>> bool(np.isclose(V[0, 0, 0], np.sum(X[:5, :5, :] * W0) + b0))
True
>>> bool(np.isclose(V[1, 0, 0], np.sum(X[2:7, :5, :] * W0) + b0))
True
>>> bool(np.isclose(V[3, 0, 0], np.sum(X[6:11, :5, :] * W0) + b0))
True
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError
from ._scratch import scratch
from .im2col import (
    Pair,
    choose_layout,
    col2im,
    col2im_t,
    conv_geometry,
    copy_to_nhwc,
    im2col,
    im2col_t,
    is_nhwc,
    pair,
)
from .winograd import applies as winograd_applies
from .winograd import pays as winograd_pays
from .winograd import winograd_conv3x3, winograd_weight_grad

__all__ = [
    "ConvCache",
    "conv2d_backward",
    "conv2d_forward",
    "conv2d_input_grad_flipped",
    "conv_algorithm",
]

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
class ConvCache:
    """What the backward pass needs: the forward's inputs and, for the fast path, the columns."""

    x_shape: tuple[int, int, int, int]
    x: np.ndarray | None
    w: np.ndarray
    has_bias: bool
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int
    cols: list | None = None  # per group: (mode, cols or x view)


def _check(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, groups: int) -> None:
    if x.ndim != 4 or w.ndim != 4:
        raise ShapeError(
            f"conv2d wants x (N, C, H, W) and w (K, C/groups, kh, kw), got {x.shape} and {w.shape}"
        )
    k, cg = w.shape[:2]
    if x.shape[1] != cg * groups or k % groups:
        raise ShapeError(
            f"conv2d: input has {x.shape[1]} channels but the weight {w.shape} with groups={groups} "
            f"expects {cg * groups} (and K={k} divisible by groups)"
        )
    if b is not None and b.shape != (k,):
        raise ShapeError(f"conv2d: bias must have shape ({k},), got {b.shape}")


def _args(stride, padding, dilation) -> tuple[Pair, Pair, Pair]:
    return pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")


# ------------------------------------------------------------------------------ fast


def _forward_group(x: np.ndarray, w: np.ndarray, stride: Pair, padding: Pair, dilation: Pair):
    """One group: returns (out matrix, saved, mode).

    The out matrix is (N*OH*OW, K) for "hwc" and "1x1-hwc" (channels-last), (K, N*OH*OW) for
    "chw_t", and (N, K, OH*OW) for "1x1-chw".
    """
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    if (kh, kw) == (1, 1) and stride == (1, 1) and padding == (0, 0):
        # A 1x1 convolution is a dot product over depth at every pixel (the notes' 1x1 case):
        # x itself is the column matrix, so no im2col is needed.
        if is_nhwc(x):
            xm = x.transpose(0, 2, 3, 1).reshape(n * h * wd, c)
            return xm @ w.reshape(k, c).T, xm, "1x1-hwc"
        x3 = x.reshape(n, c, h * wd)
        return np.matmul(w.reshape(k, c), x3), x3, "1x1-chw"
    algorithm = _ALGORITHM.get()
    if (
        algorithm != "im2col"
        and winograd_applies((kh, kw), stride, dilation)
        and (algorithm == "winograd" or winograd_pays(c, k))
    ):
        # 3x3 at stride 1 on a deep input: Winograd's F(4x4, 3x3), 4x fewer multiply-adds than
        # im2col's GEMM. Its transformed input tiles are kept: the weight gradient reuses them.
        out, v = winograd_conv3x3(x, w, padding)
        return out, v, "winograd"
    ow = conv_geometry(x.shape, (kh, kw), stride, padding, dilation)[1]
    layout = choose_layout(c, kw, ow)
    if layout == "chw_t":
        # the notes' form, out_matrix = W_row @ X_col: a (K, N*OH*OW) result whose rows are
        # whole output planes; both operands are contiguous, so BLAS reads them as they are
        cols_t = im2col_t(x, (kh, kw), stride, padding, dilation)
        out_t = scratch("conv.out_t", (k, cols_t.shape[1]), np.result_type(x, w))
        return np.matmul(w.reshape(k, -1), cols_t, out=out_t), cols_t, layout
    cols = im2col(x, (kh, kw), stride, padding, dilation, layout)
    wmat = w.reshape(k, -1) if layout == "chw" else w.transpose(0, 2, 3, 1).reshape(k, -1)
    return cols @ wmat.T, cols, layout


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, ConvCache]:
    """Fast convolution: im2col (a strided view, copied once) then one GEMM per group.

    Two layouts (see :func:`~convnet.reference.im2col.choose_layout`):

    - ``"chw_t"`` (wide images, few channels): the notes' ``np.dot(W_row, X_col)`` as written,
      ``out_t[k, (n, i, j)] = w_matrix[k, :] @ cols_t[:, (n, i, j)]``, read straight from NCHW
      memory; the result is copied back to a contiguous (N, K, OH, OW) array.
    - ``"hwc"`` (many channels, small images): its transposed, row-major-friendly form
      ``out_matrix[(n, i, j), k] = cols[(n, i, j), :] @ w_matrix[k, :]``. The result is returned
      as an (N, K, OH, OW) array whose memory is channels-last (a transposed view), which the
      next "hwc" conv reads without a copy; NumPy's elementwise operations keep that layout.

    A 3x3 stride-1 convolution on 16 or more channels takes neither: it runs Winograd's
    F(4x4, 3x3) (:mod:`.winograd`), 4x fewer multiply-adds, unless
    :func:`conv_algorithm` says ``"im2col"``. A 1x1 convolution needs no im2col at all.
    """
    _check(x, w, b, groups)
    stride, padding, dilation = _args(stride, padding, dilation)
    n = x.shape[0]
    k, cg = w.shape[:2]
    oh, ow = conv_geometry(x.shape, w.shape[2:], stride, padding, dilation)
    kg = k // groups
    outs, saved = [], []
    for g in range(groups):
        xg = x if groups == 1 else x[:, g * cg : (g + 1) * cg]
        wg = w if groups == 1 else w[g * kg : (g + 1) * kg]
        om, keep, mode = _forward_group(xg, wg, stride, padding, dilation)
        saved.append((mode, keep))
        bg = None if b is None else b[g * kg : (g + 1) * kg]
        if mode == "winograd":
            if bg is not None:
                om += bg[:, None, None]  # om is an (N, K, OH, OW) view of channels-last memory
            outs.append(om)
        elif mode == "1x1-chw":
            if bg is not None:
                om += bg[:, None]
            outs.append(om.reshape(n, kg, oh, ow))
        elif mode == "chw_t":
            # (K, N, OH, OW) -> NCHW: a copy of whole OH*OW planes, cheap next to the GEMM, that
            # adds the bias on the way. om is scratch, so this is always a new array.
            planes = om.reshape(kg, n, oh, ow).transpose(1, 0, 2, 3)
            if bg is None:
                outs.append(planes.copy())
            else:
                outs.append(np.add(planes, bg[:, None, None], order="C"))
        else:
            if bg is not None:
                om += bg  # along the contiguous last axis, before the layout becomes a view
            outs.append(om.reshape(n, oh, ow, kg).transpose(0, 3, 1, 2))
    out = outs[0] if groups == 1 else np.concatenate(outs, axis=1)
    cache = ConvCache(x.shape, None, w, b is not None, stride, padding, dilation, groups, saved)
    return out, cache


def conv2d_backward(
    dout: np.ndarray, cache: ConvCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients of :func:`conv2d_forward` by two GEMMs and a col2im per group.

    ``dw_matrix = dout_matrix.T @ cols`` (the sum over positions that parameter sharing
    implies), ``dcols = dout_matrix @ w_matrix``, and ``dx = col2im(dcols)`` (the adjoint of
    im2col; equivalently a convolution of dout with the flipped filters, see
    :func:`conv2d_input_grad_flipped`). Returns (dx (N, C, H, W), dw like w, db (K,) or None).
    """
    w, groups = cache.w, cache.groups
    n, c, h, wd = cache.x_shape
    k, cg, kh, kw = w.shape
    kg = k // groups
    oh, ow = dout.shape[2:]
    # float64 accumulation: a float32 sum over N*OH*OW strided values drifts
    db = dout.sum(axis=(0, 2, 3), dtype=np.float64).astype(dout.dtype) if cache.has_bias else None
    dxs, dws = [], []
    for g in range(groups):
        dg = dout if groups == 1 else dout[:, g * kg : (g + 1) * kg]
        wg = w if groups == 1 else w[g * kg : (g + 1) * kg]
        mode, keep = cache.cols[g]
        if mode == "winograd":
            # dw from the forward's transformed tiles; dx as the flipped-filter convolution
            # (itself a 3x3 stride-1 conv, so Winograd again) or, with padding above 2, col2im.
            # Both read dout channels-last: transpose it once, here.
            if not is_nhwc(dg):
                dcl = scratch("conv.dout_nhwc", (n, oh, ow, kg), dg.dtype)
                copy_to_nhwc(dg, dcl)
                dg = dcl.transpose(0, 3, 1, 2)
            dws.append(winograd_weight_grad(dg, keep))
            if _flipped_ok(cache, (kh, kw), (h, wd), (oh, ow)):
                dxs.append(conv2d_input_grad_flipped(dg, wg, cache.padding, cache.dilation))
            else:
                dm = dg.transpose(0, 2, 3, 1).reshape(n * oh * ow, kg)
                geometry = ((n, cg, h, wd), (kh, kw), cache.stride, cache.padding, cache.dilation)
                dcols = dm @ wg.transpose(0, 2, 3, 1).reshape(kg, -1)
                dxs.append(col2im(dcols, *geometry, layout="hwc"))
            continue
        if mode == "1x1-chw":
            d3 = dg.reshape(n, kg, oh * ow)
            dws.append(np.tensordot(d3, keep, axes=([0, 2], [0, 2])).reshape(kg, cg, 1, 1))
            dxs.append(np.matmul(wg.reshape(kg, cg).T, d3).reshape(n, cg, h, wd))
            continue
        if mode == "chw_t":
            # dout as (K, N*OH*OW), the layout of the forward's result: from NCHW dout a copy of
            # whole OH*OW planes. dw = dout_t @ cols_t.T (BLAS reads the transpose in place).
            dmt = scratch("conv.dout_t", (kg, n * oh * ow), dg.dtype)
            np.copyto(dmt.reshape(kg, n, oh, ow), dg.transpose(1, 0, 2, 3))
            dws.append((dmt @ keep.T).reshape(kg, cg, kh, kw))
            if kg <= cg and _flipped_ok(cache, (kh, kw), (h, wd), (oh, ow)):
                # see the "hwc" branch below for why the flipped-filter route is taken here
                dxs.append(conv2d_input_grad_flipped(dg, wg, cache.padding, cache.dilation))
            else:
                # the column gradient transposed, (C*kh*kw, N*OH*OW): each kernel offset then
                # adds whole (C, N, OH, OW) planes whose rows are contiguous
                geometry = ((n, cg, h, wd), (kh, kw), cache.stride, cache.padding, cache.dilation)
                dcols_t = scratch("conv.dcols_t", (cg * kh * kw, dmt.shape[1]), dmt.dtype)
                np.matmul(wg.reshape(kg, -1).T, dmt, out=dcols_t)
                dxs.append(col2im_t(dcols_t, *geometry))
            continue
        dm = dg.transpose(0, 2, 3, 1).reshape(n * oh * ow, kg)
        if mode == "1x1-hwc":
            dws.append((dm.T @ keep).reshape(kg, cg, 1, 1))
            dxs.append((dm @ wg.reshape(kg, cg)).reshape(n, h, wd, cg).transpose(0, 3, 1, 2))
            continue
        dwm = dm.T @ keep
        if mode == "chw":
            wmat = wg.reshape(kg, -1)
            dws.append(dwm.reshape(kg, cg, kh, kw))
        else:
            wmat = wg.transpose(0, 2, 3, 1).reshape(kg, -1)
            dws.append(dwm.reshape(kg, kh, kw, cg).transpose(0, 3, 1, 2))
        if kg <= cg and _flipped_ok(cache, (kh, kw), (h, wd), (oh, ow)):
            # stride 1: dx is a convolution of dout with the flipped filters. Its im2col of dout
            # is no larger than the column gradient when K <= C, and it saves col2im's kh*kw
            # strided adds; with K > C (a first layer) the column route moves less memory.
            # dout enters as the channels-last view of dm, the copy made above for the dw GEMM:
            # the flipped conv's padding copy then reads contiguous rows of K values instead of
            # transposing dout a second time (for a contiguous NCHW dout that transpose is the
            # slow part of the padding copy)
            dm_view = dm.reshape(n, oh, ow, kg).transpose(0, 3, 1, 2)
            dxs.append(conv2d_input_grad_flipped(dm_view, wg, cache.padding, cache.dilation))
            continue
        geometry = ((n, cg, h, wd), (kh, kw), cache.stride, cache.padding, cache.dilation)
        if mode == "chw":
            # the column gradient transposed, (C*kh*kw, N*OH*OW): each kernel offset then adds
            # whole (C, N, OH, OW) planes whose rows are contiguous
            dxs.append(col2im_t(wmat.T @ dm.T, *geometry))
        else:
            dxs.append(col2im(dm @ wmat, *geometry, layout=mode))
    dx = dxs[0] if groups == 1 else np.concatenate(dxs, axis=1)
    dw = dws[0] if groups == 1 else np.concatenate(dws, axis=0)
    return dx, np.ascontiguousarray(dw), db


def _flipped_ok(cache: ConvCache, kernel: Pair, in_hw: Pair, out_hw: Pair) -> bool:
    """Whether dx can be computed as a plain stride-1 convolution with the flipped filters."""
    if cache.stride != (1, 1):
        return False
    for k, p, d, size, o in zip(kernel, cache.padding, cache.dilation, in_hw, out_hw):
        if p > d * (k - 1) or o + d * (k - 1) - 2 * p != size:
            return False
    return True


def conv2d_input_grad_flipped(
    dout: np.ndarray, w: np.ndarray, padding: int | Pair = 0, dilation: int | Pair = 1
) -> np.ndarray:
    """The notes' "backprop of a convolution is a convolution with flipped filters" (stride 1).

    For a stride-1, ungrouped convolution with padding P, dilation d and a kh x kw kernel,
    ``dx = conv(dout padded by d*(kh-1)-P, w flipped in both spatial axes with its in and out
    channels swapped, dilation d)``. It equals col2im of the column gradient (the general
    route :func:`conv2d_backward` takes for strides above 1).
    """
    ph, pw = pair(padding, "padding")
    dh, dw = pair(dilation, "dilation")
    _, _, kh, kw = w.shape
    fh, fw = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if fh < 0 or fw < 0:
        raise ShapeError(
            f"padding {(ph, pw)} exceeds dilation*(kernel-1) {(dh * (kh - 1), dw * (kw - 1))}: "
            "the input gradient is not a plain full convolution; use conv2d_backward"
        )
    w_flip = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    dx, _ = conv2d_forward(dout, w_flip, None, stride=1, padding=(fh, fw), dilation=(dh, dw))
    return dx
