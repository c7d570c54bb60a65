"""Layer objects: each holds its parameters, their gradients, and the cache of its last forward.

A layer is ``forward(*inputs) -> out`` then ``backward(dout) -> dinput`` (a tuple when it has
several inputs). Parameters live in ``layer.params`` (torch's names: ``weight``, ``bias``) and
the gradients of the last backward in ``layer.grads`` under the same names. ``layer.training``
switches batch norm and dropout between their training and evaluation behaviour.

Layers that build their own parameters use He initialization (std = sqrt(2 / fan_in)), the
notes' recommendation for ReLU networks.
"""

from __future__ import annotations

import numpy as np

from . import functional as F
from .im2col import Pair, conv_geometry, pair

__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "BatchNorm",
    "Conv2d",
    "Dropout",
    "Flatten",
    "L2Pool2d",
    "LRN",
    "Layer",
    "LeakyReLU",
    "Linear",
    "LocallyConnected2d",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "TableConv2d",
    "Tanh",
]


class Layer:
    """Base class: no parameters, identity forward and backward."""

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}
        self.training = True
        self.cache = None

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout

    def __call__(self, *xs):
        return self.forward(*xs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _he(
    rng: np.random.Generator | None, shape: tuple[int, ...], fan_in: int, dtype, init: bool = True
) -> np.ndarray:
    if not init:  # the caller fills the weights in (from_torch); skip drawing 100M normals
        return np.zeros(shape, dtype=dtype)
    rng = rng if rng is not None else np.random.default_rng()
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)


class Conv2d(Layer):
    """Convolution, weight (K, C/groups, kh, kw), bias (K,). ``fast=False`` uses the loops."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Pair,
        stride: int | Pair = 1,
        padding: int | Pair = 0,
        dilation: int | Pair = 1,
        groups: int = 1,
        bias: bool = True,
        fast: bool = True,
        rng: np.random.Generator | None = None,
        dtype=np.float32,
        init: bool = True,
    ) -> None:
        super().__init__()
        kh, kw = pair(kernel_size, "kernel_size")
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.fast = fast
        fan_in = in_channels // groups * kh * kw
        self.params["weight"] = _he(
            rng, (out_channels, in_channels // groups, kh, kw), fan_in, dtype, init
        )
        if bias:
            self.params["bias"] = np.zeros(out_channels, dtype=dtype)

    def forward(self, x):
        fwd = F.conv2d_forward if self.fast else F.conv2d_forward_naive
        out, self.cache = fwd(
            x,
            self.params["weight"],
            self.params.get("bias"),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
        return out

    def backward(self, dout):
        bwd = F.conv2d_backward if self.fast else F.conv2d_backward_naive
        dx, dw, db = bwd(dout, self.cache)
        self.grads["weight"] = dw
        if db is not None:
            self.grads["bias"] = db
        return dx

    def extra_repr(self) -> str:
        k, c, kh, kw = self.params["weight"].shape
        return f"{c * self.groups}, {k}, kernel_size=({kh}, {kw}), stride={self.stride}, padding={self.padding}"


class Linear(Layer):
    """Fully connected, weight (M, D), bias (M,)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        rng=None,
        dtype=np.float32,
        init: bool = True,
    ) -> None:
        super().__init__()
        self.params["weight"] = _he(rng, (out_features, in_features), in_features, dtype, init)
        if bias:
            self.params["bias"] = np.zeros(out_features, dtype=dtype)

    def forward(self, x):
        out, self.cache = F.linear_forward(x, self.params["weight"], self.params.get("bias"))
        return out

    def backward(self, dout):
        dx, dw, db = F.linear_backward(dout, self.cache)
        self.grads["weight"] = dw
        if db is not None:
            self.grads["bias"] = db
        return dx

    def extra_repr(self) -> str:
        m, d = self.params["weight"].shape
        return f"{d}, {m}"


class LocallyConnected2d(Layer):
    """Unshared filters: weight (OH*OW, K, C*kh*kw), bias (K, OH, OW) (convnet.layers' layout)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        in_size: int | Pair,
        kernel_size: int | Pair,
        stride: int | Pair = 1,
        padding: int | Pair = 0,
        bias: bool = True,
        rng=None,
        dtype=np.float32,
        init: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = pair(kernel_size), pair(stride), pair(padding)
        h, w = pair(in_size)
        oh, ow = conv_geometry(
            (1, in_channels, h, w), self.kernel_size, self.stride, self.padding, (1, 1)
        )
        patch = in_channels * self.kernel_size[0] * self.kernel_size[1]
        self.params["weight"] = _he(rng, (oh * ow, out_channels, patch), patch, dtype, init)
        if bias:
            self.params["bias"] = np.zeros((out_channels, oh, ow), dtype=dtype)

    def forward(self, x):
        out, self.cache = F.locally_connected2d_forward(
            x,
            self.params["weight"],
            self.params.get("bias"),
            self.kernel_size,
            self.stride,
            self.padding,
        )
        return out

    def backward(self, dout):
        dx, dw, db = F.locally_connected2d_backward(dout, self.cache)
        self.grads["weight"] = dw
        if db is not None:
            self.grads["bias"] = db
        return dx


class BatchNorm(Layer):
    """Batch norm over channel axis 1 of (N, C) or (N, C, H, W); running stats in ``buffers``."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        self.eps, self.momentum = eps, momentum
        if affine:
            self.params["weight"] = np.ones(num_features, dtype=dtype)
            self.params["bias"] = np.zeros(num_features, dtype=dtype)
        if track_running_stats:
            self.buffers["running_mean"] = np.zeros(num_features, dtype=dtype)
            self.buffers["running_var"] = np.ones(num_features, dtype=dtype)

    def forward(self, x):
        out, self.cache = F.batchnorm_forward(
            x,
            self.params.get("weight"),
            self.params.get("bias"),
            self.buffers.get("running_mean"),
            self.buffers.get("running_var"),
            self.training,
            self.momentum,
            self.eps,
        )
        return out

    def backward(self, dout):
        dx, dgamma, dbeta = F.batchnorm_backward(dout, self.cache)
        if dgamma is not None:
            self.grads["weight"] = dgamma
        if dbeta is not None:
            self.grads["bias"] = dbeta
        return dx


