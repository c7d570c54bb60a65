"""From a torch module to a reference :class:`~convnet.reference.net.Net` with the same weights.

With its op table (``_torch_bridge_ops.py``), the only file of :mod:`convnet.reference` that
imports torch; it also holds ``train_numpy``, which trains a torch model in NumPy and hands
the weights back. ``from_torch`` traces the module with ``torch.fx`` (known layers stay whole, everything else is traced through), runs the
example input once to learn which values are tensors, and maps every graph node to a
reference layer (tensors, with a backward) or to plain Python (shapes such as ``x.size(0)``).
An operation with no reference counterpart raises :class:`~convnet.errors.ConversionError`
naming it; so does a module that torch.fx cannot trace (Python control flow that depends on
the data), with fx's own reason.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn

from ..errors import ConversionError
from . import layers as L
from ._torch_bridge_ops import FUNCTION_OPS, METHOD_OPS, refs, scalar_function
from .graph_ops import ParamLayer
from .net import Net, Node, Ref

__all__ = ["from_torch", "load_into_torch", "train_numpy"]


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return t.detach().cpu().numpy().astype(dtype, copy=True)


def _conv_padding(mod: nn.Conv2d) -> tuple[int, int]:
    if mod.padding_mode != "zeros":
        raise ConversionError(
            f"Conv2d with padding_mode={mod.padding_mode!r} is not supported; use 'zeros'"
        )
    if isinstance(mod.padding, str):
        if mod.padding == "valid":
            return (0, 0)
        totals = [d * (k - 1) for d, k in zip(mod.dilation, mod.kernel_size)]
        if any(t % 2 for t in totals):
            raise ConversionError(
                "Conv2d padding='same' with an even kernel pads unevenly; pad explicitly instead"
            )
        return (totals[0] // 2, totals[1] // 2)
    return tuple(mod.padding)


# ----------------------------------------------------------------- one converter per module
# Each takes (torch module, NumPy dtype, example input tensor or None, module path) and returns
# the reference layer; convert_module copies the parameters afterwards.


def _conv2d(mod: nn.Conv2d, dtype, example, path: str) -> L.Layer:
    return L.Conv2d(
        mod.in_channels,
        mod.out_channels,
        mod.kernel_size,
        mod.stride,
        _conv_padding(mod),
        mod.dilation,
        mod.groups,
        bias=mod.bias is not None,
        dtype=dtype,
        init=False,
    )


def _linear(mod: nn.Linear, dtype, example, path: str) -> L.Layer:
    return L.Linear(
        mod.in_features, mod.out_features, bias=mod.bias is not None, dtype=dtype, init=False
    )


def _softmax(mod: nn.Softmax, dtype, example, path: str) -> L.Layer:
    if mod.dim is None:
        raise ConversionError(f"{path}: Softmax needs an explicit dim")
    return L.Softmax(mod.dim)


def _maxpool(mod: nn.MaxPool2d, dtype, example, path: str) -> L.Layer:
    if mod.return_indices:
        raise ConversionError(f"{path}: MaxPool2d(return_indices=True) is not supported")
    return L.MaxPool2d(mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode)


def _avgpool(mod: nn.AvgPool2d, dtype, example, path: str) -> L.Layer:
    return L.AvgPool2d(
        mod.kernel_size,
        mod.stride,
        mod.padding,
        mod.ceil_mode,
        mod.count_include_pad,
        mod.divisor_override,
    )


def _adaptive_pool(mod: nn.Module, dtype, example, path: str) -> L.Layer:
    out = mod.output_size
    size = tuple(out) if isinstance(out, (tuple, list)) else (out, out)
    if None in size:  # None keeps that input dimension
        size = tuple(s if s is not None else example.shape[2 + i] for i, s in enumerate(size))
    cls = L.AdaptiveAvgPool2d if isinstance(mod, nn.AdaptiveAvgPool2d) else L.AdaptiveMaxPool2d
    return cls(tuple(size))


def _batchnorm(mod: nn.Module, dtype, example, path: str) -> L.Layer:
    if mod.momentum is None:
        raise ConversionError(
            f"{path}: BatchNorm with momentum=None (cumulative average) is not supported"
        )
    layer = L.BatchNorm(
        mod.num_features, mod.eps, mod.momentum, mod.affine, mod.track_running_stats, dtype=dtype
    )
    if mod.track_running_stats:
        layer.buffers["running_mean"] = _np(mod.running_mean, dtype)
        layer.buffers["running_var"] = _np(mod.running_var, dtype)
    return layer


def _locally_connected(mod: nn.Module, dtype, example, path: str) -> L.Layer:
    return L.LocallyConnected2d(
        mod.in_channels,
        mod.out_channels,
        mod.in_size,
        mod.kernel_size,
        mod.stride,
        mod.padding,
        bias=mod.bias is not None,
        dtype=dtype,
        init=False,
    )


def _table_conv(mod: nn.Module, dtype, example, path: str) -> L.Layer:
    return L.TableConv2d(
        mod.in_channels,
        mod.out_index.cpu().numpy(),
        mod.in_index.cpu().numpy(),
        mod.kernel_size,
        mod.stride,
        mod.padding,
        bias=mod.bias is not None,
        dtype=dtype,
        init=False,
    )


Converter = Callable[[nn.Module, object, "torch.Tensor | None", str], L.Layer]

_CONVERTERS: tuple[tuple[type, Converter], ...] = (
    (nn.Conv2d, _conv2d),
    (nn.Linear, _linear),
    (nn.ReLU, lambda mod, *_: L.ReLU()),
    (nn.LeakyReLU, lambda mod, *_: L.LeakyReLU(mod.negative_slope)),
    (nn.Sigmoid, lambda mod, *_: L.Sigmoid()),
    (nn.Tanh, lambda mod, *_: L.Tanh()),
    (nn.Softmax, _softmax),
    (nn.MaxPool2d, _maxpool),
    (nn.AvgPool2d, _avgpool),
    (nn.AdaptiveAvgPool2d, _adaptive_pool),
    (nn.AdaptiveMaxPool2d, _adaptive_pool),
    (nn.BatchNorm1d, _batchnorm),
    (nn.BatchNorm2d, _batchnorm),
    (nn.LocalResponseNorm, lambda mod, *_: L.LRN(mod.size, mod.alpha, mod.beta, mod.k)),
    (nn.Dropout, lambda mod, *_: L.Dropout(mod.p)),
    (nn.Flatten, lambda mod, *_: L.Flatten(mod.start_dim, mod.end_dim)),
    (nn.Identity, lambda mod, *_: L.Layer()),
)


def _extra_converters() -> tuple[tuple[type, Converter], ...]:
    """Converters for convnet's own layers (imported here, so the table above needs no import)."""
    from ..layers.connection_table import ConnectionTableConv2d
    from ..layers.l2pool import L2Pool2d
    from ..layers.locally_connected import LocallyConnected2d

    return (
        (LocallyConnected2d, _locally_connected),
        (ConnectionTableConv2d, _table_conv),
        (L2Pool2d, lambda mod, *_: L.L2Pool2d(mod.kernel_size, mod.stride, mod.padding)),
    )


