"""The head of FC -> CONV surgery: walk forward from each flatten and rewrite for 4-D maps.

After a flatten, the converted network carries a (N, C, h, w) map where the original carried
(N, C*h*w) rows. Each node there is either rewritten (Linear -> Conv2d, BatchNorm1d ->
BatchNorm2d, a softmax over the last axis -> over axis 1), kept (activations and dropout act
elementwise, so they are right on either shape), or refused with a one-line reason.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConversionError
from ._fcconv import FCConv2d
from .graph import node_label, set_submodule, shape

_ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.Threshold,
)


_PASSTHROUGH = (nn.Dropout, nn.AlphaDropout, nn.Identity)  # the identity in eval mode


_FUNCS = {
    F.relu,
    torch.relu,
    F.relu6,
    F.leaky_relu,
    F.elu,
    F.selu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardtanh,
    F.hardswish,
    F.softplus,
    torch.sigmoid,
    F.sigmoid,
    torch.tanh,
    F.tanh,
    torch.clamp,
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    operator.neg,
    torch.add,
    torch.mul,
}


_PASS_FUNCS = {F.dropout, F.alpha_dropout}


_METHODS = {
    "relu",
    "sigmoid",
    "tanh",
    "clamp",
    "clamp_min",
    "neg",
    "mul",
    "add",
    "sub",
    "div",
    "contiguous",
}


_SOFTMAX_FUNCS = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}


_FLATTEN_FUNCS = {torch.flatten, torch.reshape}


_FLATTEN_METHODS = {"flatten", "view", "reshape"}


_REDUCE_FUNCS = {torch.mean, torch.sum, torch.amax, torch.max, torch.std, torch.logsumexp}


_REDUCE_METHODS = {"mean", "sum", "amax", "max", "std", "logsumexp"}


@dataclass(frozen=True)
class Step:
    """One change the surgery made, e.g. ``classifier.1 Linear(9216->4096) -> Conv2d(256->4096, F=6)``."""

    path: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.path} {self.before} -> {self.after}"


@dataclass
class _Layout:
    """How a 2-D tensor after a flatten maps onto the converted network's 4-D tensor."""

    kind: str  # "flat": the flattening of a (c, h, w) map; "vec": a (c,) vector, now (c, 1, 1)
    c: int
    h: int = 1
    w: int = 1
    fold: tuple[torch.Tensor, torch.Tensor, int, int] | None = None  # (Ph, Pw, in_h, in_w)
    source: str = ""


def _fmt(h: int, w: int) -> str:
    return f"{h}x{w}"


def _module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def _is_passthrough(gm: fx.GraphModule, node: fx.Node) -> bool:
    m = _module(gm, node)
    return isinstance(m, _PASSTHROUGH) or (
        node.op == "call_function" and node.target in _PASS_FUNCS
    )


def _is_flatten(gm: fx.GraphModule, node: fx.Node) -> bool:
    m = _module(gm, node)
    return (
        isinstance(m, nn.Flatten)
        or (node.op == "call_function" and node.target in _FLATTEN_FUNCS)
        or (node.op == "call_method" and node.target in _FLATTEN_METHODS)
    )


def _is_reduction(node: fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _REDUCE_FUNCS) or (
        node.op == "call_method" and node.target in _REDUCE_METHODS
    )


def _is_elementwise(gm: fx.GraphModule, node: fx.Node, layout: _Layout) -> bool:
    m = _module(gm, node)
    if isinstance(m, nn.PReLU):  # per-channel slopes act on dim 1: right only for a vector
        return m.num_parameters == 1 or layout.kind == "vec"
    return (
        isinstance(m, _ACTIVATIONS)
        or (node.op == "call_function" and node.target in _FUNCS)
        or (node.op == "call_method" and node.target in _METHODS)
    )


def _softmax_dim(gm: fx.GraphModule, node: fx.Node) -> int | None:
    """The class axis of a softmax node, or None if the node is not a softmax."""
    m = _module(gm, node)
    if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
        return m.dim
    if (node.op == "call_function" and node.target in _SOFTMAX_FUNCS) or (
        node.op == "call_method" and node.target in ("softmax", "log_softmax")
    ):
        return node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    return None


def _where(gm: fx.GraphModule, node: fx.Node, out: tuple | None = None) -> tuple[str, str]:
    """(path, what) for a step: ``("avgpool", "AdaptiveAvgPool2d(6x6)")``, ``("forward", "flatten()")``."""
    size = f"({_fmt(*out[2:])})" if out is not None else ""
    if node.op == "call_module":
        return node.target, type(gm.get_submodule(node.target)).__name__ + size
    name = getattr(node.target, "__name__", str(node.target))
    return "forward", f"{name}(){size}" if not size else f"{name}{size}"


