"""Forward/backward pairs for the non-convolutional layers.

Each ``*_forward`` returns ``(out, cache)`` and each ``*_backward(dout, cache)`` returns the
gradient of the input (and of the parameters, as a tuple, where there are any). Shapes are
NCHW for images and (N, D) for vectors; formulas are in each docstring.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from .im2col import Pair, col2im, conv_geometry, im2col, pair

__all__ = [
    "add_backward",
    "add_forward",
    "batchnorm_backward",
    "batchnorm_forward",
    "concat_backward",
    "concat_forward",
    "dropout_backward",
    "dropout_forward",
    "flatten_backward",
    "flatten_forward",
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_forward",
    "locally_connected2d_backward",
    "locally_connected2d_forward",
    "lrn_backward",
    "lrn_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
    "unbroadcast",
]

# ------------------------------------------------------------------------ activations


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``out = max(0, x)``; the cache is the mask of positive inputs."""
    mask = x > 0
    return x * mask, mask


def relu_backward(dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """``dx = dout * [x > 0]``: a ReLU passes the gradient where it was open."""
    return dout * cache


def leaky_relu_forward(x: np.ndarray, negative_slope: float = 0.01) -> tuple[np.ndarray, tuple]:
    """``out = x if x > 0 else negative_slope * x``."""
    mask = x > 0
    return np.where(mask, x, x * negative_slope), (mask, negative_slope)


def leaky_relu_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    mask, slope = cache
    return np.where(mask, dout, dout * slope)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``out = 1 / (1 + exp(-x))``, computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)
    return out, out


