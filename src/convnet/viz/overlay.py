"""Feature maps laid over the images that caused them (the notes' bird and dog figure).

The notes pick the same few channels of pool5 for a pair of bird photos, upsample each 7x7
map to the photo and overlay it: one channel fires on the claws in one photo and on the
background in the other, another on the head and then the body. That is distributed
representation: concepts map to many neurons and each neuron to many concepts. Here one row
is one image and one column one channel; a channel's maps share one scale across the images,
so "fires here, silent there" shows as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.figure import Figure

from ..errors import ConvnetError
from ._images import capture, describe, get_layer, load_image, show_image, to_input


def overlay(
    model: nn.Module,
    images: Sequence[Any],
    layer: str,
    channels: Sequence[int] | None = None,
    *,
    input_size: tuple[int, int, int] | None = None,
    mean=None,
    std=None,
    alpha: float = 0.75,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Overlay ``channels`` of ``layer`` (default: the 4 most active over all images) on each image.

    Each (H', W') map is upsampled bilinearly to the image's (H, W) and drawn with opacity
    proportional to its value, on a per-channel scale [0, max over the images].
    """
    if not images:
        raise ConvnetError("overlay needs at least one image")
    size = input_size or getattr(model, "default_input_size", None)
    if size is None:
        raise ValueError("input_size is unknown: pass input_size=(C, H, W)")
    get_layer(model, layer)
    shown = [load_image(im, size) for im in images]
    x = torch.cat([to_input(s, mean, std) for s in shown])
    p = next(model.parameters(), None)
    was_training = model.training
    model.eval()
    try:
        maps = capture(model, x.to(p.device if p is not None else "cpu"), layer)  # (N, C, h, w)
    finally:
        model.train(was_training)
    n, c = maps.shape[:2]
    if channels is None:
        total = maps.clamp(min=0).flatten(2).mean(2).sum(0)
        channels = [int(i) for i in torch.argsort(total, descending=True)[: min(4, c)]]
    bad = [ch for ch in channels if not 0 <= int(ch) < c]
    if bad:
        raise ConvnetError(f"layer {layer!r} has channels 0..{c - 1}; got {bad}")
    channels = [int(ch) for ch in channels]
    up = upsample(maps[:, channels], size[1:])  # (N, K, H, W)
    fig = Figure(figsize=(1.9 * (len(channels) + 1) + 0.6, 1.9 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, len(channels) + 1, squeeze=False)
    cmap = _cmap()
    for j, ch in enumerate(channels):
        top = float(up[:, j].max())
        for i in range(n):
            ax = axes[i, j + 1]
            show_image(ax, shown[i] * 0.55)  # dimmed, so the heat stands out
            m = up[i, j].numpy()
            # Only the positive part is a response (it is what a ReLU passes on).
            level = np.clip(m / top, 0.0, 1.0) if top > 0 else np.zeros_like(m)
            ax.imshow(
                level,
                cmap=cmap,
                vmin=0.0,
                vmax=1.0,
                alpha=alpha * np.sqrt(level),
                interpolation="bilinear",
            )
            if i == 0:
                ax.set_title(f"channel {ch}", fontsize=9)
            ax.set_xlabel(f"max {float(maps[i, ch].max()):.2g}", fontsize=7, labelpad=1)
    for i in range(n):
        show_image(axes[i, 0], shown[i])
        axes[i, 0].set_ylabel(labels[i] if labels else f"image {i}", fontsize=9)
    axes[0, 0].set_title("image", fontsize=9)
    fig.suptitle(title or f"{describe(model, layer)}: the same channels across images", fontsize=10)
    return fig


def upsample(maps: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize of (N, K, h, w) maps to (N, K, H, W), ``align_corners=False``.

    Pixel centres line up with the map's cells, as when the map is stretched over the image.
    """
    return F.interpolate(
        maps.float(), size=tuple(int(s) for s in size), mode="bilinear", align_corners=False
    )


def _cmap():
    import matplotlib

    return matplotlib.colormaps["jet"]