def _drop_node(node: fx.Node) -> None:
    node.replace_all_uses_with(node.args[0])


def _linear_to_conv(lin: nn.Linear, layout: _Layout) -> nn.Conv2d:
    """The convolution computing ``lin`` on ``layout``: F = the map's size, or 1x1 for a vector."""
    w = lin.weight.detach()
    k = w.shape[0]
    if layout.kind == "vec":
        conv = FCConv2d(layout.c, k, 1, bias=lin.bias is not None, device=w.device, dtype=w.dtype)
        weight = w.reshape(k, layout.c, 1, 1)
    elif layout.fold is None:
        conv = FCConv2d(
            layout.c,
            k,
            (layout.h, layout.w),
            bias=lin.bias is not None,
            device=w.device,
            dtype=w.dtype,
        )
        weight = w.reshape(k, layout.c, layout.h, layout.w)
    else:
        # y = P x per channel (P = Ph (x) Pw), so W.y = (W P) x: the pool folds into the filter.
        ph, pw, fh, fw = layout.fold
        conv = FCConv2d(
            layout.c, k, (fh, fw), bias=lin.bias is not None, device=w.device, dtype=w.dtype
        )
        # Two small matmuls, not one einsum: contract the pooled columns, then the rows.
        wf = w.float() if w.dtype in (torch.float16, torch.bfloat16) else w
        w4 = wf.reshape(k, layout.c, layout.h, layout.w) @ pw.to(wf)  # (k, c, oh, w)
        weight = (w4.transpose(2, 3) @ ph.to(wf)).transpose(2, 3).to(w.dtype)  # (k, c, h, w)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if lin.bias is not None:
            conv.bias.copy_(lin.bias.detach())
    return conv


def _bn1d_to_2d(bn: nn.BatchNorm1d) -> nn.BatchNorm2d:
    """The same per-feature normalisation over a (N, C, h, w) map: each position is one sample."""
    ref = next(iter(bn.state_dict().values()))
    dtype = next((t.dtype for t in bn.state_dict().values() if t.is_floating_point()), None)
    new = nn.BatchNorm2d(
        bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, ref.device, dtype
    )
    new.load_state_dict(bn.state_dict())
    return new.train(bn.training)


def convert_head(gm: fx.GraphModule, folds: dict[fx.Node, tuple], steps: list[Step]) -> int:
    """Walk forward from each flatten, rewriting Linear (and what follows) for 4-D maps.

    Returns the number of Linear layers converted.
    """
    layout: dict[fx.Node, _Layout] = {}
    converted: dict[str, tuple] = {}
    flattens: list[fx.Node] = []
    reductions: set[fx.Node] = set()  # 4-D -> 2-D reductions: global pooling if a Linear reads them
    for node in list(gm.graph.nodes):
        ins = node.all_input_nodes
        spatial = [a for a in ins if a in layout]
        if not spatial:
            found = _flatten_layout(gm, node, folds.get(node))
            if found == "reduction":
                reductions.add(node)
            elif found is not None:
                layout[node] = found
                steps.append(Step(*_where(gm, node), "removed (the convolutions keep the map)"))
                flattens.append(node)
            continue
        lay = layout[spatial[0]]
        label = node_label(gm, node)
        others = [a for a in ins if a not in layout and shape(a) is not None]
        if others:
            raise ConversionError(
                f"{label} mixes the flattened conv features ({lay.source}) with another input "
                f"({node_label(gm, others[0])}); a layer over non-spatial inputs has no convolutional form"
            )
        if any(layout[a].kind != lay.kind or layout[a].c != lay.c for a in spatial[1:]):
            raise ConversionError(
                f"{label} combines tensors of different layouts after the flatten"
            )
        if node.op == "output":
            continue
        after = _convert_node(gm, node, lay, converted, steps)
        if after is not None:
            layout[node] = after
    for node in flattens:  # dropped only now: the walk above follows them to their users
        _drop_node(node)
    _refuse_unconverted_linears(gm, reductions)
    return len(converted)


def _flatten_layout(gm: fx.GraphModule, node: fx.Node, fold: tuple | None):
    """A flatten of a conv map starts a converted region: its :class:`_Layout`. ``"reduction"``
    for a 4-D -> 2-D reduction (global pooling), None for anything else."""
    src = shape(node.args[0]) if node.args else None
    out = shape(node)
    if src is None or len(src) != 4 or out is None or len(out) != 2:
        return None
    if _is_flatten(gm, node):
        return _flat(gm, node, src, out, fold)
    return "reduction" if _is_reduction(node) else None