@cache
def _all_converters() -> tuple[tuple[type, Converter], ...]:
    return (*_CONVERTERS, *_extra_converters())


@cache
def _leaf_types() -> tuple[type, ...]:
    """The modules the reference engine implements whole (the tracer does not look inside)."""
    return tuple(cls for cls, _ in _all_converters())


def convert_module(
    mod: nn.Module, dtype, example: torch.Tensor | None = None, path: str = ""
) -> L.Layer:
    """The reference layer equivalent to one torch leaf module, weights copied as ``dtype``."""
    for cls, convert in _all_converters():
        if isinstance(mod, cls):
            layer = convert(mod, dtype, example, path)
            break
    else:
        raise ConversionError(
            f"{path or 'module'}: {type(mod).__name__} has no NumPy reference layer; "
            "supported: Conv2d, Linear, pools, BatchNorm, LRN, Dropout, activations, Softmax, "
            "LocallyConnected2d, ConnectionTableConv2d, L2Pool2d"
        )
    for name, p in mod.named_parameters(recurse=False):
        if p is not None:
            layer.params[name] = _np(p, dtype)
    layer.training = mod.training
    return layer


class _Tracer(fx.Tracer):
    """Keep torch's layers and convnet's implemented layers whole; trace through everything else."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, _leaf_types()):
            return True
        return super().is_leaf_module(m, qualname)


class _Recorder(fx.Interpreter):
    """Runs the traced graph once and remembers every node's value."""

    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm)
        self.values: dict[str, object] = {}

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        self.values[n.name] = out
        return out


def _target_name(n: fx.Node) -> str:
    t = n.target
    if isinstance(t, str):
        return t
    mod = getattr(t, "__module__", None) or ""
    return f"{mod}.{getattr(t, '__name__', repr(t))}".lstrip(".")


