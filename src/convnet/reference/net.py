"""Networks of reference layers: a plain :class:`Sequential` and a small DAG, :class:`Net`.

Both expose the same interface the optimizers and the :class:`~convnet.reference.solver.Solver`
use: ``forward(x) -> scores``, ``backward(dscores) -> dx``, ``params`` and ``grads`` (dicts
keyed by dotted names such as ``features.0.weight``, torch's names when the net came from
``from_torch``), ``buffers``, and ``train()`` / ``eval()``.

:class:`Net` runs nodes in order; each node applies an op to earlier nodes' outputs (given as
:class:`Ref`) and constants. Ops that are :class:`~convnet.reference.layers.Layer` objects take
part in the backward pass; plain callables (shape arithmetic such as ``x.size(0)``) run in
the forward pass only. The backward pass visits the nodes in reverse and *adds* the gradients
arriving at a node from several consumers: that sum is the backward of a branch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from .layers import Layer

__all__ = ["Net", "Node", "Ref", "Sequential"]


@dataclass(frozen=True)
class Ref:
    """The output of the node called ``name``."""

    name: str


@dataclass
class Node:
    """One step of a :class:`Net`: ``op(*args)`` where args may hold :class:`Ref` (also in lists)."""

    name: str
    op: Layer | Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    param_names: dict[str, str] = field(default_factory=dict)  # layer key -> net name
    buffer_names: dict[str, str] = field(default_factory=dict)


def _resolve(arg, values: dict):
    if isinstance(arg, Ref):
        return values[arg.name]
    if isinstance(arg, (list, tuple)):
        return type(arg)(_resolve(a, values) for a in arg)
    if isinstance(arg, dict):
        return {k: _resolve(v, values) for k, v in arg.items()}
    if isinstance(arg, slice):
        return slice(
            _resolve(arg.start, values), _resolve(arg.stop, values), _resolve(arg.step, values)
        )
    return arg


class _Model:
    """What Sequential and Net share: parameter bookkeeping and train/eval switching."""

    def _entries(self) -> Iterable[tuple[Layer, dict[str, str], dict[str, str]]]:
        raise NotImplementedError

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every parameter array by name (shared layers appear once)."""
        out: dict[str, np.ndarray] = {}
        for layer, names, _ in self._entries():
            for key, full in names.items():
                out.setdefault(full, layer.params[key])
        return out

    @property
    def grads(self) -> dict[str, np.ndarray]:
        """Gradients of the last backward, summed over every use of a shared parameter."""
        out: dict[str, np.ndarray] = {}
        for layer, names, _ in self._entries():
            for key, full in names.items():
                if key in layer.grads:
                    g = layer.grads[key]
                    out[full] = out[full] + g if full in out else g
        return out

    @property
    def buffers(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for layer, _, names in self._entries():
            for key, full in names.items():
                out.setdefault(full, layer.buffers[key])
        return out

    def zero_grad(self) -> None:
        for layer, _, _ in self._entries():
            layer.grads.clear()

    def train(self, mode: bool = True):
        for layer, _, _ in self._entries():
            layer.training = mode
        return self

    def eval(self):
        return self.train(False)

    @property
    def training(self) -> bool:
        return all(layer.training for layer, _, _ in self._entries())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every parameter and buffer, by name."""
        return {k: v.copy() for k, v in {**self.params, **self.buffers}.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters and buffers in place (so optimizers keep working)."""
        for name, arr in {**self.params, **self.buffers}.items():
            arr[...] = state[name]

    def num_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def __call__(self, *xs):
        return self.forward(*xs)


class Sequential(_Model):
    """Layers applied one after the other; parameters are named ``"<index>.<key>"``."""

    def __init__(self, *layers: Layer, names: list[str] | None = None) -> None:
        self.layers = list(layers)
        self.names = names or [str(i) for i in range(len(self.layers))]

    def _entries(self):
        for name, layer in zip(self.names, self.layers):
            yield (
                layer,
                {k: f"{name}.{k}" for k in layer.params},
                {k: f"{name}.{k}" for k in layer.buffers},
            )

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return dout

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({n}): {layer!r}" for n, layer in zip(self.names, self.layers))
        return f"Sequential(\n{inner}\n)"


class Net(_Model):
    """A DAG of nodes; ``inputs`` name the placeholders, ``output`` is a :class:`Ref`."""

    def __init__(self, nodes: list[Node], inputs: list[str], output: Ref) -> None:
        self.nodes = nodes
        self.inputs = inputs
        self.output = output

    def _entries(self):
        for node in self.nodes:
            if isinstance(node.op, Layer):
                yield node.op, node.param_names, node.buffer_names

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        """Evaluate every node in order; returns the output node's value."""
        values: dict = dict(zip(self.inputs, xs))
        for node in self.nodes:
            args = _resolve(node.args, values)
            values[node.name] = node.op(*args, **_resolve(node.kwargs, values))
        return values[self.output.name]

    def backward(self, dout: np.ndarray):
        """Push ``dout`` back through every layer; returns the gradient of the (first) input.

        Parameter gradients land in ``self.grads``.
        """
        grads: dict[str, np.ndarray] = {self.output.name: dout}
        for node in reversed(self.nodes):
            g = grads.pop(node.name, None)
            if g is None or not isinstance(node.op, Layer):
                continue
            dins = node.op.backward(g)
            if not isinstance(dins, tuple):
                dins = (dins,)
            for arg, d in zip(node.args, dins):
                if isinstance(arg, Ref) and d is not None:
                    grads[arg.name] = grads[arg.name] + d if arg.name in grads else d
        dx = [grads.get(name) for name in self.inputs]
        return dx[0] if len(dx) == 1 else tuple(dx)

    @property
    def layers(self) -> dict[str, Layer]:
        return {n.name: n.op for n in self.nodes if isinstance(n.op, Layer)}

    def __repr__(self) -> str:
        def show(a):
            return a.name if isinstance(a, Ref) else repr(a)

        lines = []
        for n in self.nodes:
            op = repr(n.op) if isinstance(n.op, Layer) else getattr(n.op, "__name__", repr(n.op))
            lines.append(f"  {n.name} = {op}({', '.join(show(a) for a in n.args)})")
        return "Net(\n" + "\n".join(lines) + f"\n  -> {self.output.name}\n)"
