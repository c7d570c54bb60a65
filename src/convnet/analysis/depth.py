"""Depth as the papers count it: the weight layers on the longest path from input to output.

VGG-16 has 16 weight layers (13 conv + 3 FC). GoogLeNet has 22 = 3 + 18 + 1 (seed 004): the
stem's three convolutions, two per Inception module (its branches run side by side, so a module
is as deep as its longest branch: a 1x1 reduction, then the 3x3 or 5x5), and the classifier.
ResNet-50 is 1 + 16 x 3 + 1: the projection shortcuts run beside the blocks and add no depth.

A *weight layer* is a leaf module holding a weight of two or more dimensions that is not a
normalization (Conv, Linear, LeNet-5's trainable subsampling, a locally connected layer), or a
functional convolution / linear call made outside such a module. Batch norm, pooling and
activations are not counted, as the papers do not count them. Along the way:

- a merge (concatenation, addition) is as deep as its deepest input;
- a gate, a multiply by a smaller broadcast tensor (squeeze-and-excitation's channel weights), is
  as deep as the volume it gates: the gate's own layers run beside the path (SE-ResNet-50 has 50);
- auxiliary classifiers do not run in eval mode, so they are never on the path.

The count rides on the summary's meta-device trace (:func:`counting`), so it costs no second
forward; :func:`weight_layers` runs one trace for it alone. ``sum_merges`` counts the additions
of two equal volumes, i.e. the shortcut (residual) connections: 0 in a plain or purely
Inception network, one per block in a ResNet.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

WEIGHT_OPS = {
    "conv1d": "conv",
    "conv2d": "conv",
    "conv3d": "conv",
    "conv_transpose1d": "conv",
    "conv_transpose2d": "conv",
    "conv_transpose3d": "conv",
    "linear": "fc",
    "bilinear": "fc",
}
NORMS = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
_MULS = {"mul", "mul_", "__mul__", "__rmul__", "__imul__"}
_ADDS = {"add", "add_", "__add__", "__radd__", "__iadd__"}
KIND_NAMES = {"conv": "conv", "fc": "FC", "other": "other"}


@dataclass(frozen=True)
class WeightLayers:
    """The weight layers on the longest input-to-output path, in order, and their kinds.

    ``path`` holds each layer's module path (``"features.0"``); ``kinds`` the matching
    ``"conv"``, ``"fc"`` or ``"other"`` (a trainable subsampling or locally connected layer).
    """

    path: tuple[str, ...]
    kinds: tuple[str, ...]
    sum_merges: int = 0

    @property
    def count(self) -> int:
        return len(self.path)

    def by_kind(self) -> dict[str, int]:
        """{"conv": 13, "fc": 3} for VGG-16: how many of each kind, in first-seen order."""
        out: dict[str, int] = {}
        for k in self.kinds:
            out[k] = out.get(k, 0) + 1
        return out

    def describe(self) -> str:
        """'16 (13 conv + 3 FC)'."""
        return describe(self.by_kind())

    def totals(self) -> dict[str, Any]:
        """The summary's entries: ``weight_layers`` and ``weight_layer_kinds``."""
        return {"weight_layers": self.count, "weight_layer_kinds": self.by_kind()}


def describe(kinds: dict[str, int]) -> str:
    """{"conv": 13, "fc": 3} -> '16 (13 conv + 3 FC)'."""
    parts = " + ".join(f"{n} {KIND_NAMES.get(k, k)}" for k, n in kinds.items())
    return f"{sum(kinds.values())} ({parts})" if parts else "0"


@dataclass(frozen=True)
class _Node:
    """A tensor's place in the count: its depth and the last weight layer on its longest path."""

    depth: int
    layer: str | None = None
    kind: str | None = None
    parent: _Node | None = None


_ROOT = _Node(0)


def is_weight_layer(module: nn.Module) -> bool:
    """A leaf module with a weight of two or more dimensions, or a named ``weight``, that is not
    a normalization layer (batch norm's weight is a per-channel scale)."""
    if isinstance(module, NORMS) or any(True for _ in module.children()):
        return False
    params = dict(module.named_parameters(recurse=False))
    return any(p.dim() >= 2 for p in params.values()) or "weight" in params


