"""Pooling forward and backward: max (with switches), average, L2-norm, adaptive and global.

Shapes: x (N, C, H, W) -> out (N, C, OH, OW), one depth slice at a time (pooling never mixes
channels). Output size per axis as in the notes, ``OH = (H + 2P - d*(F-1) - 1) // S + 1``, or
rounded up with ``ceil_mode`` as torch does (a last window must still start inside the input
or its left padding).

Every pool here loops over the kh*kw offsets of the window (4 iterations for the common 2x2
pool), each touching a whole strided (N, C, OH, OW) slab: no loop over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arith import effective_kernel, output_size
from ..errors import ShapeError
from .im2col import Pair, pair

__all__ = [
    "adaptive_avgpool2d_backward",
    "adaptive_avgpool2d_forward",
    "adaptive_maxpool2d_backward",
    "adaptive_maxpool2d_forward",
    "avgpool2d_backward",
    "avgpool2d_forward",
    "global_avgpool_backward",
    "global_avgpool_forward",
    "l2pool2d_backward",
    "l2pool2d_forward",
    "maxpool2d_backward",
    "maxpool2d_forward",
    "pool_out_size",
]


def pool_out_size(size: int, k: int, s: int, p: int, d: int = 1, ceil_mode: bool = False) -> int:
    """Pooled length along one axis, torch's rule (including ``ceil_mode``), from
    :func:`convnet.arith.output_size`; a window wider than the padded input is an error here.

    >>> pool_out_size(224, 2, 2, 0)  # VGG: halves the size
    112
    >>> pool_out_size(55, 3, 2, 0)  # AlexNet's overlapping pool
    27
    >>> pool_out_size(112, 3, 2, 0, ceil_mode=True)  # GoogLeNet rounds up
    56
    """
    span = effective_kernel(k, d)
    if 2 * p > k:
        raise ShapeError(f"pool padding {p} must be at most half the kernel {k}")
    if size + 2 * p < span:
        raise ShapeError(
            f"a pooling window of {span} does not fit an input of {size} with padding {p}"
        )
    return output_size(size, k, s, p, d, ceil_mode)


@dataclass
class PoolCache:
    x_shape: tuple[int, int, int, int]
    kernel: Pair
    stride: Pair
    padding: Pair
    dilation: Pair
    out_hw: Pair
    padded_hw: Pair
    extra: object = None  # switches for max, divisor for avg, (x, out) for L2


def _geometry(x, kernel, stride, padding, dilation, ceil_mode):
    if x.ndim != 4:
        raise ShapeError(f"pooling wants an (N, C, H, W) input, got shape {x.shape}")
    kernel = pair(kernel, "kernel")
    stride = pair(stride if stride is not None else kernel, "stride")
    padding, dilation = pair(padding, "padding"), pair(dilation, "dilation")
    _, _, h, w = x.shape
    oh = pool_out_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_out_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    # padded extent: left padding, plus whatever the last window needs on the right
    hp = max(h + 2 * padding[0], (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1)
    wp = max(w + 2 * padding[1], (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1)
    return kernel, stride, padding, dilation, (oh, ow), (hp, wp)


def _pad(x: np.ndarray, padding: Pair, padded_hw: Pair, value: float) -> np.ndarray:
    n, c, h, w = x.shape
    ph, pw = padding
    if (ph, pw) == (0, 0) and padded_hw == (h, w):
        return x
    xp = np.full((n, c, *padded_hw), value, dtype=x.dtype)
    xp[:, :, ph : ph + h, pw : pw + w] = x
    return xp


def _offsets(cache: PoolCache):
    """Yield (t, slice_h, slice_w): the strided slab of padded input read by window offset t."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = (
        cache.kernel,
        cache.stride,
        cache.dilation,
        cache.out_hw,
    )
    for i in range(kh):
        for j in range(kw):
            hs, ws = i * dh, j * dw
            yield (
                i * kw + j,
                slice(hs, hs + sh * (oh - 1) + 1, sh),
                slice(ws, ws + sw * (ow - 1) + 1, sw),
            )


def _crop(dxp: np.ndarray, cache: PoolCache) -> np.ndarray:
    _, _, h, w = cache.x_shape
    ph, pw = cache.padding
    return dxp[:, :, ph : ph + h, pw : pw + w]