class _Stateless(Layer):
    """A layer wrapping one functional pair with fixed keyword arguments."""

    _fwd = _bwd = None

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        out, self.cache = type(self)._fwd(x, **self.kwargs)
        return out

    def backward(self, dout):
        return type(self)._bwd(dout, self.cache)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.kwargs.items())


class ReLU(_Stateless):
    _fwd, _bwd = staticmethod(F.relu_forward), staticmethod(F.relu_backward)


class LeakyReLU(_Stateless):
    _fwd, _bwd = staticmethod(F.leaky_relu_forward), staticmethod(F.leaky_relu_backward)

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__(negative_slope=negative_slope)


class Sigmoid(_Stateless):
    _fwd, _bwd = staticmethod(F.sigmoid_forward), staticmethod(F.sigmoid_backward)


class Tanh(_Stateless):
    _fwd, _bwd = staticmethod(F.tanh_forward), staticmethod(F.tanh_backward)


class Softmax(_Stateless):
    _fwd, _bwd = staticmethod(F.softmax_forward), staticmethod(F.softmax_backward)

    def __init__(self, axis: int = 1) -> None:
        super().__init__(axis=axis)


class MaxPool2d(_Stateless):
    _fwd, _bwd = staticmethod(F.maxpool2d_forward), staticmethod(F.maxpool2d_backward)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> None:
        super().__init__(
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            ceil_mode=ceil_mode,
        )


class AvgPool2d(_Stateless):
    _fwd, _bwd = staticmethod(F.avgpool2d_forward), staticmethod(F.avgpool2d_backward)

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
    ) -> None:
        super().__init__(
            kernel_size=kernel_size,
            stride=stride,
            padding=padding,
            ceil_mode=ceil_mode,
            count_include_pad=count_include_pad,
            divisor_override=divisor_override,
        )


class L2Pool2d(_Stateless):
    _fwd, _bwd = staticmethod(F.l2pool2d_forward), staticmethod(F.l2pool2d_backward)

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__(kernel_size=kernel_size, stride=stride, padding=padding)


class AdaptiveAvgPool2d(_Stateless):
    _fwd, _bwd = (
        staticmethod(F.adaptive_avgpool2d_forward),
        staticmethod(F.adaptive_avgpool2d_backward),
    )

    def __init__(self, output_size) -> None:
        super().__init__(output_size=output_size)


class AdaptiveMaxPool2d(_Stateless):
    _fwd, _bwd = (
        staticmethod(F.adaptive_maxpool2d_forward),
        staticmethod(F.adaptive_maxpool2d_backward),
    )

    def __init__(self, output_size) -> None:
        super().__init__(output_size=output_size)


class LRN(_Stateless):
    _fwd, _bwd = staticmethod(F.lrn_forward), staticmethod(F.lrn_backward)

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> None:
        super().__init__(size=size, alpha=alpha, beta=beta, k=k)


class Flatten(_Stateless):
    _fwd, _bwd = staticmethod(F.flatten_forward), staticmethod(F.flatten_backward)

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__(start_dim=start_dim, end_dim=end_dim)


class Dropout(Layer):
    """Inverted dropout with its own random generator (seeded for reproducible training)."""

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng()

    def forward(self, x):
        out, self.cache = F.dropout_forward(x, self.p, self.training, self.rng)
        return out

    def backward(self, dout):
        return F.dropout_backward(dout, self.cache)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class TableConv2d(Layer):
    """LeNet-5's C3: a convolution where output map o sees only the input maps its table lists.

    ``weight`` holds one (kh, kw) kernel per connection (``out_index[j]``, ``in_index[j]``);
    the forward scatters them into a dense (K, C, kh, kw) bank with zeros elsewhere and
    convolves, and the backward gathers the dense gradient back at the connections.
    """

    def __init__(
        self,
        in_channels: int,
        out_index,
        in_index,
        kernel_size,
        stride=1,
        padding=0,
        bias: bool = True,
        rng=None,
        dtype=np.float32,
        init: bool = True,
    ) -> None:
        super().__init__()
        self.out_index, self.in_index = np.asarray(out_index), np.asarray(in_index)
        self.in_channels, self.out_channels = in_channels, int(self.out_index.max()) + 1
        self.stride, self.padding = stride, padding
        kh, kw = pair(kernel_size, "kernel_size")
        fan_in = kh * kw * len(self.out_index) / self.out_channels  # average connections per map
        self.params["weight"] = _he(rng, (len(self.out_index), kh, kw), fan_in, dtype, init)
        if bias:
            self.params["bias"] = np.zeros(self.out_channels, dtype=dtype)

    def forward(self, x):
        w = self.params["weight"]
        dense = np.zeros((self.out_channels, self.in_channels, *w.shape[1:]), dtype=w.dtype)
        dense[self.out_index, self.in_index] = w
        out, self.cache = F.conv2d_forward(
            x, dense, self.params.get("bias"), self.stride, self.padding
        )
        return out

    def backward(self, dout):
        dx, dw, db = F.conv2d_backward(dout, self.cache)
        self.grads["weight"] = dw[self.out_index, self.in_index]
        if db is not None:
            self.grads["bias"] = db
        return dx