def sigmoid_backward(dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """``dx = dout * out * (1 - out)``."""
    return dout * cache * (1 - cache)


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.tanh(x)
    return out, out


def tanh_backward(dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """``dx = dout * (1 - out**2)``."""
    return dout * (1 - cache * cache)


def softmax_forward(x: np.ndarray, axis: int = 1) -> tuple[np.ndarray, tuple]:
    """``out = exp(x - max) / sum(exp(x - max))`` along ``axis`` (the classes): probabilities.

    Subtracting the maximum first changes nothing mathematically and keeps exp from
    overflowing. As a layer it ends a network (``... -> FC -> SOFTMAX``); for training, the
    loss functions in :mod:`.losses` take the scores before it.
    """
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    out = e / e.sum(axis=axis, keepdims=True)
    return out, (out, axis)


def softmax_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``dx = out * (dout - sum(dout * out))`` along the axis: the softmax's Jacobian,
    ``diag(out) - out out^T``, applied to dout without forming it."""
    out, axis = cache
    return out * (dout - (dout * out).sum(axis=axis, keepdims=True))


# ----------------------------------------------------------------------------- linear


def linear_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> tuple[np.ndarray, tuple]:
    """A fully connected layer, torch's weight layout: x (..., D), w (M, D), b (M,) -> (..., M).

    ``out = x @ w.T + b``: every output neuron is connected to every input value.
    """
    if x.shape[-1] != w.shape[1]:
        raise ShapeError(
            f"linear: input has {x.shape[-1]} features but the weight {w.shape} expects {w.shape[1]}"
        )
    out = x @ w.T
    if b is not None:
        out += b
    return out, (x, w, b is not None)


def linear_backward(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``dx = dout @ w``, ``dw = dout.T @ x`` (summed over the batch), ``db = sum(dout)``."""
    x, w, has_bias = cache
    d2 = dout.reshape(-1, dout.shape[-1])
    x2 = x.reshape(-1, x.shape[-1])
    dx = dout @ w
    dw = d2.T @ x2
    db = d2.sum(axis=0, dtype=np.float64).astype(d2.dtype) if has_bias else None
    return dx, dw, db


# ------------------------------------------------------------------------- batch norm


def batchnorm_forward(
    x: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, tuple]:
    """Batch normalization over every axis but the channel axis 1 ((N, C) or (N, C, H, W)).

    Training: ``xhat = (x - mean) / sqrt(var + eps)`` with the batch's mean and biased
    variance, ``out = gamma * xhat + beta``; the running statistics move in place by
    ``r = (1 - momentum) * r + momentum * batch_stat`` (the variance unbiased, as torch does).
    Evaluation uses the running statistics instead.
    """
    axes = (0,) + tuple(range(2, x.ndim))
    shape = [1] * x.ndim
    shape[1] = x.shape[1]
    if training or running_mean is None:
        # sums over up to N*H*W values accumulate in float64: a float32 running sum over
        # strided axes loses digits that batch norm's cancellations then expose
        mean = x.mean(axis=axes, dtype=np.float64)
        xc = x - mean.reshape(shape).astype(x.dtype)
        var = np.mean(xc * xc, axis=axes, dtype=np.float64)
        m = x.size // x.shape[1]
        if training and running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * (m / max(m - 1, 1))
        batch_stats = True
    else:
        xc = x - running_mean.reshape(shape).astype(x.dtype)
        var = running_var.astype(x.dtype)
        batch_stats = False
    invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = xc * invstd.reshape(shape)
    out = xhat * gamma.reshape(shape) if gamma is not None else xhat.copy()
    if beta is not None:
        out += beta.reshape(shape)
    return out, (xhat, invstd, gamma, beta is not None, batch_stats, axes, shape)


def batchnorm_backward(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Gradients (dx, dgamma, dbeta). With batch statistics, mean and variance depend on x:

    ``dx = invstd / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))``, with
    ``dxhat = dout * gamma`` and m the number of values per channel.
    """
    xhat, invstd, gamma, has_beta, batch_stats, axes, shape = cache
    dt = dout.dtype
    dgamma = (
        np.sum(dout * xhat, axis=axes, dtype=np.float64).astype(dt) if gamma is not None else None
    )
    dbeta = dout.sum(axis=axes, dtype=np.float64).astype(dt) if has_beta else None
    dxhat = dout * gamma.reshape(shape) if gamma is not None else dout
    if not batch_stats:
        return dxhat * invstd.reshape(shape), dgamma, dbeta
    m = dout.size // dout.shape[1]
    s1 = dxhat.sum(axis=axes, dtype=np.float64).astype(dt).reshape(shape)
    s2 = np.sum(dxhat * xhat, axis=axes, dtype=np.float64).astype(dt).reshape(shape)
    dx = (invstd.reshape(shape) / m) * (m * dxhat - s1 - xhat * s2)
    return dx, dgamma, dbeta


# -------------------------------------------------------------------------------- LRN


def _channel_window_sum(a: np.ndarray, before: int, after: int) -> np.ndarray:
    """``s[:, c] = sum of a[:, c - before : c + after + 1]`` (clipped), via a cumulative sum."""
    n, c = a.shape[:2]
    cs = np.zeros((n, c + 1, *a.shape[2:]), dtype=a.dtype)
    np.cumsum(a, axis=1, out=cs[:, 1:])
    hi = np.minimum(np.arange(c) + after + 1, c)
    lo = np.maximum(np.arange(c) - before, 0)
    return cs[:, hi] - cs[:, lo]


def lrn_forward(
    x: np.ndarray, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0
) -> tuple[np.ndarray, tuple]:
    """Local response normalization across channels, exactly ``torch.nn.LocalResponseNorm``.

    ``s[c] = k + alpha / size * sum_{c' = c - size//2}^{c + (size-1)//2} x[c']**2`` (channels
    outside the input count as 0) and ``out[c] = x[c] * s[c] ** -beta``.
    """
    s = k + (alpha / size) * _channel_window_sum(x * x, size // 2, (size - 1) // 2)
    scale = s ** (-beta)
    out = x * scale
    return out, (x, s, scale, size, alpha, beta)


def lrn_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """``dx[j] = dout[j] s[j]**-beta - 2 alpha beta / size * x[j] * sum_{c: j in window(c)}
    dout[c] x[c] s[c]**(-beta-1)``; the windows containing j are the transposed window."""
    x, s, scale, size, alpha, beta = cache
    t = dout * x * scale / s
    back = _channel_window_sum(t, (size - 1) // 2, size // 2)
    return dout * scale - (2 * alpha * beta / size) * x * back


# ---------------------------------------------------------------------------- dropout


def dropout_forward(
    x: np.ndarray, p: float, training: bool = True, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverted dropout: keep each value with probability 1-p and scale it by 1/(1-p) in
    training, so evaluation is the identity (no rescaling at test time)."""
    if not training or p == 0:
        return x, None
    if p >= 1:
        mask = np.zeros_like(x)
    else:
        rng = rng if rng is not None else np.random.default_rng()
        mask = (rng.random(x.shape) >= p).astype(x.dtype) / (1 - p)
    return x * mask, mask


def dropout_backward(dout: np.ndarray, cache: np.ndarray | None) -> np.ndarray:
    return dout if cache is None else dout * cache


# ---------------------------------------------------------------- locally connected


def locally_connected2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    kernel_size: int | Pair,
    stride: int | Pair = 1,
    padding: int | Pair = 0,
) -> tuple[np.ndarray, tuple]:
    """A convolution without parameter sharing: every output position has its own filters.

    x (N, C, H, W), w (L = OH*OW, K, C*kh*kw) with patches ordered (c, u, v) as
    ``torch.nn.functional.unfold`` orders them, b (K, OH, OW) or None -> out (N, K, OH, OW):
    ``out[n, k, i, j] = b[k, i, j] + sum_p w[i*OW + j, k, p] * cols[n, (i, j), p]``.
    One batched GEMM over the L positions does it.
    """
    kernel, stride, padding = (
        pair(kernel_size, "kernel"),
        pair(stride, "stride"),
        pair(padding, "padding"),
    )
    n, c = x.shape[:2]
    oh, ow = conv_geometry(x.shape, kernel, stride, padding, (1, 1))
    ell, k, patch = w.shape
    if ell != oh * ow or patch != c * kernel[0] * kernel[1]:
        raise ShapeError(
            f"locally connected: weight {w.shape} does not fit input {x.shape} "
            f"(expects ({oh * ow}, K, {c * kernel[0] * kernel[1]}))"
        )
    cols = im2col(x, kernel, stride, padding, 1, "chw").reshape(n, ell, patch).transpose(1, 0, 2)
    out = np.matmul(cols, w.transpose(0, 2, 1))  # (L, N, K)
    out = out.transpose(1, 2, 0).reshape(n, k, oh, ow)
    if b is not None:
        out = out + b
    return out, (x.shape, cols, w, b is not None, kernel, stride, padding)