def _flat(gm: fx.GraphModule, node: fx.Node, src, out, fold: tuple | None) -> _Layout:
    c, h, w = src[1], *((fold[0].shape[0], fold[1].shape[0]) if fold else src[2:])
    if out[0] != src[0] or out[1] != c * h * w:
        raise ConversionError(
            f"{node_label(gm, node)} reshapes the {src[1:]} map to {out[1:]}, not a "
            "flatten that keeps the batch axis; flatten with torch.flatten(x, 1)"
        )
    return _Layout("flat", c, h, w, fold=fold, source=node_label(gm, node))


def _convert_node(
    gm: fx.GraphModule, node: fx.Node, lay: _Layout, converted: dict[str, tuple], steps: list[Step]
) -> _Layout | None:
    """Rewrite one node downstream of a flatten; its output's layout (None: a size query)."""
    label = node_label(gm, node)
    m = _module(gm, node)
    if isinstance(m, nn.Linear):
        key = (lay.kind, lay.c, lay.h, lay.w)
        if node.target in converted:
            if converted[node.target] != key:
                raise ConversionError(
                    f"{label} is applied to two different inputs; it cannot be one convolution"
                )
        else:
            conv = _linear_to_conv(m, lay)
            kh, kw = conv.kernel_size
            f = f"F={kh}" if kh == kw else f"F={kh}x{kw}"
            set_submodule(gm, node.target, conv)
            steps.append(
                Step(
                    node.target,
                    f"Linear({m.in_features}->{m.out_features})",
                    f"Conv2d({conv.in_channels}->{conv.out_channels}, {f})",
                )
            )
            converted[node.target] = key
        return _Layout("vec", m.out_features, source=lay.source)
    elif _is_passthrough(gm, node):
        return lay
    elif _is_elementwise(gm, node, lay):
        if lay.fold is not None:
            raise ConversionError(
                f"{label} sits between an adaptive average pool and the first Linear; the pool can "
                "be folded into the Linear only when nothing but dropout separates them"
            )
        return lay
    elif isinstance(m, nn.BatchNorm1d) and lay.kind == "vec":
        set_submodule(gm, node.target, _bn1d_to_2d(m))
        steps.append(
            Step(node.target, f"BatchNorm1d({m.num_features})", f"BatchNorm2d({m.num_features})")
        )
        return lay
    elif (dim := _softmax_dim(gm, node)) is not None and lay.kind == "vec" and dim in (1, -1):
        if m is not None:
            m.dim = 1
        elif "dim" in node.kwargs:
            node.update_kwarg("dim", 1)
        else:
            node.update_arg(1, 1)
        if dim != 1:  # the class axis of (N, K, h, w) is 1, not the last
            steps.append(Step(_where(gm, node)[0], f"softmax(dim={dim})", "softmax(dim=1)"))
        return lay
    elif node.op == "call_method" and node.target == "size" and node.args[1:] in ((0,), ()):
        return None
    else:
        raise ConversionError(
            f"cannot convert {label} after the flatten at {lay.source}: only Linear layers, "
            "activations, dropout, BatchNorm1d and softmax can follow it there"
        )


def _refuse_unconverted_linears(gm: fx.GraphModule, reductions: set[fx.Node]) -> None:
    """A Linear left after the walk reads no flattened conv map: say why it cannot convert."""
    for node in gm.graph.nodes:
        m = _module(gm, node)
        if isinstance(m, nn.Linear):
            pool = _ancestor_in(node, reductions)
            if pool is not None:
                raise ConversionError(
                    f"{node_label(gm, pool)} pools the {_fmt(*shape(pool.args[0])[2:])} map globally before "
                    f"{node.target}: the model already takes any input size and averages over positions, "
                    "so there is no FC window to slide"
                )
            kind = (
                "a 4-D map's last axis"
                if len(shape(node.args[0]) or ()) == 4
                else "features that are not a flattened conv map"
            )
            raise ConversionError(
                f"{node_label(gm, node)} acts on {kind}; it has no convolutional form"
            )


def _ancestor_in(node: fx.Node, targets: set[fx.Node]) -> fx.Node | None:
    """The first of ``targets`` that ``node`` depends on, or None."""
    seen, todo = set(), list(node.all_input_nodes)
    while todo:
        n = todo.pop()
        if n in targets:
            return n
        if n not in seen:
            seen.add(n)
            todo.extend(n.all_input_nodes)
    return None