class DepthCounter(TorchFunctionMode):
    """Follows every torch call of a forward to find the longest chain of weight layers.

    Entered from the root module's forward pre-hook, so that it sits inside any mode already
    running (the summary's recorder) and sees each call before that mode answers it. Tensor
    queries made here (shapes) would reach that outer mode as calls of their own, so they are
    made only for the few calls that need them (multiplies and additions of two tensors).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.names = {id(m): n for n, m in model.named_modules()}
        self.weighted = [m for m in model.modules() if is_weight_layer(m)]
        self.nodes: dict[int, tuple[torch.Tensor, _Node]] = {}
        self.stack: list[tuple[nn.Module, _Node, list[str]]] = []  # running weight layers
        self.sum_merges = 0
        self.result: WeightLayers | None = None
        self._entered = False

    # --- tensors ----------------------------------------------------------------------------
    def node_of(self, t: torch.Tensor) -> _Node | None:
        hit = self.nodes.get(id(t))
        return hit[1] if hit is not None and hit[0] is t else None

    def _set(self, out: Any, node: _Node) -> None:
        for t in _tensors(out):
            self.nodes[id(t)] = (t, node)

    def _deepest(self, tensors: list[torch.Tensor]) -> _Node:
        best = _ROOT
        for t in tensors:
            n = self.node_of(t)
            if n is not None and n.depth > best.depth:
                best = n
        return best

    # --- modules: the root, and each weight layer -----------------------------------------------
    def root_pre_hook(self, module: nn.Module, args: tuple) -> None:
        if not self._entered:
            self.__enter__()
            self._entered = True
            self._set(args, _ROOT)

    def root_post_hook(self, module: nn.Module, args: tuple, output: Any = None) -> None:
        if self._entered:
            self._entered = False
            self.__exit__(None, None, None)
            if output is not None:
                self.result = self._walk(self._deepest(_tensors(output)))

    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        self.stack.append((module, self._deepest(_tensors(args)), []))

    def post_hook(self, module: nn.Module, args: tuple, output: Any = None) -> None:
        if not self.stack or self.stack[-1][0] is not module:
            return
        _, entry, ops = self.stack.pop()
        if output is not None:
            kind = next((WEIGHT_OPS[o] for o in ops if o in WEIGHT_OPS), "other")
            path = self.names.get(id(module), type(module).__name__)
            self._set(output, _Node(entry.depth + 1, path, kind, entry))

    def _walk(self, node: _Node | None) -> WeightLayers:
        layers, kinds = [], []
        while node is not None and node.layer is not None:
            layers.append(node.layer)
            kinds.append(node.kind or "other")
            node = node.parent
        return WeightLayers(tuple(reversed(layers)), tuple(reversed(kinds)), self.sum_merges)

    # --- every torch call -------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        inputs = _tensors(args)
        if kwargs:
            inputs += _tensors(kwargs)
        if self.stack:  # inside a weight layer: its output gets its depth in post_hook
            self.stack[-1][2].append(name)
            self._set(out, self._deepest(inputs))
            return out
        if len(inputs) == 2 and (name in _MULS or name in _ADDS):
            node = self._binary(name, inputs)
        else:
            node = self._deepest(inputs)
        if name in WEIGHT_OPS:  # a functional convolution or linear call in a forward
            node = _Node(node.depth + 1, f"{name}()", WEIGHT_OPS[name], node)
        self._set(out, node)
        return out

    def _binary(self, name: str, inputs: list[torch.Tensor]) -> _Node:
        a, b = inputs
        same = tuple(a.shape) == tuple(b.shape)
        if name in _MULS and not same:  # a gate: as deep as the volume it gates
            big = a if a.dim() >= b.dim() and (a.dim() > b.dim() or a.numel() >= b.numel()) else b
            return self.node_of(big) or _ROOT
        if name in _ADDS and same and a.dim() >= 2:
            if self.node_of(a) is not None and self.node_of(b) is not None:
                self.sum_merges += 1  # a shortcut: two equal volumes added
        return self._deepest(inputs)

    @contextlib.contextmanager
    def hooks(self) -> Iterator[DepthCounter]:
        """Count during any forward of the model run inside this block."""
        handles = [
            self.model.register_forward_pre_hook(self.root_pre_hook),
            self.model.register_forward_hook(self.root_post_hook, always_call=True),
        ]
        for m in self.weighted:
            handles.append(m.register_forward_pre_hook(self.pre_hook))
            handles.append(m.register_forward_hook(self.post_hook, always_call=True))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
            if self._entered:  # the forward failed half-way
                self._entered = False
                self.__exit__(None, None, None)
            self.stack.clear()


def _tensors(obj: Any) -> list[torch.Tensor]:
    """Tensors in an argument tuple, a list/tuple/dict of them, or an output structure."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if not isinstance(obj, (list, tuple)):
        return []
    out = []
    for o in obj:
        if isinstance(o, torch.Tensor):
            out.append(o)
        elif isinstance(o, (list, tuple, dict)):
            out += _tensors(o)
    return out


@contextlib.contextmanager
def counting(model: nn.Module) -> Iterator[DepthCounter]:
    """``with counting(model) as c: trace(model, ...)``; then ``c.result`` is the count."""
    counter = DepthCounter(model)
    with counter.hooks():
        yield counter


def weight_layers(model: nn.Module, input_size: tuple[int, ...]) -> WeightLayers:
    """The weight layers of ``model`` on its longest path for input (C, H, W), on the meta
    device (no weight is read)."""
    from .trace import trace

    with counting(model) as counter:
        trace(model, tuple(input_size))
    if counter.result is None:
        raise RuntimeError(f"{type(model).__name__}: the forward returned no tensor to count to")
    return counter.result


__all__ = [
    "DepthCounter",
    "WeightLayers",
    "counting",
    "describe",
    "is_weight_layer",
    "weight_layers",
]
