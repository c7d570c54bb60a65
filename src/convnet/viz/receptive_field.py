"""The receptive field: the input region one output unit sees, and how it grows with depth.

The region is found without any formula: in a copy of the model whose every weight is
positive (1 / fan-in), whose biases are zero and whose max pooling is replaced by average
pooling of the same window, every path from an input pixel to a unit carries a positive
gradient. So the pixels with a nonzero gradient of the unit, for an all-ones input, are
exactly the pixels the unit can see (clipped to the image). The probe runs in float64
because the gradient at a deep unit's corner pixel is about (1/k^2)^depth.

On a real image the trained model's own gradient, |d unit / d x|, shows how the unit weighs
that region: its effective receptive field, bright in the middle and fading to the edges.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..errors import ConvnetError
from ._images import describe, get_layer, layer_order, load_image, show_image, to_input

_SPATIAL = (nn.modules.conv._ConvNd, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)


@dataclass(frozen=True)
class Region:
    """Input pixels one output unit sees: rows ``top:bottom``, columns ``left:right``."""

    unit: tuple[int, int]  # (row, col) of the unit in the layer's output map
    top: int
    left: int
    bottom: int  # exclusive
    right: int  # exclusive
    output_size: tuple[int, int]  # (H', W') of the layer's output
    clipped: bool  # the region touches the image border (it may extend beyond it)

    @property
    def size(self) -> tuple[int, int]:
        return self.bottom - self.top, self.right - self.left


def _probe(model: nn.Module) -> nn.Module:
    """A float64 copy with positive weights, zero biases and max pooling made average pooling."""
    probe = copy.deepcopy(model).cpu().double().eval()
    for name, m in list(probe.named_modules()):
        repl = None
        if isinstance(m, nn.MaxPool2d):
            repl = nn.AvgPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
        elif isinstance(m, nn.AdaptiveMaxPool2d):
            repl = nn.AdaptiveAvgPool2d(m.output_size)
        if repl is not None:
            parent, _, child = name.rpartition(".")
            setattr(probe.get_submodule(parent) if parent else probe, child, repl)
    with torch.no_grad():
        for pname, p in probe.named_parameters():
            if pname.endswith("bias"):
                p.zero_()
            elif p.dim() > 1:
                p.fill_(1.0 / (p[0].numel()))  # 1 / fan-in keeps values near 1 at any depth
            else:
                p.fill_(1.0)
        for bname, b in probe.named_buffers():
            if bname.endswith("running_mean"):
                b.zero_()
            elif bname.endswith("running_var"):
                b.fill_(1.0)
    return probe


def input_region(
    model: nn.Module, layer: str, input_size: Sequence[int], unit: tuple[int, int] | None = None
) -> Region:
    """The input region one unit of ``layer`` sees, for an input of ``input_size`` (C, H, W).

    ``unit`` is (row, col) in the layer's output map; default the centre unit.
    """
    get_layer(model, layer)
    probe = _probe(model)
    x = torch.ones(1, *input_size, dtype=torch.float64, requires_grad=True)
    out = _output(probe, x, layer)
    hh, ww = out.shape[-2:]
    r, c = unit if unit is not None else (hh // 2, ww // 2)
    if not (0 <= r < hh and 0 <= c < ww):
        raise ConvnetError(f"unit ({r}, {c}) is outside {layer!r}'s {hh}x{ww} output map")
    (grad,) = torch.autograd.grad(out[0, :, r, c].sum(), x)
    support = grad[0].abs().amax(0) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if len(rows) == 0:
        raise ConvnetError(f"unit ({r}, {c}) of {layer!r} does not depend on the input")
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    h, w = input_size[-2:]
    clipped = top == 0 or left == 0 or bottom == h or right == w
    return Region((r, c), top, left, bottom, right, (hh, ww), clipped)


def _output(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    _, module = get_layer(model, layer)
    box: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, o: box.append(o))
    try:
        model(x)
    finally:
        handle.remove()
    if not box or box[0].dim() != 4:
        raise ConvnetError(f"layer {layer!r} gives no (N, C, H, W) output to take a unit from")
    return box[0]


def rf_by_depth(model: nn.Module, input_size: Sequence[int]) -> list[tuple[str, str, int]]:
    """(path, type, receptive-field size) for each conv and pooling layer, in forward order.

    Taken from ``convnet.summary`` rows where the analysis package is present (the notes'
    recurrence ``r_out = r_in + (k - 1) * jump_in``); otherwise measured with the probe, on an
    input grown until the centre unit's region no longer touches the border.
    """
    rows = _summary_rows(model, input_size)
    if rows is not None:
        out = []
        for row in rows:
            rf = getattr(row, "rf", None)
            if rf is None or not row.type.endswith(("Conv2d", "Pool2d")):
                continue
            size = rf.get("size") if isinstance(rf, dict) else getattr(rf, "size", rf)
            size = size[0] if isinstance(size, (tuple, list)) else size
            out.append((row.path, row.type, int(size)))
        if out:
            return out
    modules = dict(model.named_modules())
    out = []
    for path in layer_order(model, input_size):
        m = modules[path]
        if isinstance(m, _SPATIAL):
            out.append((path, type(m).__name__, _unclipped_size(model, path, input_size)))
    return out


def _summary_rows(model: nn.Module, input_size: Sequence[int]) -> list | None:
    try:
        from ..analysis import summary

        return summary(model, input_size=tuple(input_size)).rows
    except ImportError:  # an install without the analysis package: measure instead
        return None


def _unclipped_size(model: nn.Module, layer: str, input_size: Sequence[int]) -> int:
    c, h, w = input_size
    for scale in (1, 2, 4):
        region = input_region(model, layer, (c, h * scale, w * scale))
        if not region.clipped:
            return region.size[0]
    return region.size[0]  # the region still reaches the border: it is at least this size


def receptive_field(
    model: nn.Module,
    layer: str,
    image: Any = None,
    *,
    unit: tuple[int, int] | None = None,
    channel: int | None = None,
    input_size: tuple[int, int, int] | None = None,
    mean=None,
    std=None,
    title: str | None = None,
) -> Figure:
    """Left: the region one unit of ``layer`` sees, drawn on ``image`` (or a blank canvas) with
    the trained model's gradient |d unit / d x| as a heat map. Right: receptive-field size by
    depth for every conv and pooling layer, with ``layer`` marked.

    ``channel`` picks the unit's channel for the gradient; default the most active one there.
    """
    size = input_size or getattr(model, "default_input_size", None)
    if size is None:
        raise ValueError("input_size is unknown: pass input_size=(C, H, W)")
    region = input_region(model, layer, size, unit)
    panels = 3 if image is not None else 2
    fig = Figure(figsize=(4.2 * (panels - 1) + 6.5, 4.6), layout="constrained")
    axes = fig.subplots(1, panels, width_ratios=[1.0] * (panels - 1) + [1.6])
    rh, rw = region.size
    clipped = " (clipped by the border)" if region.clipped else ""
    where = f"unit {region.unit} of its {region.output_size[0]}x{region.output_size[1]} map"
    if image is not None:
        shown = load_image(image, size)
        heat, channel = effective_field(
            model, layer, shown, region.unit, channel, mean=mean, std=std
        )
        show_image(axes[0], shown)
        axes[0].set_title(f"{where}\nsees {rh}x{rw} input pixels{clipped}", fontsize=9)
        axes[1].imshow(heat, cmap="inferno", interpolation="nearest")
        axes[1].set_xticks([])
        axes[1].set_yticks([])
        axes[1].set_title(
            f"|d unit / d input|, channel {channel}\n(how the trained unit weighs them)", fontsize=9
        )
    else:
        axes[0].imshow(np.full(size[1:], 0.92), cmap="gray", vmin=0, vmax=1)
        axes[0].set_xticks([])
        axes[0].set_yticks([])
        axes[0].set_title(
            f"{where}\nsees {rh}x{rw} of {size[1]}x{size[2]} input pixels{clipped}", fontsize=9
        )
    for ax in axes[:-1]:
        ax.add_patch(
            Rectangle(
                (region.left - 0.5, region.top - 0.5),
                rw,
                rh,
                fill=False,
                edgecolor="#00e5ff",
                linewidth=2,
            )
        )
    _plot_depth(axes[-1], rf_by_depth(model, size), layer, size)
    fig.suptitle(title or f"receptive field of {describe(model, layer)}", fontsize=11)
    return fig


def effective_field(
    model: nn.Module,
    layer: str,
    image: np.ndarray,
    unit: tuple[int, int],
    channel: int | None = None,
    *,
    mean=None,
    std=None,
) -> tuple[np.ndarray, int]:
    """|d out[channel, row, col] / d x| summed over input channels, shape (H, W), and the channel.

    The model runs in eval mode on a float32 copy of itself, so its own weights and state are
    left untouched.
    """
    net = copy.deepcopy(model).cpu().float().eval()
    x = to_input(image, mean, std).requires_grad_(True)
    out = _output(net, x, layer)
    r, c = unit
    if channel is None:
        channel = int(out[0, :, r, c].argmax())
    elif not 0 <= channel < out.shape[1]:
        raise ConvnetError(f"layer {layer!r} has channels 0..{out.shape[1] - 1}; got {channel}")
    (grad,) = torch.autograd.grad(out[0, channel, r, c], x)
    return grad[0].abs().sum(0).numpy(), channel


def _plot_depth(ax, rows: list[tuple[str, str, int]], layer: str, size: Sequence[int]) -> None:
    xs = np.arange(len(rows))
    sizes = [s for _, _, s in rows]
    colors = ["#1f77b4" if "Conv" in t else "#ff7f0e" for _, t, _ in rows]
    ax.bar(xs, sizes, color=colors, width=0.7)
    for x, s, (path, _, _) in zip(xs, sizes, rows):
        ax.annotate(
            str(s),
            (x, s),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 1),
            textcoords="offset points",
        )
        if path == layer:
            ax.bar([x], [s], color="none", edgecolor="#00a0b8", linewidth=2.2, width=0.7)
    ax.axhline(size[-1], color="0.4", linestyle="--", linewidth=1)
    ax.text(
        len(rows) - 0.5,
        size[-1],
        f" input width {size[-1]}",
        va="bottom",
        ha="right",
        fontsize=8,
        color="0.3",
    )
    ax.set_xticks(xs)
    labels = [f"{p}\n{t.replace('2d', '')}" for p, t, _ in rows]
    if len(rows) <= 8:
        ax.set_xticklabels(labels, fontsize=7)
    else:
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("receptive field (pixels)")
    ax.set_title("receptive-field size by depth (blue conv, orange pool)", fontsize=9)
    ax.set_ylim(0, max([*sizes, size[-1]]) * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
