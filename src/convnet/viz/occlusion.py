"""Occlusion sensitivity (Zeiler and Fergus, 2014): slide a grey square over the image and
watch the class probability.

Where covering the image makes the probability of the class fall, the model depends on what
was there; a model that had only learned the background would not care. For a square of
``size`` pixels moved ``stride`` pixels at a time, position (i, j) covers rows
``i*stride : i*stride + size`` and columns ``j*stride : j*stride + size``; there are
``(H - size) // stride + 1`` positions down and ``(W - size) // stride + 1`` across. Every
position is one forward pass, run in batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..errors import ConvnetError
from ._images import load_image, show_image, to_input


@dataclass
class Occlusion:
    """``prob`` (R, S): p(target) with the square at each position; ``top`` (R, S): the most
    probable class there, ``top_prob`` its probability; ``base``: p(target) unoccluded;
    ``base_top``: the top class unoccluded. Positions are ``stride`` pixels apart."""

    prob: np.ndarray
    top: np.ndarray
    top_prob: np.ndarray
    target: int
    base: float
    base_top: int
    size: int
    stride: int
    image_hw: tuple[int, int]

    def square(self, i: int, j: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of the square at position (i, j), bottom/right exclusive."""
        return (
            i * self.stride,
            j * self.stride,
            i * self.stride + self.size,
            j * self.stride + self.size,
        )

    def extent(self) -> tuple[float, float, float, float]:
        """imshow extent (left, right, bottom, top) placing cell (i, j) on its square's centre."""
        r, s = self.prob.shape
        half, c0 = self.stride / 2, (self.size - 1) / 2
        return (
            c0 - half,
            c0 + (s - 1) * self.stride + half,
            c0 + (r - 1) * self.stride + half,
            c0 - half,
        )


