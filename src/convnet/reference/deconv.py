"""Project one unit's activation back to the input pixels: Zeiler and Fergus's deconvnet.

The chosen unit keeps its activation and every other activation of the layer is set to zero;
that signal then goes down through the layers that produced it, each with its own rule:

- max pooling, *unpool*: each value goes to the position the forward pass's switch recorded
  (the cache of :func:`~convnet.reference.functional_pool.maxpool2d_forward`);
- ReLU, *rectify*: ``max(0, s)`` in the deconvnet; ``s * [x > 0]`` in plain backpropagation
  (the gradient); ``max(0, s) * [x > 0]`` in guided backpropagation;
- convolution, the *transposed filters*: ``dx = conv_transpose(s, W)``, the bias left out;
- everything else (average pooling, batch norm in eval mode, dropout, flatten, adds,
  concatenation): its backward pass, which is the transpose of its linear map.

Shapes: x (N, C, H, W) in, (N, C, H, W) out, one projection per image. Only NumPy: the
torch version (:func:`convnet.viz.deconv.project`) is tested against this one.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConvnetError, ShapeError
from .layers import Layer, ReLU
from .net import Net, Ref, Sequential, _resolve

__all__ = ["RULES", "deconv_project", "rectify", "strongest_units"]

RULES = ("deconvnet", "guided", "backprop")


def rectify(signal: np.ndarray, opened: np.ndarray, rule: str) -> np.ndarray:
    """The signal through a ReLU on the way down; ``opened`` is the forward mask ``x > 0``.

    deconvnet: ``max(0, s)``; backprop: ``s * opened``; guided: ``max(0, s) * opened``.
    """
    if rule == "deconvnet":
        return np.maximum(signal, 0)
    if rule == "backprop":
        return signal * opened
    if rule == "guided":
        return np.maximum(signal, 0) * opened
    raise ConvnetError(f"unknown projection rule {rule!r}; choose one of {', '.join(RULES)}")


def strongest_units(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per image, the (row, col) of the largest value of a (N, h, w) map and that value.

    Ties go to the first position in row-major order (as ``argmax`` does). Returns
    ``units`` (N, 2) int and ``values`` (N,).
    """
    n, _, w = maps.shape
    flat = maps.reshape(n, -1)
    idx = flat.argmax(1)
    return np.stack([idx // w, idx % w], 1), flat[np.arange(n), idx]


def deconv_project(
    net: Net | Sequential,
    x: np.ndarray,
    layer: str,
    channel: int,
    *,
    units: np.ndarray | None = None,
    rule: str = "deconvnet",
) -> np.ndarray:
    """Project the strongest activation of ``channel`` at ``layer`` back to pixels, per image.

    Args:
        net: a reference net (``from_torch`` gives a :class:`Net`); run in eval mode here.
        x: (N, C, H, W) input batch.
        layer: the node's name (a :class:`Sequential`'s layer name), or the torch module path it
            came from (``features.3`` is the node ``features_3``).
        channel: the channel of the layer's (N, K, h, w) output.
        units: (N, 2) (row, col) to project instead of each image's strongest unit.
        rule: ``deconvnet``, ``guided`` or ``backprop`` (see the module docstring).

    Returns (N, C, H, W): the signal that reaches the input.
    """
    if rule not in RULES:
        raise ConvnetError(f"unknown projection rule {rule!r}; choose one of {', '.join(RULES)}")
    steps, inputs, target = _steps(net, layer)
    was_training = net.training
    net.eval()
    try:
        values = dict(zip(inputs, [x]))
        for name, op, args in steps:
            values[name] = op(*_resolve(args, values))
        signal = _seed(values[target], layer, channel, units)
        return _down(steps, inputs, target, signal, rule, np.zeros_like(x))
    finally:
        net.train(was_training)


def _steps(net: Net | Sequential, layer: str) -> tuple[list[tuple], list[str], str]:
    """(name, op, args) of every step up to the target, the input names and the target's name."""
    if isinstance(net, Sequential):
        steps, prev = [], "input"
        for name, op in zip(net.names, net.layers):
            steps.append((name, op, (Ref(prev),)))
            prev = name
        inputs = ["input"]
    else:
        steps = [(n.name, n.op, n.args) for n in net.nodes]
        inputs = list(net.inputs)
    names = [s[0] for s in steps]
    wanted = [layer, layer.replace(".", "_"), "_" + layer.replace(".", "_")]  # torch.fx's names
    target = next((w for w in wanted if w in names), None)
    if target is None:
        raise ConvnetError(
            f"no layer {layer!r} in the reference net; its nodes: {', '.join(names)}"
        )
    return steps[: names.index(target) + 1], inputs, target


def _seed(out: np.ndarray, layer: str, channel: int, units: np.ndarray | None) -> np.ndarray:
    """Zeros like ``out`` except each image's chosen unit of ``channel``, which keeps its value."""
    if not isinstance(out, np.ndarray) or out.ndim != 4:
        shape = getattr(out, "shape", type(out).__name__)
        raise ShapeError(
            f"layer {layer!r} outputs {shape}, not (N, C, H, W) maps; project from a layer "
            "with a spatial output (a convolution, ReLU or pooling layer)"
        )
    n, k = out.shape[:2]
    if not 0 <= channel < k:
        raise ConvnetError(f"layer {layer!r} has channels 0..{k - 1}; got {channel}")
    if units is None:
        units, _ = strongest_units(out[:, channel])
    units = np.asarray(units, dtype=np.int64).reshape(n, 2)
    signal = np.zeros_like(out)
    rows, cols, img = units[:, 0], units[:, 1], np.arange(n)
    signal[img, channel, rows, cols] = out[img, channel, rows, cols]
    return signal


def _down(
    steps: list[tuple], inputs: list[str], target: str, signal, rule: str, none: np.ndarray
) -> np.ndarray:
    """Walk the steps backwards from ``target``; signals arriving from several consumers add."""
    pending: dict[str, np.ndarray] = {target: signal}
    for name, op, args in reversed(steps):
        s = pending.pop(name, None)
        if s is None or not isinstance(op, Layer):
            continue  # shape arithmetic, or a node the target does not depend on
        down = rectify(s, op.cache, rule) if isinstance(op, ReLU) else op.backward(s)
        down = down if isinstance(down, tuple) else (down,)
        for arg, d in zip(args, down):
            if isinstance(arg, Ref) and d is not None:
                pending[arg.name] = pending[arg.name] + d if arg.name in pending else d
    return pending.get(inputs[0], none)  # ``none``: zeros, when no path reaches the input
