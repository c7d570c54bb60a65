"""Tree or model -> the line, in canonical form: ``->`` arrows, upper-case names, the short
forms CONV3-64 / POOL2 / FC-10 where they say everything, ``NAME(KEY=VALUE,...)`` otherwise.

``parse(format(tree)) == tree`` for every tree. A model is first read back into a tree, one
layer per module, consecutive repeated blocks folded into ``[ ... ]*N``.
"""

from __future__ import annotations

import torch.nn as nn

from ._errors import problem
from ._spec import SPECS
from .tree import Layer, Net, Node, Repeat


def format(obj: Net | Node | nn.Module | str) -> str:
    """The line for a tree (``Net``, ``Layer``, ``Repeat``), a model, or a line to normalize."""
    if isinstance(obj, str):
        from ._parser import parse

        return format_tree(parse(obj))
    if isinstance(obj, nn.Module):
        return format_tree(from_module(obj))
    if isinstance(obj, Net):
        return format_tree(obj)
    if isinstance(obj, (Layer, Repeat)):
        return _node(obj)
    raise TypeError(
        f"format() takes a Net, a node, an nn.Module or a str, not {type(obj).__name__}"
    )


def format_tree(net: Net) -> str:
    text = " -> ".join(_node(n) for n in net.body)
    if net.bindings:
        text += "; " + ", ".join(f"{k}={v}" for k, v in net.bindings)
    return text


def _node(node: Node) -> str:
    if isinstance(node, Layer):
        return format_layer(node)
    text = "[" + " -> ".join(_node(n) for n in node.body) + "]"
    if node.count != 1:
        text += f"*{node.count}"
    return text + ("?" if node.optional else "")


def _value(v: int | float) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def format_layer(layer: Layer) -> str:
    """One layer, shortest faithful form: CONV3-64, CONV-64, POOL2, FC-10, DROPOUT(0.5)."""
    spec = SPECS[layer.kind]
    a = layer.params
    keys = set(a)
    opt = "?" if layer.optional else ""
    if layer.kind == "INPUT" and keys:
        return f"INPUT[{a['W']}x{a['H']}x{a['D']}]{opt}"
    if not keys:
        return layer.kind + opt
    if spec.positional and keys == {spec.positional} and spec.positional != spec.dash:
        return f"{layer.kind}({_value(a[spec.positional])}){opt}"
    if spec.dash == spec.digits and keys == {spec.dash}:  # FC-4096
        return f"{layer.kind}-{a[spec.dash]}{opt}"
    if spec.digits and spec.dash and keys <= {spec.digits, spec.dash}:  # CONV3-64, CONV3, CONV-64
        head = f"{layer.kind}{a.get(spec.digits, '')}"
        return head + (f"-{a[spec.dash]}" if spec.dash in a else "") + opt
    if spec.digits and keys == {spec.digits}:  # POOL2
        return f"{layer.kind}{a[spec.digits]}{opt}"
    inner = ",".join(f"{k}={_value(v)}" for k, v in layer.args)
    return f"{layer.kind}({inner}){opt}"


def from_module(model: nn.Module) -> Net:
    """Read an ``nn.Sequential`` (nested ones allowed) back into a flat ``Net``.

    Only modules the language has a word for are accepted; ``nn.Flatten``/``nn.Identity`` are
    skipped. ``INPUT[WxHxD]`` comes from ``model.default_input_size`` when the model has one.
    """
    layers: list[Layer] = []
    size = getattr(model, "default_input_size", None)
    if size is not None:
        c, h, w = size
        layers.append(Layer("INPUT", (("W", w), ("H", h), ("D", c))))
    else:
        layers.append(Layer("INPUT"))
    _collect(model, "", layers)
    return Net(_fold(tuple(layers)))


def _collect(module: nn.Module, path: str, out: list[Layer]) -> None:
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            _collect(child, f"{path}.{name}" if path else name, out)
        return
    layer = _layer_of(module, path or type(module).__name__)
    if layer is not None:
        out.append(layer)


def _square(v, what: str, path: str) -> int:
    if isinstance(v, int):
        return v
    if len(set(v)) != 1:
        raise problem(
            1,
            path,
            f"{path}: {what} {tuple(v)} is not square; the line writes one F, S and P per layer",
        )
    return int(v[0])