def occlude(
    model: nn.Module,
    x: torch.Tensor,
    *,
    target: int | None = None,
    size: int = 8,
    stride: int = 2,
    fill: float | Sequence[float] = 0.0,
    batch_size: int = 64,
) -> Occlusion:
    """Class probabilities as a ``size`` x ``size`` square of value ``fill`` slides over ``x``.

    Args:
        x: (1, C, H, W) or (C, H, W): the model's input (normalized as in training).
        target: the class whose probability is mapped (default: the top class unoccluded).
        fill: the square's value in the model's input units, one per channel or one for all
            (0 is the data set's mean pixel when the input is normalized by it).
    """
    x = x if x.dim() == 4 else x[None]
    if x.shape[0] != 1:
        raise ConvnetError(f"occlusion takes one image, got a batch of {x.shape[0]}")
    _, c, h, w = x.shape
    if not 1 <= size <= min(h, w):
        raise ConvnetError(
            f"an occluding square of {size} px does not fit the {h}x{w} image; "
            f"choose a size from 1 to {min(h, w)}"
        )
    if stride < 1:
        raise ConvnetError(f"stride must be >= 1 pixel, got {stride}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = x.to(device)
    value = torch.as_tensor(fill, dtype=x.dtype, device=device).reshape(-1, 1, 1)
    if value.shape[0] not in (1, c):
        raise ConvnetError(f"fill has {value.shape[0]} values; give 1 or one per channel ({c})")
    rows, cols = (h - size) // stride + 1, (w - size) // stride + 1
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            base = _probs(model, x)[0]
            target = int(base.argmax()) if target is None else int(target)
            if not 0 <= target < base.shape[0]:
                raise ConvnetError(f"class {target} is out of range: the model has {base.shape[0]}")
            probs = []
            for lo in range(0, rows * cols, batch_size):
                batch = x.repeat(min(batch_size, rows * cols - lo), 1, 1, 1)
                for b in range(batch.shape[0]):
                    i, j = divmod(lo + b, cols)
                    batch[b, :, i * stride : i * stride + size, j * stride : j * stride + size] = (
                        value
                    )
                probs.append(_probs(model, batch))
    finally:
        model.train(was_training)
    p = torch.cat(probs).view(rows, cols, -1).cpu()
    top_prob, top = p.max(-1)
    return Occlusion(
        p[..., target].numpy(),
        top.numpy(),
        top_prob.numpy(),
        target,
        float(base[target]),
        int(base.argmax()),
        size,
        stride,
        (h, w),
    )


def _probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from .patches import run_model

    out = run_model(model, x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConvnetError(f"the model outputs {shape}, not (N, classes) scores to occlude")
    return torch.softmax(out.float(), dim=1)


def occlusion(
    model: nn.Module,
    image: Any,
    *,
    target: int | str | None = None,
    size: int = 8,
    stride: int = 2,
    classes: Sequence[str] | None = None,
    input_size: tuple[int, int, int] | None = None,
    mean=None,
    std=None,
    batch_size: int = 64,
) -> Figure:
    """Three panels: the image with the square where it hurt most, p(class) as a heat map over
    the image, and the most probable class at each position of the square.

    The square is grey: the data's mean pixel when ``mean``/``std`` are given, else 0.5.
    ``target``: a class index or name (default: the top class of the unoccluded image).
    """
    size_ = input_size or getattr(model, "default_input_size", None)
    if size_ is None:
        raise ConvnetError("input size unknown: pass input_size=(C, H, W)")
    shown = load_image(image, size_)
    x = to_input(shown, mean, std)
    fill = 0.0 if mean is not None and std is not None else 0.5
    occ = occlude(
        model, x, target=_class_index(target, classes), size=size, stride=stride, fill=fill,
        batch_size=batch_size,
    )  # fmt: skip
    name = _namer(classes)
    fig = Figure(figsize=(10.2, 3.7), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    show_image(a, shown)
    i, j = np.unravel_index(int(np.argmin(occ.prob)), occ.prob.shape)
    top, left, bottom, right = occ.square(int(i), int(j))
    a.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, color="#808080", alpha=0.9))
    a.set_title(f"image; square where p({name(occ.target)}) fell most", fontsize=9)
    show_image(b, shown * 0.5)
    top_p = max(float(occ.prob.max()), occ.base, 1e-3)  # the scale the probability moves on
    heat = b.imshow(
        occ.prob,
        cmap="magma",
        vmin=0,
        vmax=top_p,
        alpha=0.85,
        extent=occ.extent(),
        interpolation="nearest",
    )
    b.set_xlim(-0.5, shown.shape[1] - 0.5)
    b.set_ylim(shown.shape[0] - 0.5, -0.5)
    b.set_title(f"p({name(occ.target)}) with the square centred here", fontsize=9)
    fig.colorbar(heat, ax=b, shrink=0.85, label=f"p({name(occ.target)})")
    _top_class_panel(fig, c, occ, shown, name)
    fig.suptitle(
        f"Occlusion: {size}x{size} px grey square, stride {stride} px; unoccluded "
        f"p({name(occ.target)}) = {occ.base:.3f}, top class {name(occ.base_top)}",
        fontsize=10,
    )
    return fig


def _top_class_panel(fig: Figure, ax, occ: Occlusion, shown: np.ndarray, name) -> None:
    import matplotlib

    present = sorted(set(int(v) for v in occ.top.flat))
    cmap = matplotlib.colormaps["tab10" if len(present) <= 10 else "tab20"]
    index = np.vectorize(present.index)(occ.top)
    show_image(ax, shown * 0.5)
    ax.imshow(
        index, cmap=cmap, vmin=-0.5, vmax=cmap.N - 0.5, alpha=0.8, extent=occ.extent(),
        interpolation="nearest",
    )  # fmt: skip
    ax.set_xlim(-0.5, shown.shape[1] - 0.5)
    ax.set_ylim(shown.shape[0] - 0.5, -0.5)
    handles = [Rectangle((0, 0), 1, 1, color=cmap(k)) for k in range(len(present))]
    ax.legend(
        handles, [name(v) for v in present], fontsize=7, loc="upper left",
        bbox_to_anchor=(1.01, 1.0), borderaxespad=0, title="top class", title_fontsize=7,
    )  # fmt: skip
    ax.set_title("most probable class with the square here", fontsize=9)


def _class_index(target: int | str | None, classes: Sequence[str] | None) -> int | None:
    if target is None or isinstance(target, int):
        return target
    text = str(target)
    if classes is not None and text in classes:
        return list(classes).index(text)
    if text.lstrip("-").isdigit():
        return int(text)
    known = f"; classes: {', '.join(classes[:20])}" if classes else ""
    raise ConvnetError(f"unknown class {text!r}: give a class index or name{known}")


def _namer(classes: Sequence[str] | None):
    """``name(k)``: class k's name, or k itself when the classes are not known."""

    def name(k: int) -> str:
        return str(classes[k]) if classes is not None and 0 <= k < len(classes) else str(k)

    return name
