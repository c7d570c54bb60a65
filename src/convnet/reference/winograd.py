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
torch and move a gradient entry by a whole value; ``algorithm="im2col"`` keeps the exact-order
sums where a comparison needs them.

>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((2, 5, 9, 7))
>>> w = rng.standard_normal((4, 5, 3, 3))
>>> y = winograd_conv3x3(x, w, (1, 1))
>>> from convnet.reference.functional_conv import conv2d_forward_naive
>>> bool(np.allclose(y, conv2d_forward_naive(x, w, None, padding=1)[0]))
True
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .im2col import Pair

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

    Shape (N, 4*th + 2, 4*tw + 2, C); its top-left (N, H + 2ph, W + 2pw, C) is the plain
    padded input, which the backward pass reuses for its im2col.
    """
    n, c, h, wd = x.shape
    ph, pw = padding
    th, tw = -(-(h + 2 * ph - 2) // M), -(-(wd + 2 * pw - 2) // M)
    xp = np.zeros((n, M * th + 2, M * tw + 2, c), dtype=x.dtype)
    xp[:, ph : ph + h, pw : pw + wd] = x.transpose(0, 2, 3, 1)
    return xp


def winograd_conv3x3(
    x: np.ndarray, w: np.ndarray, padding: Pair, xp: np.ndarray | None = None
) -> np.ndarray:
    """A stride-1 3x3 convolution of x (N, C, H, W) with w (K, C, 3, 3), no bias.

    ``xp`` is ``pad_to_tiles(x, padding)`` when the caller already has it. Returns
    (N, K, OH, OW) whose memory is channels-last (a transposed view of an (N, OH, OW, K)
    array), like the im2col "hwc" path.
    """
    n, c, h, wd = x.shape
    k = w.shape[0]
    ph, pw = padding
    oh, ow = h + 2 * ph - 2, wd + 2 * pw - 2
    th, tw = -(-oh // M), -(-ow // M)
    per, t, e = th * tw, n * th * tw, TILE * TILE
    dtype = np.result_type(x, w)
    if xp is None:
        xp = pad_to_tiles(x.astype(dtype, copy=False), padding)
    sn, sh, sw, sc = xp.strides
    tiles = as_strided(
        xp, (TILE, TILE, n, th, tw, c), (sh, sw, sn, M * sh, M * sw, sc), writeable=False
    )
    step = max(1, _BLOCK_BYTES // (e * per * max(c, k) * xp.itemsize))
    blocks = [(i, min(n, i + step)) for i in range(0, n, step)]
    bb, aa = _BB.astype(dtype), _AA.astype(dtype)
    v = np.empty((e, t, c), dtype=dtype)  # V[e] = (B^T d B)[e] for every tile and channel
    for i0, i1 in blocks:
        d = np.ascontiguousarray(tiles[:, :, i0:i1]).reshape(e, -1)
        np.matmul(bb, d, out=v[:, i0 * per : i1 * per].reshape(e, -1))
    u = filter_transform(w.astype(dtype, copy=False))
    prod = np.empty((e, t, k), dtype=dtype)
    for j in range(e):  # one GEMM per tile element (a loop is faster than a stacked matmul here)
        np.matmul(v[j], u[j], out=prod[j])
    del v
    out = np.empty((n, M * th, M * tw, k), dtype=dtype)
    out6 = out.reshape(n, th, M, tw, M, k)
    for i0, i1 in blocks:
        y = aa @ prod[:, i0 * per : i1 * per].reshape(e, -1)  # (16, tiles*K)
        out6[i0:i1] = y.reshape(M, M, i1 - i0, th, tw, k).transpose(2, 3, 0, 4, 1, 5)
    if (M * th, M * tw) != (oh, ow):
        out = np.ascontiguousarray(out[:, :oh, :ow])
    return out.transpose(0, 3, 1, 2)
