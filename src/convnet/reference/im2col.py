"""im2col and col2im: a convolution as one matrix multiply.

The notes' example: AlexNet's first layer reads a 227x227x3 input with 96 filters of 11x11x3 at
stride 4, so there are (227 - 11) / 4 + 1 = 55 positions per axis. Stretching every receptive
field into a row gives a [3025 x 363] matrix (the notes draw its transpose, [363 x 3025]); the
filters stretched into a [363 x 96] matrix, one GEMM computes all 55*55*96 dot products.

Here the receptive fields are gathered with ``numpy.lib.stride_tricks.as_strided`` (a view,
no Python loop over pixels) and copied once into a contiguous matrix. Its memory is the
price the notes warn about: every input value is copied about ``(kh*kw) / (stride**2)`` times.

Two column orders are used, and the weight matrix is reshaped to match:

- ``"hwc"``: columns ordered (kh, kw, C); read from a channels-last (N, Hp, Wp, C) buffer, each
  copied run is C values long. Best when C is large and the image small (deep layers).
- ``"chw"``: columns ordered (C, kh, kw); read from an (N, C, Hp, Wp) buffer, each run is kw
  values long.

The fast convolution also uses the notes' own orientation, :func:`im2col_t`: the *transposed*
column matrix [C*kh*kw x N*OH*OW] (the notes' ``X_col``). It is read straight from the NCHW
input: each of its rows is a whole (N, OH, OW) plane of one input channel at one kernel offset,
so the copied runs are OW values long (at stride 1), and an NCHW input needs no channels-last
transpose first. Best when the image is at least as wide as C is deep (the first layers);
``"hwc"`` wins when C is large and the image small (deep layers), see :func:`choose_layout`.

Output size per axis (the notes' formula, with dilation d): ``(W - d*(F-1) - 1 + 2P) // S + 1``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ShapeError
from ._scratch import scratch

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

    >>> out_size(227, 11, 4, 0)  # AlexNet conv1
    55
    >>> out_size(11, 5, 2, 0)  # the notes' 11x11x4 example
    4
    """
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ShapeError(
            f"a kernel spanning {span} does not fit an input of {size} with padding {padding}; "
            "use a smaller kernel or dilation, or more padding"
        )
    return (size + 2 * padding - span) // stride + 1


def conv_geometry(
    x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
) -> Pair:
    """(OH, OW) of a convolution or pooling over an (N, C, H, W) input."""
    _, _, h, w = x_shape
    return (
        out_size(h, kernel[0], stride[0], padding[0], dilation[0]),
        out_size(w, kernel[1], stride[1], padding[1], dilation[1]),
    )


def copy_to_nhwc(x: np.ndarray, out: np.ndarray) -> None:
    """Copy x (N, C, H, W) into ``out`` (N, H, W, C), which may be a window of a larger buffer.

    NumPy copies a transpose element by element; from a contiguous NCHW array every read is
    H*W values after the last, and when that stride is a multiple of 4 KiB (any 32x32 or
    64x64 float32 map) the reads all compete for the same cache sets. Staging each image in a
    buffer whose rows are 16 values longer breaks the pattern: 2.7 ms instead of 6.8 ms for a
    64x64x32x32 float32 batch.
    """
    n, c, h, w = x.shape
    if not x.flags.c_contiguous or n * c * h * w == 0:
        np.copyto(out, x.transpose(0, 2, 3, 1))
        return
    hw = h * w
    stage = scratch("copy_to_nhwc", (c, hw + 16), x.dtype)
    rows = stage[:, :hw]
    for i, image in enumerate(x.reshape(n, c, hw)):
        rows[...] = image
        np.copyto(out[i], rows.T.reshape(h, w, c))


def pad_nhwc(x: np.ndarray, padding: Pair) -> np.ndarray:
    """Copy an (N, C, H, W) array into a zero-padded channels-last (N, H+2ph, W+2pw, C) buffer.

    One copy does both the padding and the layout change. If ``x`` already lives in
    channels-last memory (a previous fast conv returns such views) and needs no padding, the
    result is a free view.
    """
    n, c, h, w = x.shape
    ph, pw = padding
    if ph == 0 and pw == 0:
        if is_nhwc(x):
            return x.transpose(0, 2, 3, 1)
        xp = np.empty((n, h, w, c), dtype=x.dtype)
    else:
        xp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
    copy_to_nhwc(x, xp[:, ph : ph + h, pw : pw + w, :])
    return xp


def is_nhwc(x: np.ndarray) -> bool:
    """Whether an (N, C, H, W) array's memory is channels-last (N, H, W, C), C-contiguous."""
    return x.transpose(0, 2, 3, 1).flags.c_contiguous


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


def choose_layout(channels: int, kernel_w: int, out_w: int) -> str:
    """Pick the fast convolution's column layout: ``"chw_t"``, ``"hwc"`` or ``"chw"``.

    The one whose innermost copied run is longest (see the module docstring): OW values for
    ``"chw_t"``, C for ``"hwc"``, kw for ``"chw"``; ties go to ``"chw_t"``, which also skips
    the channels-last transpose of an NCHW input and whose GEMM ``w_matrix @ cols_t`` runs a
    little faster in OpenBLAS. So first layers (C = 3) and wide images use ``"chw_t"``, deep
    layers with many channels on small images use ``"hwc"``.
    """
    if channels <= out_w:
        return "chw_t"
    return "hwc" if channels >= kernel_w else "chw"


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
) -> np.ndarray:
    """:func:`col2im` for the transposed column matrix, (C*kh*kw, N*OH*OW) in (c, u, v) order.

    Each of the kh*kw offsets adds one (C, N, OH, OW) block whose rows are contiguous, which
    is faster than gathering short (C,) or (kw,) runs when C is small (a first layer).
    Returns (N, C, H, W).
    """
    kernel, stride, padding, dilation = window_pairs(kernel, stride, padding, dilation)
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh, ow = conv_geometry(x_shape, kernel, stride, padding, dilation)
    c6 = cols_t.reshape(c, kh, kw, n, oh, ow)
    # accumulate in the columns' own (C, N, Hp, Wp) order, so every add walks both operands in
    # the same memory order; one transposing copy to (N, C, H, W) at the end is cheaper than
    # kh*kw transposed adds
    dxp = scratch("col2im_t.dxp", (c, n, h + 2 * ph, w + 2 * pw), cols_t.dtype)
    dxp.fill(0)
    for i in range(kh):
        for j in range(kw):
            hs, ws = i * dh, j * dw
            dxp[:, :, hs : hs + sh * (oh - 1) + 1 : sh, ws : ws + sw * (ow - 1) + 1 : sw] += c6[
                :, i, j
            ]
    # dxp is scratch: always copy, even where the slice happens to be contiguous
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
