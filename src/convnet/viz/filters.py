"""Learned filters as pictures (the notes' 96 first-layer 11x11x3 AlexNet filters).

A first-layer filter lives in pixel space, so it is drawn as a small image: RGB when it reads
three channels, gray when it reads one. Each tile is min-max scaled on its own,
``(w - min w) / (max w - min w)``, because filters differ in norm and one shared scale would
leave most of them flat. A deeper filter reads C feature maps that are not colours, so it is
drawn one input channel per tile, on one diverging scale shared by the layer with a colour
bar: there the sign and the relative size of the weights are what matter.
"""

from __future__ import annotations

import numpy as np
import torch.nn as nn
from matplotlib.figure import Figure

from ._images import get_layer, grid_shape, minmax


def filters(
    model: nn.Module,
    layer: str | None = None,
    *,
    max_filters: int | None = None,
    max_channels: int = 8,
    ncols: int | None = None,
    title: str | None = None,
) -> Figure:
    """Draw the filters of the conv layer at ``layer`` (default: the first conv layer).

    Weights have shape (K, C, kh, kw). With C in (1, 3) there is one tile per filter, K tiles
    (at most ``max_filters``, default all), gray or RGB. Otherwise the grid has one row per
    filter (``max_filters`` of them, default 8) and one column per input channel (the first
    ``max_channels``): K x C tiles of kh x kw.
    """
    path, conv = get_layer(model, layer, conv=True)
    w = conv.weight.detach().float().cpu().numpy()  # (K, C, kh, kw)
    k, c, kh, kw = w.shape
    label = f"{path} ({type(conv).__name__}): {k} filters of {kh}x{kw}x{c}"
    if c in (1, 3):
        return _pixel_filters(w[: max_filters or k], title or label, ncols)
    return _channel_filters(w[: max_filters or 8, :max_channels], title or label)


def _pixel_filters(w: np.ndarray, title: str, ncols: int | None) -> Figure:
    k, c, kh, kw = w.shape
    rows, cols = grid_shape(k, ncols)
    tile = 0.62 if k > 32 else 0.9  # inches per tile: 96 filters fit a page width
    fig = Figure(figsize=(cols * tile + 0.4, rows * tile + 0.7), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= k:
            continue
        img = minmax(w[i])  # each filter scaled on its own
        if c == 3:
            ax.imshow(np.moveaxis(img, 0, -1), interpolation="nearest")
        else:
            ax.imshow(img[0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(str(i), fontsize=6, pad=1.5, color="0.35")
    fig.suptitle(title, fontsize=10)
    return fig


def _channel_filters(w: np.ndarray, title: str) -> Figure:
    k, c, kh, kw = w.shape
    lim = float(np.abs(w).max()) or 1.0
    fig = Figure(figsize=(c * 0.75 + 1.4, k * 0.75 + 0.9), layout="constrained")
    axes = fig.subplots(k, c, squeeze=False)
    im = None
    for i in range(k):
        for j in range(c):
            ax = axes[i, j]
            im = ax.imshow(w[i, j], cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"in {j}", fontsize=7, pad=2)
            if j == 0:
                ax.set_ylabel(f"filter {i}", fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.6, label="weight")
    fig.suptitle(title + " (one input channel per tile)", fontsize=10)
    return fig
