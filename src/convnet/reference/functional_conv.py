"""Convolution forward and backward as im2col + one matrix multiply: the notes' recipe, plain.

Shapes (NCHW, as in PyTorch):

- x: (N, C, H, W) input;
- w: (K, C/groups, kh, kw) filters, b: (K,) biases or None;
- out: (N, K, OH, OW), with the notes' output size per axis,
  ``OH = (H + 2P - d*(kh-1) - 1) // S + 1`` (likewise OW; with dilation d = 1 this is
  ``(W - F + 2P) / S + 1``).

Formula: ``out[n, k, i, j] = b[k] + sum_{c, u, v} w[k, c, u, v] * xp[n, c, i*S + u*d, j*S + v*d]``
where xp is x zero-padded by P and c runs over the C/groups channels of filter k's group.

Forward, per group, in the notes' three steps (AlexNet conv1's sizes in brackets):

1. ``X_col = im2col_t(x)``: every receptive field stretched into a column,
   (C*kh*kw, N*OH*OW) [363 x 3025];
2. ``W_row = w.reshape(K, -1)``: every filter stretched into a row, (K, C*kh*kw) [96 x 363];
3. ``out_row = W_row @ X_col + b``: all dot products in one GEMM, (K, N*OH*OW) [96 x 3025],
   then reshaped to (N, K, OH, OW).

Backward, with ``dout_row`` the upstream gradient as (K, N*OH*OW):

- ``db = dout`` summed over (n, i, j);
- ``dW_row = dout_row @ X_col.T``: a filter's gradient sums over every position it was applied
  at (parameter sharing);
- ``dX_col = W_row.T @ dout_row``, then ``dx = col2im_t(dX_col)``: receptive fields that
  overlap add their contributions onto the pixels they share.

The same formula as loops is :mod:`.functional_conv_naive`; the version the engine's layers run
(same results, several times faster: Winograd, channels-last layouts, reused buffers) is
:mod:`.functional_conv_fast`.

The notes' worked example (an 11x11x4 input, F=5, S=2, no padding, so a 4x4 output), written
with the notes' (H, W, D) arrays and checked against this NCHW implementation:

>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((11, 11, 4))
>>> W0, b0 = rng.standard_normal((5, 5, 4)), 0.5
>>> x = X.transpose(2, 0, 1)[None]  # (1, 4, 11, 11)
>>> w = W0.transpose(2, 0, 1)[None]  # (1, 4, 5, 5)
>>> out, _ = conv2d_forward_im2col(x, w, np.array([b0]), stride=2)
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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError
from .im2col import Pair, col2im_t, conv_geometry, im2col_t, pair

__all__ = [
    "ConvCache",
    "conv2d_backward_im2col",
    "conv2d_forward_im2col",
    "conv2d_input_grad_flipped",
]


@dataclass
class ConvCache:
    """What a convolution's backward needs from its forward.

    The loop version keeps the input ``x``; the im2col version keeps ``x_cols``, one X_col
    (C/groups*kh*kw, N*OH*OW) per group, and no ``x``.
    """

    x_shape: tuple[int, int, int, int]
    x: np.ndarray | None
    w: np.ndarray
    has_bias: bool
    stride: Pair
    padding: Pair
    dilation: Pair
    groups: int
    x_cols: list[np.ndarray] | None = None


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


def conv2d_forward_im2col(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    groups: int = 1,
) -> tuple[np.ndarray, ConvCache]:
    """x (N, C, H, W), w (K, C/groups, kh, kw), b (K,) or None -> (out (N, K, OH, OW), cache).

    ``out_row = W_row @ X_col + b`` per group (see the module docstring).
    """
    _check(x, w, b, groups)
    stride, padding, dilation = _args(stride, padding, dilation)
    n = x.shape[0]
    k, cg, kh, kw = w.shape
    kg = k // groups  # filters per group; each reads cg = C/groups input channels
    oh, ow = conv_geometry(x.shape, (kh, kw), stride, padding, dilation)
    out = np.empty((n, k, oh, ow), dtype=np.result_type(x, w))
    x_cols = []
    for g in range(groups):
        ks = slice(g * kg, (g + 1) * kg)
        x_col = im2col_t(x[:, g * cg : (g + 1) * cg], (kh, kw), stride, padding, dilation)
        w_row = w[ks].reshape(kg, cg * kh * kw)
        out_row = w_row @ x_col  # (kg, N*OH*OW)
        if b is not None:
            out_row += b[ks, None]
        out[:, ks] = out_row.reshape(kg, n, oh, ow).transpose(1, 0, 2, 3)
        x_cols.append(x_col)
    cache = ConvCache(x.shape, None, w, b is not None, stride, padding, dilation, groups, x_cols)
    return out, cache


def conv2d_backward_im2col(
    dout: np.ndarray, cache: ConvCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dout (N, K, OH, OW) -> (dx (N, C, H, W), dw (K, C/groups, kh, kw), db (K,) or None).

    ``dW_row = dout_row @ X_col.T`` and ``dx = col2im_t(W_row.T @ dout_row)`` per group.
    """
    w, groups = cache.w, cache.groups
    n, c, h, wd = cache.x_shape
    k, cg, kh, kw = w.shape
    kg = k // groups
    dx = np.empty((n, c, h, wd), dtype=np.result_type(dout, w))
    dw = np.empty(w.shape, dtype=np.result_type(dout, w))
    for g in range(groups):
        ks = slice(g * kg, (g + 1) * kg)
        dout_row = dout[:, ks].transpose(1, 0, 2, 3).reshape(kg, -1)  # (kg, N*OH*OW)
        dw[ks] = (dout_row @ cache.x_cols[g].T).reshape(kg, cg, kh, kw)
        dx_col = w[ks].reshape(kg, -1).T @ dout_row  # (cg*kh*kw, N*OH*OW)
        geometry = ((n, cg, h, wd), (kh, kw), cache.stride, cache.padding, cache.dilation)
        dx[:, g * cg : (g + 1) * cg] = col2im_t(dx_col, *geometry)
    # summed in float64: a float32 sum over N*OH*OW values drifts
    db = dout.sum(axis=(0, 2, 3), dtype=np.float64).astype(dout.dtype) if cache.has_bias else None
    return dx, dw, db


def conv2d_input_grad_flipped(
    dout: np.ndarray,
    w: np.ndarray,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    forward: Callable[..., tuple[np.ndarray, object]] = conv2d_forward_im2col,
) -> np.ndarray:
    """The notes' "backprop of a convolution is a convolution with flipped filters" (stride 1).

    For a stride-1, ungrouped convolution with padding P, dilation d and a kh x kw kernel,
    ``dx = conv(dout padded by d*(kh-1)-P, w flipped in both spatial axes with its in and out
    channels swapped, dilation d)``. It equals col2im of the column gradient, the route
    :func:`conv2d_backward_im2col` takes. ``forward`` is the convolution that computes it (the
    fast path passes its own).
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
    dx, _ = forward(dout, w_flip, None, stride=1, padding=(fh, fw), dilation=(dh, dw))
    return dx
