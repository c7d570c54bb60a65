"""The table behind ``from_torch``: which reference op computes each traced torch call.

Part of the torch bridge (imports torch); the reference core never imports this file. Each
handler takes the fx node and returns ``(op, args)``: a reference layer and its inputs, where
graph values appear as :class:`~convnet.reference.net.Ref`.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable

import torch
import torch.fx as fx
import torch.nn.functional as TF

from ..errors import ConversionError
from . import graph_ops as G
from . import layers as L
from .net import Ref

Handler = Callable[[fx.Node, dict], tuple]


def refs(a):
    """fx arguments -> net arguments: every fx.Node becomes a Ref, recursively."""
    if isinstance(a, fx.Node):
        return Ref(a.name)
    if isinstance(a, (list, tuple)):
        return type(a)(refs(x) for x in a)
    if isinstance(a, slice):
        return slice(refs(a.start), refs(a.stop), refs(a.step))
    if isinstance(a, dict):
        return {k: refs(v) for k, v in a.items()}
    if isinstance(a, torch.Size):
        return tuple(a)
    return a


def _bind(n: fx.Node, names: list[str], defaults: dict | None = None) -> dict:
    """Positional and keyword arguments of a call, by parameter name."""
    out = dict(defaults or {})
    out.update(zip(names, n.args))
    out.update(n.kwargs)
    return out


def _has_ref(a) -> bool:
    if isinstance(a, fx.Node):
        return True
    if isinstance(a, (list, tuple)):
        return any(_has_ref(x) for x in a)
    if isinstance(a, slice):
        return any(_has_ref(x) for x in (a.start, a.stop, a.step))
    return False


def _const(n: fx.Node, value, what: str):
    if _has_ref(value):
        raise ConversionError(f"node {n.name}: {what} must be a constant, not computed at run time")
    return value


def _unary(
    factory: Callable[[dict], L.Layer], names: list[str], defaults: dict | None = None
) -> Handler:
    def handler(n, values):
        a = _bind(n, names, defaults)
        return factory(a), (refs(a[names[0]]),)

    return handler


def _binary(cls: type) -> Handler:
    def handler(n, values):
        a = _bind(n, ["input", "other"], {"alpha": 1})
        if a.get("alpha", 1) != 1:
            raise ConversionError(f"node {n.name}: add/sub with alpha != 1 is not supported")
        return cls(), (refs(a["input"]), refs(a["other"]))

    return handler


def _div(n, values):
    a = _bind(n, ["input", "other"], {"rounding_mode": None})
    if isinstance(a["other"], fx.Node) or a.get("rounding_mode"):
        raise ConversionError(f"node {n.name}: only division by a constant number is supported")
    return G.Mul(), (refs(a["input"]), 1.0 / a["other"])


def _cat(n, values):
    a = _bind(n, ["tensors", "dim"], {"dim": 0})
    return G.Concat(int(_const(n, a["dim"], "cat's dim"))), tuple(refs(t) for t in a["tensors"])


def _reshape(n, values):
    x, *shape = n.args
    if "shape" in n.kwargs:
        shape = [n.kwargs["shape"]]
    return G.Reshape(), (refs(x), *refs(tuple(shape)))


def _getitem(n, values):
    x, index = n.args
    index = _const(n, index, "the index (a tensor or computed index)")
    return G.Slice(index), (refs(x),)


def _pad(n, values):
    a = _bind(n, ["input", "pad", "mode", "value"], {"mode": "constant", "value": None})
    if a["mode"] != "constant":
        raise ConversionError(
            f"node {n.name}: F.pad mode {a['mode']!r} is not supported; only 'constant'"
        )
    return G.Pad(_const(n, a["pad"], "the padding"), a["value"] or 0.0), (refs(a["input"]),)


def _mean(n, values):
    a = _bind(n, ["input", "dim", "keepdim"], {"dim": None, "keepdim": False})
    dim = _const(n, a["dim"], "mean's dim")
    if dim is None:
        raise ConversionError(f"node {n.name}: a mean over every axis is not a layer; give dim")
    return G.Mean(dim, a["keepdim"]), (refs(a["input"]),)


def _dropout(n, values):
    a = _bind(n, ["input", "p", "training", "inplace"], {"p": 0.5, "training": True})
    layer = L.Dropout(a["p"]) if a["training"] else L.Layer()
    return layer, (refs(a["input"]),)


def _conv(n, values):
    a = _bind(
        n,
        ["input", "weight", "bias", "stride", "padding", "dilation", "groups"],
        {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1},
    )
    if isinstance(a["padding"], str):
        raise ConversionError(
            f"node {n.name}: F.conv2d with string padding is not supported; pass numbers"
        )
    op = G.FunctionalConv2d(a["stride"], a["padding"], a["dilation"], a["groups"])
    return op, (refs(a["input"]), refs(a["weight"]), refs(a["bias"]))


def _linear(n, values):
    a = _bind(n, ["input", "weight", "bias"], {"bias": None})
    return G.FunctionalLinear(), (refs(a["input"]), refs(a["weight"]), refs(a["bias"]))


def _identity(n, values):
    return L.Layer(), (refs(n.args[0]),)


_relu = _unary(lambda a: L.ReLU(), ["input"])
_sigmoid = _unary(lambda a: L.Sigmoid(), ["input"])
_tanh = _unary(lambda a: L.Tanh(), ["input"])
_flatten = _unary(
    lambda a: L.Flatten(a["start_dim"], a["end_dim"]),
    ["input", "start_dim", "end_dim"],
    {"start_dim": 0, "end_dim": -1},
)
_method_flatten = _flatten

FUNCTION_OPS: dict[object, Handler] = {
    operator.add: _binary(G.Add),
    operator.iadd: _binary(G.Add),
    torch.add: _binary(G.Add),
    operator.sub: _binary(G.Sub),
    torch.sub: _binary(G.Sub),
    operator.mul: _binary(G.Mul),
    operator.imul: _binary(G.Mul),
    torch.mul: _binary(G.Mul),
    operator.truediv: _div,
    torch.div: _div,
    torch.cat: _cat,
    torch.concat: _cat,
    torch.flatten: _flatten,
    torch.reshape: _reshape,
    operator.getitem: _getitem,
    TF.relu: _relu,
    torch.relu: _relu,
    torch.relu_: _relu,
    TF.leaky_relu: _unary(
        lambda a: L.LeakyReLU(a["negative_slope"]),
        ["input", "negative_slope"],
        {"negative_slope": 0.01},
    ),
    torch.sigmoid: _sigmoid,
    TF.sigmoid: _sigmoid,
    torch.tanh: _tanh,
    TF.tanh: _tanh,
    TF.max_pool2d: _unary(
        lambda a: L.MaxPool2d(
            a["kernel_size"], a["stride"], a["padding"], a["dilation"], a["ceil_mode"]
        ),
        ["input", "kernel_size", "stride", "padding", "dilation", "ceil_mode"],
        {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False},
    ),
    TF.avg_pool2d: _unary(
        lambda a: L.AvgPool2d(
            a["kernel_size"],
            a["stride"],
            a["padding"],
            a["ceil_mode"],
            a["count_include_pad"],
            a["divisor_override"],
        ),
        [
            "input",
            "kernel_size",
            "stride",
            "padding",
            "ceil_mode",
            "count_include_pad",
            "divisor_override",
        ],
        {
            "stride": None,
            "padding": 0,
            "ceil_mode": False,
            "count_include_pad": True,
            "divisor_override": None,
        },
    ),
    TF.adaptive_avg_pool2d: _unary(
        lambda a: L.AdaptiveAvgPool2d(a["output_size"]), ["input", "output_size"]
    ),
    TF.adaptive_max_pool2d: _unary(
        lambda a: L.AdaptiveMaxPool2d(a["output_size"]), ["input", "output_size"]
    ),
    TF.local_response_norm: _unary(
        lambda a: L.LRN(a["size"], a["alpha"], a["beta"], a["k"]),
        ["input", "size", "alpha", "beta", "k"],
        {"alpha": 1e-4, "beta": 0.75, "k": 1.0},
    ),
    TF.pad: _pad,
    TF.dropout: _dropout,
    torch.mean: _mean,
    TF.conv2d: _conv,
    TF.linear: _linear,
}

METHOD_OPS: dict[str, Handler] = {
    "relu": _relu,
    "relu_": _relu,
    "sigmoid": _sigmoid,
    "tanh": _tanh,
    "view": _reshape,
    "reshape": _reshape,
    "flatten": _method_flatten,
    "mean": _mean,
    "add": _binary(G.Add),
    "add_": _binary(G.Add),
    "sub": _binary(G.Sub),
    "mul": _binary(G.Mul),
    "div": _div,
    "contiguous": _identity,
    "clone": _identity,
}


def _size(x, dim=None):
    return tuple(x.shape) if dim is None else x.shape[dim]


def _getattr(obj, name):
    if name == "shape":
        return tuple(obj.shape)
    if name == "ndim":
        return obj.ndim
    raise ConversionError(
        f"attribute {name!r} of an activation is not supported by the NumPy engine"
    )


_SCALAR_METHODS = {"size": _size, "dim": lambda x: x.ndim}
_SCALAR_FUNCTIONS = {
    builtins.getattr: _getattr,
    operator.getitem: operator.getitem,
    operator.add: operator.add,
    operator.sub: operator.sub,
    operator.mul: operator.mul,
    operator.floordiv: operator.floordiv,
    operator.truediv: operator.truediv,
    builtins.len: len,
}


def scalar_function(n: fx.Node) -> Callable:
    """The Python function computing a non-tensor node (a shape, a size) from NumPy values."""
    fn = _SCALAR_METHODS.get(n.target) if n.op == "call_method" else _SCALAR_FUNCTIONS.get(n.target)
    if fn is None:
        name = (
            n.target if isinstance(n.target, str) else getattr(n.target, "__name__", repr(n.target))
        )
        raise ConversionError(
            f"operation {name!r} (node {n.name}) has no NumPy reference implementation"
        )
    return fn
