"""im2col and col2im: a convolution as one matrix multiply.

The notes' example: AlexNet's first layer reads a 227x227x3 input with 96 filters of 11x11x3 at
stride 4, so there are (227 - 11) / 4 + 1 = 55 positions per axis. Stretching every receptive
field into a column gives the notes' ``X_col`` of [363 x 3025] (:func:`im2col_t`); with the
filters stretched into the rows of ``W_row`` [96 x 363], one GEMM ``W_row @ X_col`` computes all
55*55*96 dot products (:mod:`.functional_conv` does exactly that).

Here the receptive fields are gathered with ``numpy.lib.stride_tricks.as_strided`` (a view,
no Python loop over pixels) and copied once into a contiguous matrix. Its memory is the
price the notes warn about: every input value is copied about ``(kh*kw) / (stride**2)`` times.

:func:`im2col` builds the transpose, one receptive field per *row*, (N*OH*OW, C*kh*kw), in
either of two column orders (the weight matrix is reshaped to match):

- ``"chw"``: columns ordered (C, kh, kw), like ``w.reshape(K, -1)``; read from an
  (N, C, Hp, Wp) buffer, each copied run is kw values long.
- ``"hwc"``: columns ordered (kh, kw, C); read from a channels-last (N, Hp, Wp, C) buffer
  (:mod:`.nhwc`), each copied run is C values long. Deep layers (C large, image small) copy
  and multiply faster this way; :mod:`.functional_conv_fast` picks the order per layer.

:func:`col2im` and :func:`col2im_t` are their adjoints: they add every column entry back onto
the input pixel it was read from, which is how a convolution's input gradient is assembled.

Output size per axis (the notes' formula, with dilation d): ``(W - d*(F-1) - 1 + 2P) // S + 1``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..arith import effective_kernel, output_size
from ..errors import ShapeError
from .nhwc import pad_nhwc

Pair = tuple[int, int]


def pair(v: int | tuple[int, int] | list[int], name: str = "value") -> Pair:
    """Turn ``3`` or ``(3, 5)`` into a (height, width) pair of ints."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ShapeError(f"{name} must be an int or a pair (h, w), got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def window_pairs(kernel, stride, padding, dilation) -> tuple[Pair, Pair, Pair, Pair]:
    """A sliding window's kernel, stride, padding and dilation, each as an (h, w) pair."""
    return (
        pair(kernel, "kernel"),
        pair(stride, "stride"),
        pair(padding, "padding"),
        pair(dilation, "dilation"),
    )