def from_torch(module: nn.Module, example_input: torch.Tensor | np.ndarray, dtype=None) -> Net:
    """Build the reference net computing what ``module`` computes, with copies of its weights.

    Args:
        module: any ``nn.Module`` made of supported layers and operations (the zoo's models).
        example_input: a batch like the ones the net will see (a tensor or an array), used once
            to trace shapes.
        dtype: NumPy dtype of parameters (default: the example's, float32 for float32 inputs).

    Returns a :class:`~convnet.reference.net.Net` in the module's train/eval mode, whose
    ``params`` and ``grads`` are keyed by the module's parameter names.
    """
    x = torch.as_tensor(example_input)
    dtype = np.dtype(dtype) if dtype is not None else np.dtype(str(x.dtype).replace("torch.", ""))
    x = x.to(torch.float64 if dtype == np.float64 else torch.float32)
    try:
        graph = _Tracer().trace(module)
    except ConversionError:
        raise
    except Exception as err:  # fx cannot trace data-dependent control flow
        raise ConversionError(
            f"torch.fx could not trace {type(module).__name__} ({type(err).__name__}: {err}); "
            "write its forward without Python control flow that depends on tensor values"
        ) from err
    gm = fx.GraphModule(module, graph)
    rec = _Recorder(gm)
    saved = {k: b.clone() for k, b in module.named_buffers()}  # a training-mode BN would move them
    with torch.no_grad():
        rec.run(x.to(next(module.parameters(), x).dtype) if x.is_floating_point() else x)
        for k, b in module.named_buffers():
            b.copy_(saved[k])
    net = _build(gm, rec.values, dtype)
    net.train(module.training)
    return net


def _build(gm: fx.GraphModule, values: dict, dtype) -> Net:
    nodes: list[Node] = []
    inputs: list[str] = []
    output: Ref | None = None
    first_use: dict[str, L.Layer] = {}
    shared: dict[str, np.ndarray] = {}
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            inputs.append(n.name)
        elif n.op == "output":
            out = n.args[0]
            if not isinstance(out, fx.Node):
                raise ConversionError(
                    "from_torch supports modules returning one tensor, not tuples or dicts"
                )
            output = Ref(out.name)
        elif n.op == "call_module":
            mod = gm.get_submodule(n.target)
            example = (
                values.get(n.args[0].name) if n.args and isinstance(n.args[0], fx.Node) else None
            )
            layer = convert_module(mod, dtype, example, n.target)
            if n.target in first_use:  # a module called twice shares its parameters
                layer.params, layer.buffers = (
                    first_use[n.target].params,
                    first_use[n.target].buffers,
                )
            first_use.setdefault(n.target, layer)
            names = {k: f"{n.target}.{k}" for k in layer.params}
            bufs = {k: f"{n.target}.{k}" for k in layer.buffers}
            nodes.append(Node(n.name, layer, refs(n.args), refs(dict(n.kwargs)), names, bufs))
        elif n.op == "get_attr":
            val = _fetch_attr(gm, n.target)
            if isinstance(val, nn.Parameter):
                # one array per parameter, however many nodes read it
                arr = shared.setdefault(n.target, _np(val, dtype))
                nodes.append(Node(n.name, ParamLayer(arr), (), {}, {"value": n.target}))
            elif isinstance(val, torch.Tensor):
                const = _np(val, dtype) if val.is_floating_point() else val.cpu().numpy()
                nodes.append(Node(n.name, _constant(const)))
            else:
                nodes.append(Node(n.name, _constant(val)))
        else:
            nodes.append(_convert_call(n, values))
    if output is None:
        raise ConversionError("the traced graph has no output")
    return Net(nodes, inputs, output)


