"""Activation maps: the 2D output of each filter over the image, stacked along depth.

In the notes' words every filter slides over the input and leaves one 2D activation map; the
layer's output volume is these maps stacked along depth. This figure unstacks them for one
image, most active channel first, all on one colour scale so their strengths compare.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure

from ._images import capture, describe, get_layer, grid_shape, load_image, show_image, to_input


def activation_maps(
    model: nn.Module,
    image: Any,
    layer: str,
    *,
    input_size: tuple[int, int, int] | None = None,
    mean=None,
    std=None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Return the layer's maps for one image, shape (C, H', W'), and the image as shown.

    ``image`` is anything ``load_image`` reads (a path, ``"mnist:3"``, an array); it is resized
    to ``input_size`` (default ``model.default_input_size``) and normalized by ``mean``/``std``.
    """
    size = input_size or getattr(model, "default_input_size", None)
    if size is None:
        raise ValueError("input_size is unknown: pass input_size=(C, H, W)")
    get_layer(model, layer)
    shown = load_image(image, size)
    x = to_input(shown, mean, std).to(_device(model))
    was_training = model.training
    model.eval()
    try:
        maps = capture(model, x, layer)[0]
    finally:
        model.train(was_training)
    return maps, shown


def rank_channels(maps: torch.Tensor) -> list[int]:
    """Channels ordered by mean activation over the map, largest first (ties: lower index)."""
    score = maps.flatten(1).mean(1)
    return sorted(range(len(score)), key=lambda i: (-float(score[i]), i))


def activations(
    model: nn.Module,
    image: Any,
    layer: str,
    *,
    top: int | None = 16,
    input_size: tuple[int, int, int] | None = None,
    mean=None,
    std=None,
    title: str | None = None,
) -> Figure:
    """Draw the ``top`` most active 2D maps of ``layer`` for one image (all maps if ``None``).

    Left: the input as the model sees it. Right: one tile per channel, labelled with its index
    and mean activation, on one shared colour scale with a colour bar.
    """
    maps, shown = activation_maps(model, image, layer, input_size=input_size, mean=mean, std=std)
    order = rank_channels(maps)[: top or None]
    c, h, w = maps.shape
    rows, cols = grid_shape(len(order))
    tile = 1.15 if max(h, w) >= 8 else 0.9
    fig = Figure(figsize=(cols * tile + 3.2, max(rows * tile + 0.8, 2.8)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1.0, cols * tile / 2.2], wspace=0.02)
    ax_in = left.subplots()
    show_image(ax_in, shown)
    ax_in.set_title(f"input {shown.shape[1]}x{shown.shape[0]}", fontsize=9)
    axes = right.subplots(rows, cols, squeeze=False)
    sel = maps[order].numpy()
    vmin, vmax = float(sel.min()), float(sel.max())
    if vmax - vmin < 1e-12:
        vmax = vmin + 1.0
    im = None
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(order):
            ax.set_axis_off()
            continue
        ch = order[i]
        im = ax.imshow(sel[i], cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(f"ch {ch}  ({float(maps[ch].mean()):.2g})", fontsize=7, pad=2)
    right.colorbar(im, ax=axes, shrink=0.8, label="activation")
    shown_n = f"top {len(order)} of {c}" if len(order) < c else f"all {c}"
    fig.suptitle(
        title
        or f"{describe(model, layer)}: {shown_n} activation maps of {h}x{w}, most active first",
        fontsize=10,
    )
    return fig


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
