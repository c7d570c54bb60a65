"""Zeiler and Fergus's deconvnet: a unit's activation projected back to the input pixels.

The chosen unit keeps its activation, every other activation of the layer is set to zero, and
the signal goes down the layers that produced it: max pooling *unpools* it to the positions
its switches recorded on the way up, a ReLU *rectifies* it (``max(0, s)``), and a convolution
sends it through its *transposed filters* (``conv_transpose`` with the same weights, no bias).
The picture is the pattern in the image that made the unit fire.

In torch that is autograd's backward pass from the unit with one change: the ReLU's backward.
Max pooling's backward already routes each value to the argmax (the switch) and a
convolution's input gradient already is the transposed convolution, so only the ReLU rule is
replaced, by a ``TorchFunctionMode`` that catches every ``relu`` call (module or functional)
during the forward. Three rules are offered:

- ``deconvnet``: ``max(0, s)``, the signal rectified (Zeiler and Fergus, 2014);
- ``backprop``: ``s * [x > 0]``, the plain gradient (Simonyan et al.'s saliency);
- ``guided``: ``max(0, s) * [x > 0]``, both (Springenberg et al.'s guided backpropagation).

Other layers use their backward pass, the transpose of their linear map in eval mode: average
pooling spreads evenly, batch norm scales by gamma / sqrt(var + eps), a residual add copies the
signal to both branches, a concatenation splits it. :func:`projection_rules` lists the rule of
every step for a given model. The NumPy engine computes the same projection
(:func:`convnet.reference.deconv.deconv_project`); the tests check one against the other.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch.overrides import TorchFunctionMode

from ..errors import ConvnetError
from ._images import describe, get_layer, load_image, show_image, to_input
from .patches import Stop, crop, draw_tile, layer_field, run_model, unit_box

RULES = ("deconvnet", "guided", "backprop")

_RELU = (F.relu, torch.relu, torch.Tensor.relu)
_RELU_INPLACE = (F.relu_, torch.relu_, torch.Tensor.relu_)


class _Rectify(torch.autograd.Function):
    """ReLU on the way up; on the way down, the chosen rule instead of the gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, rule: str) -> torch.Tensor:
        opened = x > 0
        ctx.save_for_backward(opened)  # a mask, not x: an in-place ReLU overwrites x
        ctx.rule = rule
        return x * opened

    @staticmethod
    def backward(ctx, s: torch.Tensor):
        (opened,) = ctx.saved_tensors
        if ctx.rule == "deconvnet":
            return s.clamp(min=0), None
        if ctx.rule == "guided":
            return s.clamp(min=0) * opened, None
        return s * opened, None


class _Rectifying(TorchFunctionMode):
    """Inside this mode every relu call (nn.ReLU, F.relu, torch.relu, x.relu_()) is _Rectify."""

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _RELU or func in _RELU_INPLACE:
            x = args[0]
            out = _Rectify.apply(x, self.rule)
            inplace = func in _RELU_INPLACE or bool(kwargs.get("inplace", args[1:2] == (True,)))
            if inplace:  # keep the caller's view of x: write the result back, as relu_ would
                x.copy_(out)
                return x
            return out
        return func(*args, **kwargs)


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ConvnetError(f"unknown projection rule {rule!r}; choose one of {', '.join(RULES)}")
    return rule