def out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length along one axis: ``(size + 2P - d*(F-1) - 1) // S + 1``.

    The notes' formula, from :func:`convnet.arith.output_size`; a kernel wider than the padded
    input is a :class:`~convnet.errors.ShapeError` here, since no window fits.

    >>> out_size(227, 11, 4, 0)  # AlexNet conv1
    55
    >>> out_size(11, 5, 2, 0)  # the notes' 11x11x4 example
    4
    """
    span = effective_kernel(kernel, dilation)
    if size + 2 * padding < span:
        raise ShapeError(
            f"a kernel spanning {span} does not fit an input of {size} with padding {padding}; "
            "use a smaller kernel or dilation, or more padding"
        )
    return output_size(size, kernel, stride, padding, dilation)


def conv_geometry(
    x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> Pair:
    """(OH, OW) of a convolution or pooling over an (N, C, H, W) input."""
    _, _, h, w = x_shape
    return (
        out_size(h, kernel[0], stride[0], padding[0], dilation[0]),
        out_size(w, kernel[1], stride[1], padding[1], dilation[1]),
    )


def pad_nchw(x: np.ndarray, padding: Pair, value: float = 0.0) -> np.ndarray:
    """Zero- (or ``value``-) padded contiguous (N, C, H+2ph, W+2pw) copy of ``x``."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(x)
    n, c, h, w = x.shape
    xp = np.full((n, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    xp[:, :, ph : ph + h, pw : pw + w] = x
    return xp


def windows(
    xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_hw: Pair, layout: str
) -> np.ndarray:
    """A strided *view* of every receptive field, no copy.

    ``layout="hwc"``: ``xp`` is (N, Hp, Wp, C); the view is (N, OH, OW, kh, kw, C).
    ``layout="chw"``: ``xp`` is (N, C, Hp, Wp); the view is (N, OH, OW, C, kh, kw).
    """
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_hw
    if layout == "hwc":
        n, _, _, c = xp.shape
        s0, s1, s2, s3 = xp.strides
        shape = (n, oh, ow, kh, kw, c)
        strides = (s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw, s3)
    elif layout == "chw":
        n, c, _, _ = xp.shape
        s0, s1, s2, s3 = xp.strides
        shape = (n, oh, ow, c, kh, kw)
        strides = (s0, s2 * sh, s3 * sw, s1, s2 * dh, s3 * dw)
    else:
        raise ValueError(f"layout must be 'hwc' or 'chw', got {layout!r}")
    return as_strided(xp, shape=shape, strides=strides, writeable=False)


def im2col(
    x: np.ndarray,
    kernel: int | Pair,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    layout: str = "chw",
) -> np.ndarray:
    """Stretch every receptive field of an (N, C, H, W) input into one row.

    Returns ``cols`` of shape (N*OH*OW, C*kh*kw): row ``(n*OH + i)*OW + j`` holds the field
    under output position (i, j) of image n, ordered (C, kh, kw) for ``layout="chw"`` (the same
    order as a torch weight's ``w.reshape(K, -1)``) or (kh, kw, C) for ``layout="hwc"``.

    The notes' AlexNet example (one image):

    >>> x = np.zeros((1, 3, 227, 227), dtype=np.float32)
    >>> im2col(x, 11, stride=4).shape  # the notes' [363 x 3025], transposed
    (3025, 363)
    """
    kernel, stride, padding, dilation = window_pairs(kernel, stride, padding, dilation)
    n, c, _, _ = x.shape
    oh, ow = conv_geometry(x.shape, kernel, stride, padding, dilation)
    xp = pad_nhwc(x, padding) if layout == "hwc" else pad_nchw(x, padding)
    view = windows(xp, kernel, stride, dilation, (oh, ow), layout)
    # reshape of a strided view copies exactly once, into a C-contiguous matrix
    return view.reshape(n * oh * ow, c * kernel[0] * kernel[1])


def im2col_t(
    x: np.ndarray,
    kernel: int | Pair,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
) -> np.ndarray:
    """The transposed column matrix, (C*kh*kw, N*OH*OW): ``im2col(x, ..., "chw").T``, contiguous.

    Row ``(c*kh + u)*kw + v`` holds ``xp[:, c, u*d + i*S, v*d + j*S]`` for all (n, i, j): the
    notes' ``X_col``, so the forward pass is ``w.reshape(K, -1) @ cols_t`` exactly as written
    there. Built as one strided view of the padded NCHW input, copied once.

    >>> x = np.zeros((1, 3, 227, 227), dtype=np.float32)
    >>> im2col_t(x, 11, stride=4).shape  # the notes' [363 x 3025]
    (363, 3025)
    """
    kernel, stride, padding, dilation = window_pairs(kernel, stride, padding, dilation)
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    n, c, _, _ = x.shape
    oh, ow = conv_geometry(x.shape, kernel, stride, padding, dilation)
    xp = pad_nchw(x, padding)
    s0, s1, s2, s3 = xp.strides
    view = as_strided(
        xp,
        shape=(c, kh, kw, n, oh, ow),
        strides=(s1, s2 * dh, s3 * dw, s0, s2 * sh, s3 * sw),
        writeable=False,
    )
    return view.reshape(c * kh * kw, n * oh * ow)


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel: int | Pair,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    layout: str = "chw",
) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every row back onto the pixels it was read from.

    Overlapping receptive fields receive the sum of their contributions (this is how the
    gradient of a shared input value collects from every filter position that saw it). The
    loop runs over the kh*kw kernel offsets, each a strided add of a whole (N, OH, OW, C) slab,
    never over pixels. Returns an (N, C, H, W) array (a view of a channels-last buffer when
    ``layout="hwc"``).
    """
    kernel, stride, padding, dilation = window_pairs(kernel, stride, padding, dilation)
    n, c, h, w = x_shape
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    oh, ow = conv_geometry(x_shape, kernel, stride, padding, dilation)
    hp, wp = h + 2 * ph, w + 2 * pw
    if layout == "hwc":
        c6 = cols.reshape(n, oh, ow, kh, kw, c)
        dxp = np.zeros((n, hp, wp, c), dtype=cols.dtype)
        for i in range(kh):
            for j in range(kw):
                hs, ws = i * dh, j * dw
                dxp[:, hs : hs + sh * (oh - 1) + 1 : sh, ws : ws + sw * (ow - 1) + 1 : sw, :] += c6[
                    :, :, :, i, j, :
                ]
        return dxp[:, ph : ph + h, pw : pw + w, :].transpose(0, 3, 1, 2)
    c6 = cols.reshape(n, oh, ow, c, kh, kw)
    dxp = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            hs, ws = i * dh, j * dw
            dxp[:, :, hs : hs + sh * (oh - 1) + 1 : sh, ws : ws + sw * (ow - 1) + 1 : sw] += c6[
                :, :, :, :, i, j
            ].transpose(0, 3, 1, 2)
    return dxp[:, :, ph : ph + h, pw : pw + w]


def col2im_t(
    cols_t: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kernel: int | Pair,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    work: np.ndarray | None = None,
) -> np.ndarray:
    """The adjoint of :func:`im2col_t`, for the notes' (C*kh*kw, N*OH*OW) ``X_col`` gradient.

    Each of the kh*kw offsets adds one (C, N, OH, OW) block whose rows are contiguous, which
    is faster than gathering short (C,) or (kw,) runs when C is small (a first layer).
    Returns a new contiguous (N, C, H, W) array. ``work``, if given, is the (C, N, H+2ph, W+2pw)
    buffer to add into (its contents are overwritten): the fast path passes a reused one.
    """
    kernel, stride, padding, dilation = window_pairs(kernel, stride, padding, dilation)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh, ow = conv_geometry(x_shape, kernel, stride, padding, dilation)
    c6 = cols_t.reshape(c, kh, kw, n, oh, ow)
    # accumulate in the columns' own (C, N, Hp, Wp) order, so every add walks both operands in
    # the same memory order; one transposing copy to (N, C, H, W) at the end is cheaper than
    # kh*kw transposed adds
    shape = (c, n, h + 2 * ph, w + 2 * pw)
    if work is None:
        dxp = np.zeros(shape, dtype=cols_t.dtype)
    else:
        if work.shape != shape:
            raise ValueError(f"col2im_t: work buffer must have shape {shape}, got {work.shape}")
        dxp = work
        dxp.fill(0)
    for i in range(kh):
        for j in range(kw):
            hs, ws = i * dh, j * dw
            dxp[:, :, hs : hs + sh * (oh - 1) + 1 : sh, ws : ws + sw * (ow - 1) + 1 : sw] += c6[
                :, i, j
            ]
    # always a copy, so the result never aliases ``work``
    return dxp[:, :, ph : ph + h, pw : pw + w].transpose(1, 0, 2, 3).copy()


def im2col_extra_bytes(
    x_shape: tuple[int, int, int, int],
    kernel: int | Pair,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    itemsize: int = 4,
) -> int:
    """Bytes of the column matrix for an input of ``x_shape`` (what im2col costs on top of x).

    >>> im2col_extra_bytes((1, 3, 227, 227), 11, 4) // 4  # 363 * 3025 values
    1098075
    """
    kernel, stride, padding, dilation = window_pairs(kernel, stride, padding, dilation)
    n, c, _, _ = x_shape
    oh, ow = conv_geometry(x_shape, kernel, stride, padding, dilation)
    return n * oh * ow * c * kernel[0] * kernel[1] * itemsize
