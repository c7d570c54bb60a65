"""FC -> CONV surgery: turn a network's fully connected head into convolutions.

A Linear layer that reads a flattened ``C x H x W`` map computes, for each output unit ``k``,
``sum_{c,y,x} W[k, c*H*W + y*W + x] * a[c, y, x]``: exactly a convolution with ``K`` filters of
size ``F = H x W``, ``P = 0``, ``S = 1`` over that map, whose weights are ``W.reshape(K, C, H, W)``.
Every later Linear sees a ``1 x 1`` map, so it becomes a ``1 x 1`` convolution. The converted
network slides over a larger image in one pass: VGG-16 at 384x384 gives a 12x12x512 map, the
``F = 7`` layer turns it into ``(12 - 7)/1 + 1 = 6`` positions per side, a 6x6x1000 score map.

The model is traced with ``torch.fx``; every node's shape at the training size comes from the
meta device. Flattens are dropped, ``AdaptiveAvgPool2d`` that is the identity at the training
size is dropped, one that is not (a fixed average at that size, hence linear) is folded into
the first convolution's weights, and global pooling is refused: such a model already takes any
size and has no FC window to slide.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ..arith import output_size
from ..errors import ConversionError
from ._head import Step, _drop_node, _fmt, _is_flatten, _is_passthrough, _where, convert_head
from .graph import node_label, propagate, shape, trace

_ADAPTIVE_FUNCS = {
    F.adaptive_avg_pool2d: "avg",
    torch._C._nn.adaptive_avg_pool2d: "avg",
    F.adaptive_max_pool2d: "max",
}


# Input growth for measuring the stride on the meta device: a multiple of any usual stride.
_DELTA = 2**8 * 3**2 * 5 * 7


@dataclass(frozen=True)
class Conversion:
    """What ``fc_to_conv`` did; attached to the converted module as ``.conversion``.

    ``input_size`` (C, H, W) is the window the original network sees; ``stride`` (Sy, Sx) the
    pixels between neighbouring entries of the score map, so an H' x W' image gives a map of
    ``floor((H' - H) / Sy) + 1`` by ``floor((W' - W) / Sx) + 1`` positions.
    """

    input_size: tuple[int, int, int]
    stride: tuple[int, int]
    num_classes: int
    steps: tuple[Step, ...]
    # what the network returns: "scores" (logits), "probs" (it ends in a softmax) or
    # "log_probs" (a log-softmax), so dense prediction turns each into probabilities once
    output: str = "scores"

    def map_size(self, height: int, width: int) -> tuple[int, int]:
        """Score-map size for an image of ``height x width`` (0 where it is smaller than the window)."""
        _, h, w = self.input_size
        sy, sx = self.stride
        # the whole network as one window of the training size, sliding at its total stride
        return (max(0, output_size(height, h, sy)), max(0, output_size(width, w, sx)))

    def __str__(self) -> str:
        return "\n".join(str(s) for s in self.steps)


def resolve_input_size(model: nn.Module, input_size) -> tuple[int, int, int]:
    """(C, H, W) from an int, (H, W) or (C, H, W); C and a missing size come from the model."""
    default = getattr(model, "default_input_size", None)
    if input_size is None:
        if default is None:
            raise ConversionError(
                f"{type(model).__name__} does not say its input size: pass input_size=(C, H, W), "
                "the size it was trained at"
            )
        return tuple(int(v) for v in default)
    size = (
        (int(input_size),) * 2 if isinstance(input_size, int) else tuple(int(v) for v in input_size)
    )
    if len(size) == 3:
        return size
    if len(size) != 2:
        raise ConversionError(f"input_size {input_size!r} must be H, (H, W) or (C, H, W)")
    if default is not None:
        return (int(default[0]), *size)
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ConversionError(
            f"cannot tell the channels of {type(model).__name__}: pass input_size=(C, H, W)"
        )
    return (conv.in_channels, *size)


def _pool_matrix(n_in: int, n_out: int, dtype: torch.dtype) -> torch.Tensor:
    """(n_out, n_in) matrix of ``adaptive_avg_pool1d`` from n_in to n_out, read off torch itself."""
    eye = torch.eye(n_in, dtype=torch.float64)[None]  # (1, C=n_in, L=n_in): row a is e_a
    return F.adaptive_avg_pool1d(eye, n_out)[0].T.to(dtype)


def _adaptive(gm: fx.GraphModule, node: fx.Node) -> str | None:
    if node.op == "call_module":
        m = gm.get_submodule(node.target)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return "avg"
        if isinstance(m, nn.AdaptiveMaxPool2d):
            return "max"
    if node.op == "call_function":
        return _ADAPTIVE_FUNCS.get(node.target)
    return None


def _handle_adaptive_pools(gm: fx.GraphModule, size, steps: list[Step]) -> dict[fx.Node, tuple]:
    """Remove adaptive pools that are the identity at ``size``; return those to fold, by flatten."""
    folds: dict[fx.Node, tuple] = {}
    at = "x".join(map(str, size))
    for node in list(gm.graph.nodes):
        kind = _adaptive(gm, node)
        if kind is None:
            continue
        src, out = shape(node.args[0]), shape(node)
        label = node_label(gm, node)
        if src[2:] == out[2:]:
            steps.append(
                Step(
                    *_where(gm, node, out),
                    f"removed (identity on the {_fmt(*src[2:])} map at {at})",
                )
            )
            _drop_node(node)
            continue
        if out[2:] == (1, 1):
            raise ConversionError(
                f"{label} pools globally over the {_fmt(*src[2:])} map: the model already takes any "
                "input size and averages over positions, so there is no FC window to slide; run it on "
                "the large image directly"
            )
        user = node
        while len(user.users) == 1 and _is_passthrough(gm, next(iter(user.users))):
            user = next(iter(user.users))
        flat = next(iter(user.users)) if len(user.users) == 1 else None
        if kind != "avg" or flat is None or not _is_flatten(gm, flat):
            raise ConversionError(
                f"{label} resizes the {_fmt(*src[2:])} map at input {at} to {_fmt(*out[2:])}; "
                f"it is the identity only at the input size where the map is {_fmt(*out[2:])}: "
                "give that input size (e.g. the size the model was trained at)"
            )
        (h, w), (oh, ow) = src[2:], out[2:]
        folds[flat] = (_pool_matrix(h, oh, torch.float64), _pool_matrix(w, ow, torch.float64), h, w)
        steps.append(
            Step(
                *_where(gm, node, out),
                f"folded into the next layer's weights (a fixed average of the {_fmt(h, w)} map at {at})",
            )
        )
        _drop_node(node)
    return folds


def fc_to_conv(model: nn.Module, input_size: int | Sequence[int] | None = None) -> fx.GraphModule:
    """A fully convolutional copy of ``model`` for sliding it over images larger than ``input_size``.

    ``input_size``: the (C, H, W), (H, W) or H the model was trained at (default: the model's
    ``default_input_size``). The first Linear after the conv trunk becomes a Conv2d with
    ``F`` = the trunk's spatial output at that size (VGG-16 at 224: 7x7x512 -> 4096 is
    ``Conv2d(512, 4096, 7)``), every later Linear a 1x1 Conv2d; flattens and adaptive pools that
    are the identity at that size disappear; dropout stays. ``model`` is not modified.

    At ``input_size`` the result returns (N, K, 1, 1) scores equal to the original's (N, K). On a
    larger image it returns (N, K, h', w'), entry (i, j) being the original's scores on the
    window whose top-left corner is at ``(i * Sy, j * Sx)`` (``result.conversion.stride``; exact
    for a trunk without padding, and up to the zero padding a crop sees at its borders for one
    with padding, where the dense pass sees the neighbouring pixels instead).

    Raises ``ConversionError`` in one line for a model it cannot convert: a head that is already
    convolutional, global pooling, a Linear that mixes in non-spatial inputs.
    """
    size = resolve_input_size(model, input_size)
    gm = trace(copy.deepcopy(model))
    propagate(gm, size)
    steps: list[Step] = []
    folds = _handle_adaptive_pools(gm, size, steps)
    n_linear = convert_head(gm, folds, steps)
    if n_linear == 0:
        raise ConversionError(
            f"{type(model).__name__} has no Linear layer over a flattened conv map: its head is already "
            "convolutional (it returns a score map on a larger input as it is)"
        )
    gm.graph.eliminate_dead_code()
    gm.recompile()
    gm.delete_all_unused_submodules()
    out = propagate(gm, size)
    if out is None or len(out) != 4 or out[2:] != (1, 1):
        raise ConversionError(
            f"the converted model returns {out} at {size}, not (N, K, 1, 1); its head is not a plain FC stack"
        )
    c, h, w = size
    big = propagate(gm, (c, h + _DELTA, w + _DELTA))
    if big[2] <= 1 or big[3] <= 1 or _DELTA % (big[2] - 1) or _DELTA % (big[3] - 1):
        raise ConversionError(
            "the converted model does not return a larger score map on a larger input (a layer fixes "
            "the spatial size, e.g. an adaptive pool inside the trunk)"
        )
    stride = (_DELTA // (big[2] - 1), _DELTA // (big[3] - 1))
    gm.conversion = Conversion(size, stride, out[1], tuple(steps), _output_kind(gm))
    gm.default_input_size = size
    if hasattr(model, "model_name"):
        gm.model_name = model.model_name
    gm.train(model.training)
    return gm


def _output_kind(gm: fx.GraphModule) -> str:
    """ "probs" or "log_probs" if the network's last operation is a (log-)softmax, else "scores"."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    last = out.args[0]
    if not isinstance(last, fx.Node):
        return "scores"
    if last.op == "call_module":
        mod = gm.get_submodule(str(last.target))
        if isinstance(mod, nn.LogSoftmax):
            return "log_probs"
        return "probs" if isinstance(mod, nn.Softmax) else "scores"
    name = getattr(last.target, "__name__", last.target) if last.op != "placeholder" else ""
    if last.op in ("call_function", "call_method") and name in ("softmax", "log_softmax"):
        return "log_probs" if name == "log_softmax" else "probs"
    return "scores"
