"""Layers that join, split and reshape activations: what branches and shortcuts need.

Each is a :class:`~convnet.reference.layers.Layer` taking one or several inputs; ``backward``
returns one gradient per input (``None`` for an input that is not an array, e.g. a shape).
"""

from __future__ import annotations

import numpy as np

from . import functional as F
from .layers import Layer

__all__ = [
    "Add",
    "Concat",
    "FunctionalConv2d",
    "FunctionalLinear",
    "GlobalAvgPool",
    "Mean",
    "Mul",
    "Pad",
    "ParamLayer",
    "Reshape",
    "Slice",
    "Sub",
]


class Add(Layer):
    """``a + b`` (ResNet's shortcut); either may be a constant."""

    def forward(self, a, b):
        self.cache = (
            np.shape(a),
            np.shape(b),
            isinstance(a, np.ndarray),
            isinstance(b, np.ndarray),
        )
        return a + b

    def backward(self, dout):
        sa, sb, ta, tb = self.cache
        return (F.unbroadcast(dout, sa) if ta else None, F.unbroadcast(dout, sb) if tb else None)


class Sub(Layer):
    """``a - b``."""

    def forward(self, a, b):
        self.cache = (
            np.shape(a),
            np.shape(b),
            isinstance(a, np.ndarray),
            isinstance(b, np.ndarray),
        )
        return a - b

    def backward(self, dout):
        sa, sb, ta, tb = self.cache
        return (F.unbroadcast(dout, sa) if ta else None, -F.unbroadcast(dout, sb) if tb else None)


class Mul(Layer):
    """``a * b`` elementwise (a gate, or a constant scale)."""

    def forward(self, a, b):
        self.cache = (a, b)
        return a * b

    def backward(self, dout):
        a, b = self.cache
        da = F.unbroadcast(dout * b, np.shape(a)) if isinstance(a, np.ndarray) else None
        db = F.unbroadcast(dout * a, np.shape(b)) if isinstance(b, np.ndarray) else None
        return da, db


class Concat(Layer):
    """Concatenate its inputs along ``axis`` (GoogLeNet's and DenseNet's depth stacking)."""

    def __init__(self, axis: int = 1) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *xs):
        out, self.cache = F.concat_forward(list(xs), self.axis)
        return out

    def backward(self, dout):
        return tuple(F.concat_backward(dout, self.cache))


class Reshape(Layer):
    """``x.reshape(*shape)``; shape entries may be computed at run time (``x.size(0)``)."""

    def forward(self, x, *shape):
        self.cache = (x.shape, len(shape))
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return x.reshape(tuple(int(s) for s in shape))

    def backward(self, dout):
        x_shape, n = self.cache
        return (dout.reshape(x_shape),) + (None,) * n


class Pad(Layer):
    """Constant padding in torch's ``F.pad`` order: (left, right) of the last axis first.

    ResNet's option-A shortcut uses it to add all-zero channels; negative widths crop.
    """

    def __init__(self, pad: tuple[int, ...], value: float = 0.0) -> None:
        super().__init__()
        self.pad, self.value = tuple(int(p) for p in pad), value

    def _widths(self, ndim: int) -> list[tuple[int, int]]:
        widths = [(0, 0)] * ndim
        for i in range(len(self.pad) // 2):
            widths[ndim - 1 - i] = (self.pad[2 * i], self.pad[2 * i + 1])
        return widths

    def forward(self, x):
        widths = self._widths(x.ndim)
        self.cache = (x.shape, widths)
        shape = tuple(s + a + b for s, (a, b) in zip(x.shape, widths))
        out = np.full(shape, self.value, dtype=x.dtype)
        dst = tuple(
            slice(max(a, 0), max(a, 0) + s + min(a, 0) + min(b, 0))
            for s, (a, b) in zip(x.shape, widths)
        )
        src = tuple(slice(-min(a, 0), s + min(b, 0)) for s, (a, b) in zip(x.shape, widths))
        out[dst] = x[src]
        return out

    def backward(self, dout):
        x_shape, widths = self.cache
        dx = np.zeros(x_shape, dtype=dout.dtype)
        dst = tuple(
            slice(max(a, 0), max(a, 0) + s + min(a, 0) + min(b, 0))
            for s, (a, b) in zip(x_shape, widths)
        )
        src = tuple(slice(-min(a, 0), s + min(b, 0)) for s, (a, b) in zip(x_shape, widths))
        dx[src] = dout[dst]
        return dx

    def extra_repr(self) -> str:
        return f"pad={self.pad}, value={self.value}"


class Slice(Layer):
    """Basic indexing ``x[index]`` (slices, ints, None, Ellipsis), e.g. ``x[:, :, ::2, ::2]``.

    Basic indexing never repeats an element, so the gradient is ``dx[index] = dout``.
    """

    def __init__(self, index) -> None:
        super().__init__()
        self.index = index

    def forward(self, x):
        self.cache = (x.shape, x.dtype)
        return x[self.index]

    def backward(self, dout):
        shape, dtype = self.cache
        dx = np.zeros(shape, dtype=dout.dtype)
        dx[self.index] = dout
        return dx


class Mean(Layer):
    """``x.mean(axis, keepdims)`` (a global average pool written as a mean)."""

    def __init__(self, axis, keepdims: bool = False) -> None:
        super().__init__()
        self.axis = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
        self.keepdims = keepdims

    def forward(self, x):
        axis = tuple(a % x.ndim for a in self.axis)
        self.cache = (x.shape, axis)
        return x.mean(axis=axis, keepdims=self.keepdims)

    def backward(self, dout):
        shape, axis = self.cache
        count = int(np.prod([shape[a] for a in axis]))
        if not self.keepdims:
            dout = np.expand_dims(dout, axis)
        return np.broadcast_to(dout / count, shape).copy()


class GlobalAvgPool(Layer):
    """(N, C, H, W) -> (N, C): the mean of each depth slice."""

    def forward(self, x):
        out, self.cache = F.global_avgpool_forward(x)
        return out

    def backward(self, dout):
        return F.global_avgpool_backward(dout, self.cache)


class ParamLayer(Layer):
    """A parameter used directly by a function (``F.linear(x, self.weight)``): its output is the
    array itself, its gradient whatever flows back to it."""

    def __init__(self, value: np.ndarray) -> None:
        super().__init__()
        self.params["value"] = value

    def forward(self):
        return self.params["value"]

    def backward(self, dout):
        self.grads["value"] = dout
        return ()


class FunctionalConv2d(Layer):
    """``F.conv2d(x, w, b, ...)`` with the weight and bias as inputs (gradients returned)."""

    def __init__(self, stride=1, padding=0, dilation=1, groups=1) -> None:
        super().__init__()
        self.kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

    def forward(self, x, w, b=None):
        out, self.cache = F.conv2d_forward(x, w, b, **self.kw)
        return out

    def backward(self, dout):
        return F.conv2d_backward(dout, self.cache)


class FunctionalLinear(Layer):
    """``F.linear(x, w, b)`` with the weight and bias as inputs (gradients returned)."""

    def forward(self, x, w, b=None):
        out, self.cache = F.linear_forward(x, w, b)
        return out

    def backward(self, dout):
        return F.linear_backward(dout, self.cache)
