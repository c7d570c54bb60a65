"""Winograd's minimal filtering F(4x4, 3x3): a 3x3, stride-1 convolution with 4x fewer MACs.

im2col multiplies every 3x3 window by every filter: 9 MACs per output value and input channel.
Winograd (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016) computes a
4x4 block of outputs from a 6x6 tile of input with 36 products instead of 4*4*9 = 144, so 2.25
MACs per output value and channel:

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* elementwise, per input channel, summed)

with ``g`` a 3x3 filter, ``d`` a 6x6 input tile (tiles overlap by 2), and the fixed matrices
``B^T`` (6x6), ``G`` (6x3) and ``A^T`` (4x6) below. Summed over channels, the elementwise
product becomes 36 independent matrix products ``V[e] (T, C) @ U[e] (C, K)``, one per tile
element ``e``, over all T tiles of the batch: the GEMMs that do the work, as im2col's one GEMM
does. The transforms are small matrix products too: ``kron(B^T, B^T)`` (36x36) on the gathered
tiles and ``kron(A^T, A^T)`` (16x36) on the products.

The price is rounding: the transforms' coefficients (up to 8 and 1/24) cost about a decimal
digit against direct summation in float32 (relative error about 1e-5 instead of 5e-7 on 64 to
256 channels). That is inside the 1e-4 the reference engine promises for values, but a ReLU
input that lands within rounding of zero can then fall on the other side of the kink than in
torch and move a gradient entry by a whole value; ``conv_algorithm("im2col")`` (in
:mod:`.functional_conv_fast`) keeps the exact-order sums where a comparison needs them.

>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((2, 5, 9, 7))
>>> w = rng.standard_normal((4, 5, 3, 3))
>>> y, _ = winograd_conv3x3(x, w, (1, 1))
>>> from convnet.reference.functional_conv_naive import conv2d_forward_naive
>>> bool(np.allclose(y, conv2d_forward_naive(x, w, None, padding=1)[0]))
True
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ._scratch import scratch
from .im2col import Pair
from .nhwc import copy_to_nhwc, is_nhwc

M, R = 4, 3  # outputs per tile side, filter side
TILE = M + R - 1  # 6

B_T = np.array(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=np.float64,
)
G = np.array(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=np.float64,
)
A_T = np.array(
    [
        [1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 0],
        [0, 1, 1, 4, 4, 0],
        [0, 1, -1, 8, -8, 1],
    ],
    dtype=np.float64,
)
_BB = np.kron(B_T, B_T)  # (36, 36): vec(B^T d B) = kron(B^T, B^T) vec(d), row-major vec
_GG = np.kron(G, G)  # (36, 9)
_AA = np.kron(A_T, A_T)  # (16, 36)


def applies(kernel: Pair, stride: Pair, dilation: Pair) -> bool:
    """Whether :func:`winograd_conv3x3` computes this convolution: 3x3, stride 1, no dilation."""
    return kernel == (3, 3) and stride == (1, 1) and dilation == (1, 1)


def pays(channels: int, k: int) -> bool:
    """Whether it is faster than im2col. With few channels the tile transforms (memory-bound
    copies) cost more than the smaller GEMMs save, so first layers keep im2col."""
    return channels >= 16 and k >= 16


def filter_transform(w: np.ndarray) -> np.ndarray:
    """``U[e, c, k] = (G w[k, c] G^T)[e]``: (K, C, 3, 3) -> (36, C, K)."""
    k, c = w.shape[:2]
    u = _GG.astype(w.dtype) @ w.reshape(k * c, 9).T  # (36, K*C)
    return np.ascontiguousarray(u.reshape(TILE * TILE, k, c).transpose(0, 2, 1))


# tiles gathered and transformed per block of images, so the block stays in cache between the
# gathering copy and the transform (about 1.4x faster than whole-batch passes on 32x32x64)
_BLOCK_BYTES = 2 * 2**20


def pad_to_tiles(x: np.ndarray, padding: Pair) -> np.ndarray:
    """x (N, C, H, W) copied into a zero-padded channels-last buffer of whole 6x6 tiles.

    Shape (N, 4*th + 2, 4*tw + 2, C), where th x tw tiles of 4x4 outputs cover the output.
    """
    n, c, h, wd = x.shape
    ph, pw = padding
    th, tw = -(-(h + 2 * ph - 2) // M), -(-(wd + 2 * pw - 2) // M)
    xp = scratch("winograd.xp", (n, M * th + 2, M * tw + 2, c), x.dtype)
    _zero_outside(xp, ph, ph + h, pw, pw + wd)
    copy_to_nhwc(x, xp[:, ph : ph + h, pw : pw + wd])
    return xp


def _zero_outside(buf: np.ndarray, top: int, bottom: int, left: int, right: int) -> None:
    """Zero an (N, H, W, C) buffer outside rows [top, bottom) and columns [left, right)."""
    buf[:, :top] = 0
    buf[:, bottom:] = 0
    buf[:, top:bottom, :left] = 0
    buf[:, top:bottom, right:] = 0


def _blocks(n: int, bytes_per_image: int) -> list[tuple[int, int]]:
    step = max(1, _BLOCK_BYTES // max(bytes_per_image, 1))
    return [(i, min(n, i + step)) for i in range(0, n, step)]


def _transform_tiles(
    buf: np.ndarray, size: int, mat: np.ndarray, th: int, tw: int, out: np.ndarray, bpi: int
) -> None:
    """``out[:, tiles] = mat @ tiles``: the size x size tiles of ``buf`` (N, H, W, ch) at stride
    4, th x tw per image, each flattened row-major, transformed by ``mat`` (36, size*size) into
    ``out`` (36, N*th*tw, ch); gathered and transformed a block of images at a time."""
    n, ch = buf.shape[0], buf.shape[3]
    sn, sh, sw, sc = buf.strides
    tiles = as_strided(
        buf, (size, size, n, th, tw, ch), (sh, sw, sn, M * sh, M * sw, sc), writeable=False
    )
    per = th * tw
    for i0, i1 in _blocks(n, bpi):
        d = np.ascontiguousarray(tiles[:, :, i0:i1]).reshape(size * size, -1)
        np.matmul(mat, d, out=out[:, i0 * per : i1 * per].reshape(out.shape[0], -1))


def winograd_conv3x3(x: np.ndarray, w: np.ndarray, padding: Pair) -> tuple[np.ndarray, np.ndarray]:
    """A stride-1 3x3 convolution of x (N, C, H, W) with w (K, C, 3, 3), no bias.

    Returns ``(out, v)``: out (N, K, OH, OW) whose memory is channels-last (a transposed view
    of an (N, OH, OW, K) array), like the im2col "hwc" path, and the transformed input tiles
    ``v`` (36, tiles, C), which :func:`winograd_weight_grad` reuses.
    """
    n, c, h, wd = x.shape
    k = w.shape[0]
    ph, pw = padding
    oh, ow = h + 2 * ph - 2, wd + 2 * pw - 2
    th, tw = -(-oh // M), -(-ow // M)
    per, t, e = th * tw, n * th * tw, TILE * TILE
    dtype = np.result_type(x, w)
    xp = pad_to_tiles(x.astype(dtype, copy=False), padding)
    bpi = e * per * max(c, k) * xp.itemsize  # bytes of one image's transformed tiles
    v = np.empty((e, t, c), dtype=dtype)  # V[e] = (B^T d B)[e] for every tile and channel
    _transform_tiles(xp, TILE, _BB.astype(dtype), th, tw, v, bpi)
    del xp
    u = filter_transform(w.astype(dtype, copy=False))
    prod = scratch("winograd.prod", (e, t, k), dtype)
    for j in range(e):  # one GEMM per tile element (a loop is faster than a stacked matmul here)
        np.matmul(v[j], u[j], out=prod[j])
    out = np.empty((n, M * th, M * tw, k), dtype=dtype)
    out6 = out.reshape(n, th, M, tw, M, k)
    aa = _AA.astype(dtype)
    for i0, i1 in _blocks(n, bpi):
        y = aa @ prod[:, i0 * per : i1 * per].reshape(e, -1)  # (16, tiles*K)
        out6[i0:i1] = y.reshape(M, M, i1 - i0, th, tw, k).transpose(2, 3, 0, 4, 1, 5)
    if (M * th, M * tw) != (oh, ow):
        out = np.ascontiguousarray(out[:, :oh, :ow])
    return out.transpose(0, 3, 1, 2), v


def winograd_weight_grad(dout: np.ndarray, v: np.ndarray) -> np.ndarray:
    """dw (K, C, 3, 3) of :func:`winograd_conv3x3` from dout (N, K, OH, OW) and its saved ``v``.

    The forward is a sum of products ``sum_e (A dY A^T)[e] (G g G^T)[e] (B^T d B)[e]`` over
    tiles, linear in each factor, so its derivative with respect to the filter ``g`` uses the
    same three matrices (the transposition principle):

        dW = G^T [ sum over tiles (A dY A^T) * (B^T d B) ] G

    with dY a 4x4 tile of dout. Per tile element that is one GEMM ``V[e]^T (C, T) @ D[e]
    (T, K)``: 36 GEMMs of 2.25 multiply-adds per output value instead of im2col's 9, and the
    transformed input ``V`` is the forward's, so no column matrix is built at all.
    """
    n, k, oh, ow = dout.shape
    e, t, c = v.shape
    th, tw = -(-oh // M), -(-ow // M)
    per = th * tw
    dtype = v.dtype
    # dout in channels-last 4x4 tiles, zero beyond the output's edge: (N, 4*th, 4*tw, K)
    if (oh, ow) == (M * th, M * tw) and is_nhwc(dout) and dout.dtype == dtype:
        dy = dout.transpose(0, 2, 3, 1)  # already whole tiles in channels-last memory
    else:
        dy = scratch("winograd.dy", (n, M * th, M * tw, k), dtype)
        _zero_outside(dy, 0, oh, 0, ow)
        copy_to_nhwc(dout, dy[:, :oh, :ow])
    dt = scratch("winograd.dt", (e, t, k), dtype)  # (A dY A^T)[e] for every tile and filter
    # kron(A, A) = kron(A^T, A^T)^T: (36, 16)
    _transform_tiles(dy, M, _AA.T.astype(dtype), th, tw, dt, e * per * k * dy.itemsize)
    del dy
    prod = np.empty((e, c, k), dtype=dtype)
    for j in range(e):
        np.matmul(v[j].T, dt[j], out=prod[j])
    dw = _GG.T.astype(dtype) @ prod.reshape(e, -1)  # kron(G^T, G^T): (9, 36) -> (9, C*K)
    return np.ascontiguousarray(dw.reshape(R, R, c, k).transpose(3, 2, 0, 1))
