"""A dense prediction's score map drawn over the image it came from.

Each entry of the map is the class probability of one window; it is drawn at the window's
centre, entries ``stride`` pixels apart, and smoothed bilinearly between centres. The window of
the best-scoring position is outlined so the size of what the network saw stays visible.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..errors import ShapeError
from ..io import atomic_write_bytes

if TYPE_CHECKING:
    from ..surgery import DensePrediction


def _displayable(image: torch.Tensor) -> np.ndarray:
    """(H, W, C) or (H, W) in [0, 1]: min-max per channel undoes any per-channel normalization."""
    x = image.detach().float().cpu()
    lo = x.amin(dim=(1, 2), keepdim=True)
    hi = x.amax(dim=(1, 2), keepdim=True)
    x = (x - lo) / (hi - lo).clamp_min(1e-12)
    return x[0].numpy() if x.shape[0] == 1 else x[:3].permute(1, 2, 0).numpy()


def save_heatmap(
    result: DensePrediction,
    image: torch.Tensor,
    path: str | os.PathLike,
    class_index: int | None = None,
    *,
    scale_index: int = 0,
    labels: Sequence[str] | None = None,
    dpi: int = 100,
) -> int:
    """Write a PNG of the class probability map of ``result`` laid over ``image``; return the class.

    ``image`` (C, H, W): the image given to ``dense_predict`` (any normalization). ``class_index``:
    the class to show (default: the most probable one overall). ``scale_index``: which scale's
    map (its finest, merged one when there were shifts). The file is written atomically.
    """
    if image.dim() != 3:
        raise ShapeError(f"image must be one (C, H, W) tensor, got shape {tuple(image.shape)}")
    if not 0 <= scale_index < len(result.maps):
        raise ShapeError(
            f"scale_index {scale_index} is out of range: the result has {len(result.maps)} scales"
        )
    cls = int(result.probs.argmax()) if class_index is None else int(class_index)
    if not 0 <= cls < result.probs.numel():
        raise ShapeError(
            f"class_index {cls} is out of range: the model has {result.probs.numel()} classes"
        )
    smap = result.maps[scale_index]
    prob = smap.probabilities()[cls].numpy()  # (h, w)
    h, w = prob.shape
    sy, sx = (s / smap.scale for s in smap.finest_stride)  # in pixels of the given image
    _, hin, win = result.input_size
    wy, wx = hin / smap.scale, win / smap.scale  # the window, in pixels of the given image
    y0, x0 = wy / 2 - sy / 2, wx / 2 - sx / 2  # entry (0, 0) covers [x0, x0 + sx] around its centre

    fig = Figure(figsize=(6.4, 5.4), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    shown = _displayable(image)
    ax.imshow(
        shown,
        cmap="gray" if shown.ndim == 2 else None,
        extent=(0, image.shape[2], image.shape[1], 0),
    )
    art = ax.imshow(
        prob,
        cmap="turbo",
        alpha=0.5,
        vmin=float(prob.min()),
        vmax=max(float(prob.max()), float(prob.min()) + 1e-6),
        interpolation="bilinear",
        extent=(x0, x0 + w * sx, y0 + h * sy, y0),
    )
    i, j = np.unravel_index(int(prob.argmax()), prob.shape)
    ax.add_patch(Rectangle((j * sx, i * sy), wx, wy, fill=False, ec="white", lw=1.5, ls="--"))
    ax.set_xlim(0, image.shape[2])
    ax.set_ylim(image.shape[1], 0)
    name = f" ({labels[cls]})" if labels is not None and cls < len(labels) else ""
    ax.set_title(
        f"class {cls}{name}: mean p = {float(result.probs[cls]):.3f}\n"
        f"{h}x{w} windows of {hin}x{win} at stride {smap.finest_stride[0]:g}, scale {smap.scale:g}",
        fontsize=10,
    )
    ax.set_axis_off()
    fig.colorbar(art, ax=ax, fraction=0.046, pad=0.04, label=f"p(class {cls}) per window")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return cls