def maxpool2d_forward(
    x: np.ndarray,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: int | Pair = 0,
    dilation: int | Pair = 1,
    ceil_mode: bool = False,
) -> tuple[np.ndarray, PoolCache]:
    """``out[n, c, i, j] = max over the window of x`` (padding counts as -inf, as in torch).

    The cache keeps the *switches*: for every output, which of the kh*kw window offsets held
    the maximum (the first one on ties, like torch), so the backward pass can route the
    gradient to it alone. ``stride`` defaults to the kernel size.
    """
    kernel, stride, padding, dilation, out_hw, padded_hw = _geometry(
        x, kernel_size, stride, padding, dilation, ceil_mode
    )
    cache = PoolCache(x.shape, kernel, stride, padding, dilation, out_hw, padded_hw)
    xp = _pad(x, padding, padded_hw, -np.inf)
    out = switches = None
    for t, hs, ws in _offsets(cache):
        slab = xp[:, :, hs, ws]
        if out is None:
            out = slab.copy()
            switches = np.zeros(
                out.shape, dtype=np.int16 if kernel[0] * kernel[1] < 2**15 else np.int32
            )
            continue
        better = slab > out  # strict: an earlier offset keeps a tie
        np.copyto(out, slab, where=better)
        switches[better] = t
    cache.extra = switches
    return out, cache


def maxpool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """Route each output's gradient to the input its switch points at; zero elsewhere.

    Overlapping windows (AlexNet's 3x3 stride 2) can pick the same input twice: the gradients
    add.
    """
    n, c = cache.x_shape[:2]
    dxp = np.zeros((n, c, *cache.padded_hw), dtype=dout.dtype)
    switches = cache.extra
    for t, hs, ws in _offsets(cache):
        dxp[:, :, hs, ws] += np.where(switches == t, dout, 0)
    return _crop(dxp, cache)


def _avg_divisor(
    size: int, k: int, s: int, p: int, out: int, count_include_pad: bool
) -> np.ndarray:
    """Per output position along one axis, the count torch divides by (its exact rule)."""
    start = np.arange(out) * s - p
    end = np.minimum(start + k, size + p)
    full = end - start  # the window clipped to the padded input (what count_include_pad counts)
    inside = np.minimum(end, size) - np.maximum(start, 0)
    return full if count_include_pad else inside