def locally_connected2d_backward(
    dout: np.ndarray, cache: tuple
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per position L: ``dw[L] = dout[L].T @ cols[L]``, ``dcols[L] = dout[L] @ w[L]``; then
    col2im. No sum over positions here: that sum is what parameter sharing would add."""
    x_shape, cols, w, has_bias, kernel, stride, padding = cache
    n, k, oh, ow = dout.shape
    d = dout.reshape(n, k, oh * ow).transpose(2, 0, 1)  # (L, N, K)
    dw = np.matmul(d.transpose(0, 2, 1), cols)
    dcols = np.matmul(d, w).transpose(1, 0, 2).reshape(n * oh * ow, -1)
    dx = col2im(dcols, x_shape, kernel, stride, padding, 1, "chw")
    db = dout.sum(axis=0, dtype=np.float64).astype(dout.dtype) if has_bias else None
    return dx, dw, db


# ------------------------------------------------------------ reshape, concat, add


def flatten_forward(
    x: np.ndarray, start_dim: int = 1, end_dim: int = -1
) -> tuple[np.ndarray, tuple]:
    """Merge axes start_dim..end_dim (torch.flatten's rule): (N, C, H, W) -> (N, C*H*W)."""
    nd = x.ndim
    s, e = start_dim % nd, end_dim % nd
    shape = x.shape[:s] + (int(np.prod(x.shape[s : e + 1])),) + x.shape[e + 1 :]
    return x.reshape(shape), x.shape


def flatten_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    return dout.reshape(cache)


def concat_forward(xs: list[np.ndarray], axis: int = 1) -> tuple[np.ndarray, tuple]:
    """Stack branch outputs along depth (GoogLeNet's inception, DenseNet's dense block)."""
    sizes = [x.shape[axis] for x in xs]
    return np.concatenate(xs, axis=axis), (sizes, axis)


def concat_backward(dout: np.ndarray, cache: tuple) -> list[np.ndarray]:
    """Each branch gets back its own slice of the gradient."""
    sizes, axis = cache
    return np.split(dout, np.cumsum(sizes)[:-1], axis=axis)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes NumPy broadcasting expanded, back to ``shape``."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for i, s in enumerate(shape):
        if s == 1 and grad.shape[i] != 1:
            grad = grad.sum(axis=i, keepdims=True)
    return grad


def add_forward(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, tuple]:
    """``out = a + b`` (a residual connection); broadcasting allowed."""
    return a + b, (np.shape(a), np.shape(b))


def add_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray]:
    """An addition copies the gradient to both inputs (summed back over broadcast axes)."""
    sa, sb = cache
    return unbroadcast(dout, sa), unbroadcast(dout, sb)