def project(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    channel: int,
    *,
    units: Sequence[tuple[int, int]] | None = None,
    rule: str = "deconvnet",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project each image's strongest unit of ``channel`` at ``layer`` back to the pixels.

    Args:
        x: (N, C, H, W) the model's input (normalized as in training).
        units: (row, col) per image to project instead of the strongest unit.
        rule: ``deconvnet``, ``guided`` or ``backprop`` (see the module docstring).

    Returns ``(projections (N, C, H, W), units (N, 2), values (N,))``: the signal reaching the
    input, the unit projected and its activation. The model runs in eval mode.
    """
    check_rule(rule)
    _, module = get_layer(model, layer)
    p = next(model.parameters(), None)
    device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    x = x.detach().to(device=device, dtype=dtype).requires_grad_(True)
    box: list[torch.Tensor] = []

    def hook(_m, _i, out):
        box.append(out)
        raise Stop  # the rest of the network plays no part in the projection

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), _Rectifying(rule):
            run_model(model, x)
    except Stop:
        pass
    finally:
        handle.remove()
        model.train(was_training)
    maps = _spatial(box, layer)
    n, k = maps.shape[:2]
    if not 0 <= channel < k:
        raise ConvnetError(f"layer {layer!r} has channels 0..{k - 1}; got {channel}")
    plane = maps[:, channel].detach()
    if units is None:
        flat = plane.flatten(1).argmax(1)
        rows, cols = flat // plane.shape[2], flat % plane.shape[2]
    else:
        at = torch.as_tensor(np.asarray(units), dtype=torch.long, device=plane.device).view(n, 2)
        rows, cols = at[:, 0], at[:, 1]
    img = torch.arange(n, device=plane.device)
    values = plane[img, rows, cols]
    seed = torch.zeros_like(maps)
    seed[img, channel, rows, cols] = values
    # d(sum(maps * seed))/dx is the backward pass seeded with ``seed``; a scalar output, because
    # torch imports its symbolic-shapes module (sympy, a second) for a tensor ``grad_outputs``
    (signal,) = torch.autograd.grad((maps * seed).sum(), x, allow_unused=True)
    signal = torch.zeros_like(x) if signal is None else signal
    units_out = torch.stack([rows, cols], 1)
    return signal.detach().cpu().numpy(), units_out.cpu().numpy(), values.cpu().numpy()


def _spatial(box: list, layer: str) -> torch.Tensor:
    if not box:
        raise ConvnetError(f"layer {layer!r} did not run in the forward pass")
    out = box[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConvnetError(
            f"layer {layer!r} outputs {shape}, not (N, C, H, W) maps, so its units have no "
            "place in the image; pick a convolution, ReLU or pooling layer"
        )
    return out


# --- which rule each layer uses ---------------------------------------------------------------


def _module_rule(m: nn.Module, rule: str) -> str:
    if isinstance(m, nn.modules.conv._ConvNd):
        return "transposed filters (conv_transpose, same weights, no bias)"
    if isinstance(m, nn.ReLU):
        return _RELU_RULE[rule]
    if isinstance(m, nn.MaxPool2d | nn.AdaptiveMaxPool2d):
        return "unpool: each value to its max's position (the switches)"
    if isinstance(m, nn.AvgPool2d | nn.AdaptiveAvgPool2d):
        return "spread evenly over each window (the average's transpose)"
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return "scale by gamma / sqrt(running var + eps) (eval mode; the shift drops out)"
    if isinstance(m, nn.Dropout | nn.Dropout2d | nn.Identity):
        return "identity (eval mode)"
    if isinstance(m, nn.Flatten):
        return "reshaped back"
    return "its gradient (the backward pass at this input)"


_RELU_RULE = {
    "deconvnet": "rectify the signal: max(0, s)",
    "backprop": "the gradient: s * [x > 0]",
    "guided": "guided: max(0, s) * [x > 0]",
}

_FUNCTION_RULES = {
    "add": "residual add: the signal goes to both branches",
    "add_": "residual add: the signal goes to both branches",
    "__add__": "residual add: the signal goes to both branches",
    "__iadd__": "residual add: the signal goes to both branches",
    "cat": "concatenation: split back among the inputs",
    "relu": None,  # the ReLU rule
    "relu_": None,
    "max_pool2d": "unpool: each value to its max's position (the switches)",
    "adaptive_max_pool2d": "unpool: each value to its max's position (the switches)",
    "avg_pool2d": "spread evenly over each window (the average's transpose)",
    "adaptive_avg_pool2d": "spread evenly over each window (the average's transpose)",
    "flatten": "reshaped back",
    "view": "reshaped back",
    "reshape": "reshaped back",
}


class _Recorder(TorchFunctionMode):
    """Notes the tensor functions a container's own forward calls (adds, cats, functional relu)."""

    def __init__(self, stack: list[tuple[str, bool]], steps: list) -> None:
        super().__init__()
        self.stack, self.steps = stack, steps

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if self.stack and not self.stack[-1][1] and isinstance(out, torch.Tensor):
            where = self.stack[-1][0]
            self.steps.append((f"{where}.{name}" if where else name, name, None))
        return out


def projection_rules(
    model: nn.Module, layer: str, input_size: Sequence[int], rule: str = "deconvnet"
) -> list[tuple[str, str, str]]:
    """(where, what, rule) for every step from the input up to ``layer``, in forward order.

    The signal takes these steps backwards. Module steps are named by path and type; tensor
    functions a container calls in its own forward (a residual ``add``, a ``cat``) by the
    container's path and the function. Traced once on the meta device.
    """
    check_rule(rule)
    get_layer(model, layer)
    probe = copy.deepcopy(model).to("meta").eval()
    steps: list[tuple[str, str, str | None]] = []
    stack: list[tuple[str, bool]] = []
    handles = []
    for name, m in probe.named_modules():
        leaf = not list(m.children())
        handles.append(
            m.register_forward_pre_hook(lambda *_, n=name, lf=leaf: stack.append((n, lf)))
        )
        handles.append(m.register_forward_hook(lambda mod, *_, n=name, lf=leaf: _done(mod, n, lf)))

    def _done(mod, n, leaf):
        stack.pop()
        if leaf and n:
            steps.append((n, type(mod).__name__, _module_rule(mod, rule)))
        if n == layer:
            raise Stop

    try:
        with torch.no_grad(), _Recorder(stack, steps):
            dtype = next((q.dtype for q in probe.parameters()), torch.float32)
            run_model(probe, torch.empty(1, *input_size, device="meta", dtype=dtype))
    except Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    out = []
    for where, what, how in steps:
        if how is None:
            fn = what
            how = _FUNCTION_RULES.get(fn) or (
                _RELU_RULE[rule] if fn in ("relu", "relu_") else "its gradient"
            )
        out.append((where, what, how))
    return out


# --- the figure -------------------------------------------------------------------------------


def signed_image(p: np.ndarray) -> np.ndarray:
    """A (C, H, W) signed projection as an (H, W, C) picture: 0.5 + 0.5 * p / max|p|.

    Grey is no signal; lighter pixels pushed the unit up, darker ones down.
    """
    peak = float(np.abs(p).max())
    q = 0.5 + 0.5 * p / peak if peak > 0 else np.full_like(p, 0.5)
    return np.clip(np.moveaxis(q, 0, -1), 0, 1).astype(np.float32)


def deconv(
    model: nn.Module,
    image: Any,
    layer: str,
    *,
    channels: Sequence[int] | None = None,
    count: int = 4,
    rule: str = "deconvnet",
    input_size: tuple[int, int, int] | None = None,
    mean=None,
    std=None,
) -> Figure:
    """One row per channel: the input with the unit's receptive field boxed, the projection of
    the channel's strongest unit, the projection and the image patch inside that field.

    ``channels`` default: the ``count`` channels with the strongest unit on this image.
    """
    size = input_size or getattr(model, "default_input_size", None)
    if size is None:
        raise ConvnetError("input size unknown: pass input_size=(C, H, W)")
    check_rule(rule)
    get_layer(model, layer)
    shown = load_image(image, size)
    x = to_input(shown, mean, std)
    if channels is None:
        channels = strongest_channels(model, x, layer, count)
    field = layer_field(model, layer, size)
    rows = len(channels)
    fig = Figure(figsize=(7.4, 1.85 * rows + 1.0), layout="constrained")
    axes = fig.subplots(rows, 4, squeeze=False)
    for r, ch in enumerate(channels):
        proj, units, values = project(model, x, layer, int(ch), rule=rule)
        box = unit_box(field, tuple(int(v) for v in units[0]), size[1:])
        pic = signed_image(proj[0])
        show_image(axes[r, 0], shown)
        axes[r, 0].add_patch(_rect(box))
        draw_tile(axes[r, 1], pic)
        draw_tile(axes[r, 2], crop(pic, box))
        draw_tile(axes[r, 3], crop(shown, box))
        axes[r, 0].set_ylabel(f"ch {ch}\nunit {tuple(int(v) for v in units[0])}", fontsize=8)
        axes[r, 1].set_xlabel(f"activation {values[0]:.3g}", fontsize=7, labelpad=1)
    for ax, t in zip(
        axes[0], ("input, unit's field", f"projection ({rule})", "in the field", "patch")
    ):
        ax.set_title(t, fontsize=9)
    fig.suptitle(
        f"{describe(model, layer)}: strongest unit per channel, back to pixels", fontsize=10
    )
    return fig


def strongest_channels(model: nn.Module, x: torch.Tensor, layer: str, count: int) -> list[int]:
    """The ``count`` channels of ``layer`` with the largest activation on the one image ``x``."""
    from .patches import capture_many

    was_training = model.training
    model.eval()
    try:
        maps = capture_many(model, x.to(_device(model)), [layer])[layer][0]
    finally:
        model.train(was_training)
    order = torch.sort(maps.flatten(1).amax(1), descending=True, stable=True).indices
    return [int(c) for c in order[:count]]


def _rect(box: tuple[int, int, int, int]) -> Rectangle:
    top, left, bottom, right = box
    return Rectangle(
        (left - 0.5, top - 0.5), right - left, bottom - top, fill=False, ec="#ff3b30", lw=1.5
    )


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))