def avgpool2d_forward(
    x: np.ndarray,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: int | Pair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> tuple[np.ndarray, PoolCache]:
    """``out[n, c, i, j] = sum over the window of x / count`` (count as torch's avg_pool2d)."""
    kernel, stride, padding, dilation, out_hw, padded_hw = _geometry(
        x, kernel_size, stride, padding, 1, ceil_mode
    )
    cache = PoolCache(x.shape, kernel, stride, padding, dilation, out_hw, padded_hw)
    xp = _pad(x, padding, padded_hw, 0.0)
    out = np.zeros((*x.shape[:2], *out_hw), dtype=x.dtype)
    for _, hs, ws in _offsets(cache):
        out += xp[:, :, hs, ws]
    if divisor_override:
        div = np.full(out_hw, float(divisor_override))
    else:
        _, _, h, w = x.shape
        dh = _avg_divisor(h, kernel[0], stride[0], padding[0], out_hw[0], count_include_pad)
        dw = _avg_divisor(w, kernel[1], stride[1], padding[1], out_hw[1], count_include_pad)
        div = np.outer(dh, dw).astype(float)
    inv = (1.0 / div).astype(x.dtype)
    out *= inv
    cache.extra = inv
    return out, cache


def avgpool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """Every input in a window receives ``dout / count`` of that window."""
    n, c = cache.x_shape[:2]
    dxp = np.zeros((n, c, *cache.padded_hw), dtype=dout.dtype)
    g = dout * cache.extra
    for _, hs, ws in _offsets(cache):
        dxp[:, :, hs, ws] += g
    return _crop(dxp, cache)


def l2pool2d_forward(
    x: np.ndarray,
    kernel_size: int | Pair,
    stride: int | Pair | None = None,
    padding: int | Pair = 0,
) -> tuple[np.ndarray, PoolCache]:
    """L2-norm pooling: ``out = sqrt(sum over the window of x**2)`` (zero padding adds nothing).

    This is the norm, not the root-mean-square (``convnet.layers.L2Pool2d``'s convention).
    """
    kernel, stride, padding, dilation, out_hw, padded_hw = _geometry(
        x, kernel_size, stride, padding, 1, False
    )
    cache = PoolCache(x.shape, kernel, stride, padding, dilation, out_hw, padded_hw)
    xp = _pad(x, padding, padded_hw, 0.0)
    sq = np.zeros((*x.shape[:2], *out_hw), dtype=x.dtype)
    for _, hs, ws in _offsets(cache):
        sq += np.square(xp[:, :, hs, ws])
    out = np.sqrt(sq)
    cache.extra = (x, out)
    return out, cache


def l2pool2d_backward(dout: np.ndarray, cache: PoolCache) -> np.ndarray:
    """``d out / d x_u = x_u / out`` for each window containing u; a window of zeros sends 0."""
    x, out = cache.extra
    n, c = cache.x_shape[:2]
    safe = np.where(out > 0, out, 1)
    g = np.where(out > 0, dout / safe, 0).astype(dout.dtype)
    acc = np.zeros((n, c, *cache.padded_hw), dtype=dout.dtype)
    for _, hs, ws in _offsets(cache):
        acc[:, :, hs, ws] += g
    return x * _crop(acc, cache)


def _adaptive_bounds(size: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive windows: start = floor(i*size/out), end = ceil((i+1)*size/out)."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def _adaptive_matrix(size: int, out: int, dtype) -> np.ndarray:
    """(out, size) matrix averaging each adaptive window along one axis."""
    m = np.zeros((out, size), dtype=dtype)
    for i, (a, b) in enumerate(_adaptive_bounds(size, out)):
        m[i, a:b] = 1.0 / (b - a)
    return m


def adaptive_avgpool2d_forward(x: np.ndarray, output_size: int | Pair) -> tuple[np.ndarray, tuple]:
    """Adaptive average pooling to a fixed (OH, OW), e.g. AlexNet's 6x6 before its FC layers.

    A window's average is the product of a row average and a column average, so the pool is
    ``out = A_h @ x @ A_w.T`` with (OH, H) and (OW, W) averaging matrices. This covers uneven
    windows, the identity (H = OH) and upsampling (H < OH, windows of one pixel repeated).
    """
    oh, ow = pair(output_size, "output_size")
    _, _, h, w = x.shape
    ah, aw = _adaptive_matrix(h, oh, x.dtype), _adaptive_matrix(w, ow, x.dtype)
    out = np.matmul(np.matmul(ah, x), aw.T)
    return out, (ah, aw)


def adaptive_avgpool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``dx = A_h.T @ dout @ A_w`` (the pool is linear)."""
    ah, aw = cache
    return np.matmul(np.matmul(ah.T, dout), aw)


def adaptive_maxpool2d_forward(x: np.ndarray, output_size: int | Pair) -> tuple[np.ndarray, tuple]:
    """Adaptive max pooling (torch's windows), with switches as flat indices into each H*W slice."""
    oh, ow = pair(output_size, "output_size")
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    switches = np.empty((n, c, oh, ow), dtype=np.int64)
    for i, (h0, h1) in enumerate(_adaptive_bounds(h, oh)):
        for j, (w0, w1) in enumerate(_adaptive_bounds(w, ow)):
            win = x[:, :, h0:h1, w0:w1].reshape(n, c, -1)
            k = win.argmax(axis=2)
            out[:, :, i, j] = np.take_along_axis(win, k[..., None], axis=2)[..., 0]
            switches[:, :, i, j] = (h0 + k // (w1 - w0)) * w + (w0 + k % (w1 - w0))
    return out, (x.shape, switches)


def adaptive_maxpool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    x_shape, switches = cache
    n, c, h, w = x_shape
    dx = np.zeros((n * c, h * w), dtype=dout.dtype)
    rows = np.repeat(np.arange(n * c), switches.shape[2] * switches.shape[3])
    np.add.at(dx, (rows, switches.reshape(-1)), dout.reshape(-1))
    return dx.reshape(x_shape)


def global_avgpool_forward(x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """(N, C, H, W) -> (N, C): the mean of each depth slice (GoogLeNet's and ResNet's head)."""
    return x.mean(axis=(2, 3)), x.shape


def global_avgpool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    n, c, h, w = cache
    return np.broadcast_to((dout / (h * w))[:, :, None, None], cache).copy()