def _fetch_attr(gm: fx.GraphModule, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _constant(value) -> Callable:
    def constant():
        return value

    constant.__name__ = "constant"
    return constant


def _convert_call(n: fx.Node, values: dict) -> Node:
    """A call_function / call_method node -> a Node with a reference op."""
    is_tensor = isinstance(values.get(n.name), torch.Tensor)
    table = FUNCTION_OPS if n.op == "call_function" else METHOD_OPS
    key = n.target
    if not is_tensor:
        fn = scalar_function(n)
        return Node(n.name, fn, refs(n.args), refs(dict(n.kwargs)))
    handler = table.get(key)
    if handler is None:
        raise ConversionError(
            f"operation {_target_name(n)!r} (node {n.name}) has no NumPy reference implementation; "
            "rewrite it with supported layers (conv, linear, pools, batch norm, add, cat, flatten, pad, slicing)"
        )
    op, args = handler(n, values)
    return Node(n.name, op, args)


def load_into_torch(net: Net, module: nn.Module) -> None:
    """Copy the reference net's parameters and buffers back into ``module`` (same names)."""
    state = {**net.params, **net.buffers}
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if name in state:
                t.copy_(torch.from_numpy(np.asarray(state[name])).to(t.dtype))


def _scores_part(model: nn.Module) -> nn.Module:
    """``model`` without a final ``nn.Softmax`` (looking into nested Sequentials), sharing its
    modules; ``model`` itself when it does not end in one."""
    if not isinstance(model, nn.Sequential) or len(model) == 0:
        return model
    last = model[-1]
    if isinstance(last, nn.Softmax):
        return model[:-1]
    inner = _scores_part(last)
    return model if inner is last else nn.Sequential(*model[:-1], inner)


def train_numpy(
    model: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = False,
    lr_schedule: Callable[[int], float] | str | None = "onecycle",
    seed: int = 0,
    progress: bool = True,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Train ``model`` in NumPy alone: convert it, run the reference Solver, copy weights back.

    x_* are float32 (N, C, H, W) arrays, already normalized; y_* int64 labels. SGD with
    momentum and weight decay (torch's formulas), cross-entropy loss, the validation split
    checked after every epoch (an empty one: nothing is validated). ``lr_schedule`` is a
    function of the global step giving the multiple of ``lr`` to use, "onecycle" (the default,
    :func:`~convnet.reference.solver.one_cycle`) or "constant". ``augment`` transforms each
    training minibatch (see :func:`~convnet.reference.solver.random_shift`). ``test``: (x, y) of
    a test split, scored once, at the end, by the kept parameters.

    Returns fractions ``best_top1`` (validation top-1 of the kept parameters; None when nothing
    is validated), ``best_epoch`` (1-based; None likewise), ``final_top1`` (the last epoch's
    validation top-1), ``test_top1`` and ``test_top5`` (with ``test``), and ``epochs``,
    ``seconds``, ``images_per_second``, the per-epoch ``val_top1`` and ``loss`` histories. The
    model ends up holding the parameters of the best epoch (the last with no validation).
    """
    from .optim import SGD
    from .solver import Solver, one_cycle

    torch.manual_seed(seed)
    model = model.float().train()
    # a net that ends in a softmax trains on the scores before it (the losses take scores);
    # the shared modules get the trained weights back, and the softmax has none
    model = _scores_part(model)
    net = from_torch(model, np.ascontiguousarray(x_train[:2], dtype=np.float32))
    for layer in net.layers.values():
        if isinstance(layer, L.Dropout):
            layer.rng = np.random.default_rng(seed)
    data = {
        "X_train": np.ascontiguousarray(x_train, dtype=np.float32),
        "y_train": np.asarray(y_train, dtype=np.int64),
        "X_val": np.ascontiguousarray(x_val, dtype=np.float32),
        "y_val": np.asarray(y_val, dtype=np.int64),
    }
    opt = SGD(net, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if lr_schedule == "onecycle":
        lr_schedule = one_cycle(epochs * max(len(y_train) // batch_size, 1))
    elif lr_schedule == "constant":
        lr_schedule = None
    elif isinstance(lr_schedule, str):
        raise ConversionError(
            f"unknown lr_schedule {lr_schedule!r}; use 'onecycle', 'constant' or a function of the step"
        )
    solver = Solver(
        net,
        data,
        optimizer=opt,
        num_epochs=epochs,
        batch_size=batch_size,
        lr_schedule=lr_schedule,
        seed=seed,
        progress=progress,
        augment=augment,
    )
    solver.train()
    load_into_torch(net, model)
    history = solver.val_acc_history
    result = {
        "best_top1": solver.best_val_acc if history else None,
        "best_epoch": history.index(max(history)) + 1 if history else None,
        "final_top1": history[-1] if history else None,
        "epochs": epochs,
        "seconds": solver.seconds,
        "images_per_second": solver.images_seen / max(solver.seconds, 1e-9),
        "val_top1": list(solver.val_acc_history),
        "loss": [float(np.mean(c)) for c in np.array_split(solver.loss_history, epochs)],
    }
    if test is not None:
        scores = solver.predict(np.ascontiguousarray(test[0], dtype=np.float32))
        y = np.asarray(test[1], dtype=np.int64)
        top5 = np.argsort(-scores, axis=1)[:, : min(5, scores.shape[1])]
        result["test_top1"] = float(np.mean(scores.argmax(axis=1) == y)) if len(y) else None
        result["test_top5"] = float(np.mean((top5 == y[:, None]).any(axis=1))) if len(y) else None
    return result
