"""The feature hierarchy on one page: for each conv layer, first to last, what its units
respond to, as deconvnet projections beside the image patches that drove them.

Seed 003 (3.1.3) shows it with Zeiler and Fergus's figure: first-layer units respond to edges
and colour blobs, second-layer ones to textures, deeper ones to parts and whole objects, while
each layer's receptive field grows. Here the same picture is drawn for the user's own model
and data: one pass over the images finds every conv layer's top ``top`` images per channel
(:func:`~convnet.viz.patches.top_units`); for the ``channels`` strongest channels of a layer,
each image's strongest unit is projected back to the pixels
(:func:`~convnet.viz.deconv.project`) and both the projection and the image are cropped to
that unit's receptive field. A row is a layer; its label gives the receptive field in pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch.nn as nn
from matplotlib.figure import Figure

from ..errors import ConvnetError
from ._images import conv_layer_paths
from .deconv import check_rule, project, signed_image
from .patches import FILL, Images, TopUnits, crop, draw_tile, mosaic, patch_crops, top_units


def hierarchy_layers(model: nn.Module, layers: Sequence[str] | None = None) -> list[str]:
    """``layers`` as given, else every conv layer in registration order."""
    chosen = list(layers) if layers else conv_layer_paths(model)
    if not chosen:
        raise ConvnetError(f"{type(model).__name__} has no conv layer to show a hierarchy of")
    return chosen


def projection_crops(
    model: nn.Module,
    images: Images,
    found: TopUnits,
    channel: int,
    *,
    rule: str = "deconvnet",
    mean=None,
    std=None,
) -> list[np.ndarray]:
    """Deconv projections of ``channel``'s top units, each cropped to the unit's field.

    One backward pass for all the channel's top images (each image's own unit is the seed).
    """
    keep = [r for r, i in enumerate(found.images[channel]) if i >= 0]
    if not keep:
        return []
    idx = [int(found.images[channel, r]) for r in keep]
    units = [tuple(int(v) for v in found.units[channel, r]) for r in keep]
    proj, _, _ = project(
        model, images.normalized(idx, mean, std), found.layer, channel, units=units, rule=rule
    )
    hw = tuple(images.pixels.shape[-2:])
    return [crop(signed_image(p), found.box(channel, r, hw), fill=FILL) for r, p in zip(keep, proj)]


def hierarchy(
    model: nn.Module,
    images: Images,
    *,
    layers: Sequence[str] | None = None,
    channels: int = 4,
    top: int = 9,
    rule: str = "deconvnet",
    batch_size: int = 64,
    mean=None,
    std=None,
    progress: bool = False,
    name: str | None = None,
    title: str | None = None,
) -> Figure:
    """The page: a row per layer, for its ``channels`` strongest channels the ``top``
    projections (left) and patches (right), each a grid strongest first.

    ``mean``/``std`` normalize the pixels as the model was trained (default: the data's);
    ``name`` names the model in the title (default: its class name).
    """
    check_rule(rule)
    if channels < 1 or top < 1:
        raise ConvnetError(f"channels and top must be >= 1, got {channels} and {top}")
    paths = hierarchy_layers(model, layers)
    found = top_units(
        model, images, paths, top=top, batch_size=batch_size, mean=mean, std=std,
        progress=progress,
    )  # fmt: skip
    per_row = min(channels, max(f.values.shape[0] for f in found.values()))
    fig = Figure(figsize=(2.3 + 2.4 * per_row, 1.3 * len(paths) + 0.8), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.04, hspace=0.02)
    ratios = [1.6] + [1.0, 1.0, 0.15] * per_row  # a narrow spacer after each pair
    grid = fig.add_gridspec(len(paths), 1 + 3 * per_row, width_ratios=ratios)
    h, w = images.pixels.shape[-2:]
    for row, path in enumerate(paths):
        f = found[path]
        label = fig.add_subplot(grid[row, 0])
        label.set_axis_off()
        text = f"layer {row + 1}\n" + _row_label(model, path, f, (h, w))
        label.text(0, 0.5, text, fontsize=9, va="center")
        for k, ch in enumerate(f.ranked_channels()[:per_row]):
            left = fig.add_subplot(grid[row, 1 + 3 * k])
            right = fig.add_subplot(grid[row, 2 + 3 * k])
            draw_tile(
                left, mosaic(projection_crops(model, images, f, ch, rule=rule, mean=mean, std=std))
            )
            draw_tile(right, mosaic(patch_crops(f, images, ch)))
            left.set_title(f"ch {ch}: {rule}", fontsize=8, pad=2)
            right.set_title(f"ch {ch}: patches", fontsize=8, pad=2)
    fig.suptitle(
        title
        or f"Feature hierarchy of {name or type(model).__name__}: per channel, its top {top} of "
        f"{len(images)} {images.what} images, strongest first\nleft: the {rule} projection of "
        "each image's strongest unit (grey = 0); right: the image; both cropped to that unit's "
        "receptive field",
        fontsize=10,
    )
    return fig


def _row_label(model: nn.Module, path: str, f: TopUnits, hw: tuple[int, int]) -> str:
    kind = type(model.get_submodule(path)).__name__
    k = f.values.shape[0]
    if f.field is None:
        rf = "RF: whole input"
    else:
        sh, sw = (int(round(s)) for s in f.field.size)
        rf = f"RF {sh}x{sw} px" if sh == sw else f"RF {sh}x{sw} px (HxW)"
    mh, mw = f.map_size
    return f"{path} ({kind})\n{k} channels, map {mh}x{mw}\n{rf}\nof the {hw[0]}x{hw[1]} input"