def _layer_of(m: nn.Module, path: str) -> Layer | None:
    from ..layers.l2pool import L2Pool2d
    from ..layers.locally_connected import LocallyConnected2d

    def args(kind: str, **kw) -> Layer:
        order = [p.name for p in SPECS[kind].params]
        return Layer(kind, tuple(sorted(kw.items(), key=lambda kv: order.index(kv[0]))))

    if isinstance(m, (nn.Flatten, nn.Identity)):
        return None
    if isinstance(m, nn.Conv2d) and type(m) is nn.Conv2d:
        if m.bias is None or m.padding_mode != "zeros" or isinstance(m.padding, str):
            raise problem(
                1,
                path,
                f"{path}: a Conv2d without bias, with {m.padding_mode!r} or string padding has no word in the line",
            )
        f, s = _square(m.kernel_size, "kernel", path), _square(m.stride, "stride", path)
        p, d = _square(m.padding, "padding", path), _square(m.dilation, "dilation", path)
        kw = {"F": f, "K": m.out_channels}
        if s != 1:
            kw["S"] = s
        if p != d * (f - 1) // 2:
            kw["P"] = p
        if d != 1:
            kw["dilation"] = d
        if m.groups != 1:
            kw["groups"] = m.groups
        return args("CONV", **kw)
    if isinstance(m, LocallyConnected2d):
        if m.bias is None:
            raise problem(
                1, path, f"{path}: a LocallyConnected2d without bias has no word in the line"
            )
        f, s = _square(m.kernel_size, "kernel", path), _square(m.stride, "stride", path)
        p = _square(m.padding, "padding", path)
        kw = {"F": f, "K": m.out_channels}
        if s != 1:
            kw["S"] = s
        if p != (f - 1) // 2:
            kw["P"] = p
        return args("LC", **kw)
    pools = ((nn.MaxPool2d, "POOL"), (nn.AvgPool2d, "AVGPOOL"), (L2Pool2d, "L2POOL"))
    for cls, kind in pools:
        if type(m) is cls:
            if (
                getattr(m, "ceil_mode", False)
                or _square(getattr(m, "dilation", 1), "dilation", path) != 1
            ):
                raise problem(
                    1, path, f"{path}: a pool with ceil_mode or dilation has no word in the line"
                )
            if isinstance(m, nn.AvgPool2d) and (not m.count_include_pad or m.divisor_override):
                raise problem(
                    1, path, f"{path}: an AvgPool2d that excludes padding has no word in the line"
                )
            f = _square(m.kernel_size, "kernel", path)
            s = _square(m.stride if m.stride is not None else m.kernel_size, "stride", path)
            p = _square(m.padding, "padding", path)
            kw = {"F": f}
            if s != 2:
                kw["S"] = s
            if p:
                kw["P"] = p
            return args(kind, **kw)
    if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
        return Layer("GAP")
    if type(m) is nn.Linear:
        return args("FC", N=m.out_features)
    if type(m) is nn.ReLU:
        return Layer("RELU")
    if type(m) is nn.Softmax and m.dim in (1, -3):
        return Layer("SOFTMAX")
    if type(m) is nn.Dropout:
        return Layer("DROPOUT") if m.p == 0.5 else args("DROPOUT", p=float(m.p))
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
        return Layer("BN")
    if type(m) is nn.LocalResponseNorm:
        kw = {
            "k": float(m.k),
            "n": m.size,
            "alpha": float(f"{m.alpha / m.size:.12g}"),
            "beta": float(m.beta),
        }
        if kw == {"k": 2.0, "n": 5, "alpha": 1e-4, "beta": 0.75}:
            return Layer("LRN")
        return args("LRN", **kw)
    raise problem(
        1,
        path,
        f"{path}: {type(m).__name__} has no word in the pattern language "
        f"(known: {', '.join(SPECS)}); format() reads nn.Sequential models of those layers",
    )


def _fold(layers: tuple[Layer, ...]) -> tuple[Node, ...]:
    """Fold consecutive repeats: A B A B A B C -> [A -> B]*3 -> C (greedy, longest cover)."""
    out: list[Node] = []
    i, n = 0, len(layers)
    while i < n:
        best_len, best_count = 1, 1
        for length in range(1, (n - i) // 2 + 1):
            block = layers[i : i + length]
            count = 1
            while layers[i + count * length : i + (count + 1) * length] == block:
                count += 1
            if count > 1 and length * count > best_len * best_count:
                best_len, best_count = length, count
        if best_count > 1:
            out.append(Repeat(layers[i : i + best_len], best_count))
        else:
            out.append(layers[i])
        i += best_len * best_count
    return tuple(out)
