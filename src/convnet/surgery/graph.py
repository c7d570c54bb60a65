"""Tracing and shape propagation for surgery: an fx graph of a module, every node's shape.

Shapes come from one forward on the meta device with the module's parameters swapped for
meta tensors (``torch.func.functional_call``), so no weight is read and nothing is computed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.fx as fx
import torch.nn as nn

from ..analysis.trace import MetaShapes
from ..errors import ConversionError


def trace(model: nn.Module) -> fx.GraphModule:
    """``torch.fx.symbolic_trace`` with a one-line error for forwards fx cannot follow."""
    try:
        tracer = _Tracer()
        graph = tracer.trace(model)
        return fx.GraphModule(tracer.root, graph, type(model).__name__)
    except Exception as e:  # fx raises TraceError, TypeError, NotImplementedError...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConversionError(
            f"cannot trace {type(model).__name__}.forward with torch.fx ({first}); "
            "write the forward without control flow that depends on tensor values"
        ) from None


class _Tracer(fx.Tracer):
    """fx's tracer, keeping an already converted layer whole (its forward branches on shapes)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        from ._fcconv import FCConv2d

        return isinstance(m, FCConv2d) or super().is_leaf_module(m, qualname)


class _Recorder(fx.Interpreter):
    """Run the graph node by node, storing each tensor result's shape in ``node.meta``."""

    def run_node(self, n: fx.Node):
        out = super().run_node(n)
        n.meta["shape"] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        return out


class _Runner(nn.Module):
    def __init__(self, gm: fx.GraphModule):
        super().__init__()
        self.gm = gm

    def forward(self, x: torch.Tensor):
        return _Recorder(self.gm).run(x)


def first_dtype(model: nn.Module) -> torch.dtype:
    for p in itertools.chain(model.parameters(), model.buffers()):
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def propagate(gm: fx.GraphModule, size: Sequence[int], batch: int = 2) -> tuple[int, ...] | None:
    """Record ``node.meta["shape"]`` for input ``(batch, *size)``; return the output's shape.

    Batch 2, not 1, so that a ``view(-1, ...)`` that folds the batch is told apart from one
    that keeps it.
    """
    swap = {
        f"gm.{k}": torch.empty(
            v.shape, dtype=v.dtype, device="meta"
        )  # not empty_like: see MetaShapes
        for k, v in itertools.chain(gm.named_parameters(), gm.named_buffers())
    }
    x = torch.empty((batch, *size), device="meta", dtype=first_dtype(gm))
    try:
        with torch.no_grad(), MetaShapes():
            out = torch.func.functional_call(_Runner(gm), swap, (x,), strict=False)
    except ConversionError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        shape = "x".join(str(s) for s in size)
        raise ConversionError(f"the model does not run on a {shape} input: {first}") from None
    return tuple(out.shape) if isinstance(out, torch.Tensor) else None


def shape(node: object) -> tuple[int, ...] | None:
    """The recorded shape of a node's tensor result, or None (a constant, an int, a tuple)."""
    return node.meta.get("shape") if isinstance(node, fx.Node) else None


def node_label(gm: fx.GraphModule, node: fx.Node) -> str:
    """A name a user recognises: the module path for a module call, else the op's name."""
    if node.op == "call_module":
        return f"{node.target} ({type(gm.get_submodule(node.target)).__name__})"
    if node.op == "call_function":
        return f"{getattr(node.target, '__name__', str(node.target))}() in forward"
    if node.op == "call_method":
        return f".{node.target}() in forward"
    return node.name


def set_submodule(gm: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, module)
