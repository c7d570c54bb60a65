"""The image patches that excite a channel most: one pass over a data set, cropped to the
receptive field of the unit that fired.

For every channel of a layer and every image, the channel's strongest unit (the largest value
of its (h, w) map, first in row-major order on ties) scores the image. The ``top`` images per
channel, by that score (ties: the lower image index), are kept while the data streams through
in batches. Each one is shown as the input region its unit sees, from the summary's receptive
field: unit (i, j) is centred on input pixel (start + i * jump, start + j * jump) and sees
``size`` pixels around it (:func:`unit_box`). Regions reaching past the border are filled with
mid grey there, so every crop of a layer has the same size.

Seed 003 (3.1.3, figure 3.4) and ZFNet in seed 004 read a network's hierarchy from these
pictures: small edge-like patches in the first layer, larger textured ones deeper.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure

from ..errors import ConvnetError, DataError
from ._images import describe, get_layer, grid_shape

FILL = 0.5  # what a crop shows beyond the image's border: mid grey


# --- receptive fields ----------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A layer's receptive field per axis (rows, cols), in input pixels (from the summary)."""

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]  # centre of unit (0, 0)


def layer_field(model: nn.Module, layer: str, input_size: Sequence[int]) -> Field | None:
    """The receptive field of ``layer``'s units for inputs of ``input_size`` (C, H, W).

    From :func:`convnet.analysis.summary` (a trace on the meta device). ``None`` where the units
    see the whole input (after global pooling or a fully connected layer).
    """
    from ..analysis import summary

    rows = summary(model, tuple(int(s) for s in input_size)).rows
    row = next((r for r in rows if r.path == layer), None)
    if row is None or row.rf is None:
        return None

    def two(v) -> tuple[float, float]:
        return (float(v[0]), float(v[1])) if isinstance(v, list | tuple) else (float(v), float(v))

    return Field(two(row.rf["size"]), two(row.rf["jump"]), two(row.rf["start"]))


def unit_box(
    field: Field | None, unit: tuple[int, int], input_hw: Sequence[int]
) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom/right exclusive: the input pixels unit (i, j) sees.

    top = start + i * jump - (size - 1) / 2, bottom = top + size (likewise for columns). The box
    may reach past the image; ``field=None`` gives the whole image.
    """
    if field is None:
        return 0, 0, int(input_hw[0]), int(input_hw[1])
    out = []
    for axis in (0, 1):
        first = field.start[axis] + unit[axis] * field.jump[axis] - (field.size[axis] - 1) / 2
        out.append(round(first))
    size = (round(field.size[0]), round(field.size[1]))
    return out[0], out[1], out[0] + size[0], out[1] + size[1]


def crop(image: np.ndarray, box: tuple[int, int, int, int], fill: float = FILL) -> np.ndarray:
    """The (bottom - top, right - left, C) window ``box`` of an (H, W, C) image, ``fill`` outside."""
    top, left, bottom, right = box
    h, w, c = image.shape
    out = np.full((bottom - top, right - left, c), fill, dtype=np.float32)
    t, lf, b, r = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if b > t and r > lf:
        out[t - top : b - top, lf - left : r - left] = image[t:b, lf:r]
    return out


# --- images ----------------------------------------------------------------------------------


@dataclass
class Images:
    """A data set's images at the model's input size.

    ``pixels``: float (N, C, H, W) in [0, 1], padded or cropped as the training loader does;
    ``labels``: int64 (N,); ``classes``: names; ``mean``/``std``: per channel, [0, 1] units.
    """

    pixels: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    split: str = ""  # "test" or "train" when loaded from a data set

    @property
    def what(self) -> str:
        """``"mnist-sample test"``: the data set and split, for titles."""
        name = self.name.rstrip("/").rsplit("/", 1)[-1]  # a folder's name, not its whole path
        return f"{name} {self.split}".strip()

    def __len__(self) -> int:
        return int(self.pixels.shape[0])

    def shown(self, i: int) -> np.ndarray:
        """Image ``i`` as (H, W, C) in [0, 1], for drawing."""
        return self.pixels[i].permute(1, 2, 0).numpy()

    def normalized(self, idx, mean=None, std=None) -> torch.Tensor:
        """Images ``idx`` as the model's input: ``(x - mean) / std`` per channel (if given)."""
        x = self.pixels[idx]
        mean, std = mean or self.mean, std or self.std
        if mean is None or std is None:
            return x
        c = x.shape[1]
        return (x - torch.tensor(mean).view(1, c, 1, 1)) / torch.tensor(std).view(1, c, 1, 1)


def load_images(
    data: Any, input_size: Sequence[int], *, split: str = "test", limit: int | None = None
) -> Images:
    """``limit`` images of ``split`` (``test`` or ``train``) of the data set ``data`` (a name
    or path :func:`convnet.data.load` reads, or a loaded ``Dataset``), fitted to ``input_size``
    (C, H, W): smaller images zero-padded (centred), larger centre-cropped.

    With ``limit`` below the split's size the images are a seeded random choice (seed 0, kept
    in data order), not the first ones: data sets are often sorted by class.
    """
    from ..data import Dataset, load
    from ..train.loader import fit_size

    if split not in ("test", "train"):
        raise ConvnetError(f"split {split!r}: choose test or train")
    ds = data if isinstance(data, Dataset) else load(str(data), progress=False)
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    if limit is not None and limit < len(x):
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:limit]
        pick = pick.sort().values
        x, y = x[pick], y[pick]
    c, h, w = (int(s) for s in input_size)
    if len(x) == 0:
        raise DataError(f"{ds.name}: the {split} split has no images")
    if x.shape[1] != c:
        raise DataError(
            f"{ds.name} has {x.shape[1]}-channel images but the model takes {c} channels; "
            "use data of the kind the model was trained on"
        )
    pixels = fit_size(x, (h, w)).float() / 255.0
    return Images(pixels, y, list(ds.classes), str(ds.name), ds.mean, ds.std, split)


# --- the scan --------------------------------------------------------------------------------


@dataclass
class TopUnits:
    """The strongest units of every channel of one layer over a data set.

    ``values`` (K, T): the top T activations per channel, largest first; ``images`` (K, T):
    which image; ``units`` (K, T, 2): (row, col) of the unit in the (h, w) map. Channels with
    fewer than T images keep ``-1`` in ``images``.
    """

    layer: str
    values: np.ndarray
    images: np.ndarray
    units: np.ndarray
    map_size: tuple[int, int]
    field: Field | None

    def box(self, channel: int, rank: int, input_hw: Sequence[int]) -> tuple[int, int, int, int]:
        r, c = (int(v) for v in self.units[channel, rank])
        return unit_box(self.field, (r, c), input_hw)

    def ranked_channels(self) -> list[int]:
        """Channels by their strongest activation over the data, largest first."""
        return [int(i) for i in np.argsort(-self.values[:, 0], kind="stable")]


class Stop(Exception):
    """Raised by a hook once every wanted layer has run: the rest of the forward is not needed."""


def run_model(model: nn.Module, x: torch.Tensor) -> Any:
    """``model(x)``, with torch's shape errors turned into one line naming the input size.

    An input the model was not built for (an image too small for its layers, the wrong
    number of channels) fails deep inside torch; the user needs to hear which size to give.
    :class:`Stop` from a hook passes through.
    """
    try:
        return model(x)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        size = "x".join(str(s) for s in x.shape[1:])
        expected = getattr(model, "default_input_size", None)
        hint = f" (it was built for {'x'.join(map(str, expected))})" if expected else ""
        raise ConvnetError(
            f"{type(model).__name__} cannot run on a {size} (C x H x W) input{hint}: {first}; "
            "give an image size the model takes (--input C x H x W)"
        ) from None


def capture_many(
    model: nn.Module, x: torch.Tensor, layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """The (N, K, h, w) outputs of ``layers`` for ``x``, in one forward that stops after the last.

    A layer with no spatial output raises :class:`ConvnetError` naming it.
    """
    box: dict[str, torch.Tensor] = {}
    handles = []
    for path in layers:
        _, module = get_layer(model, path)

        def hook(_m, _i, out, path=path):
            if path not in box:
                box[path] = out.detach().float().clone() if isinstance(out, torch.Tensor) else out
            if len(box) == len(layers):
                raise Stop

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            run_model(model, x)
    except Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    for path in layers:
        out = box.get(path)
        if out is None:
            raise ConvnetError(f"layer {path!r} did not run in the forward pass")
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConvnetError(
                f"layer {path!r} outputs {shape}, not (N, C, H, W) maps, so its units have no "
                "place in the image; pick a convolution, ReLU or pooling layer"
            )
    return {p: box[p].cpu() for p in layers}


def top_units(
    model: nn.Module,
    images: Images,
    layers: Sequence[str],
    *,
    top: int = 9,
    batch_size: int = 64,
    mean=None,
    std=None,
    progress: bool = False,
) -> dict[str, TopUnits]:
    """One batched pass over ``images``: the ``top`` strongest units of every channel of each layer.

    An image counts once per channel, by its strongest unit; ties keep the lower image index.
    ``mean``/``std`` normalize the pixels as the model was trained (default: the data's).
    """
    if top < 1 or batch_size < 1:
        raise ConvnetError(f"top and batch_size must be >= 1, got {top} and {batch_size}")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    best: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    shapes: dict[str, tuple[int, int]] = {}
    try:
        with progress_bar(progress, len(images), "scanning images") as advance:
            for lo in range(0, len(images), batch_size):
                idx = torch.arange(lo, min(lo + batch_size, len(images)))
                outs = capture_many(model, images.normalized(idx, mean, std).to(device), layers)
                for path, out in outs.items():
                    shapes[path] = tuple(out.shape[-2:])
                    best[path] = _merge(best.get(path), out, idx, top)
                advance(len(idx))
    finally:
        model.train(was_training)
    size = tuple(images.pixels.shape[1:])
    result = {}
    for path in layers:
        values, which, flat = best[path]
        w = shapes[path][1]
        units = torch.stack([flat // w, flat % w], -1)
        result[path] = TopUnits(
            path,
            values.numpy(),
            which.numpy(),
            units.numpy(),
            shapes[path],
            layer_field(model, path, size),
        )
    return result


def _merge(prev, out: torch.Tensor, idx: torch.Tensor, top: int):
    """Fold a batch's per-image maxima into the running top (values, image, flat unit) per channel."""
    values, flat = out.flatten(2).max(2)  # (B, K): torch.max returns the first maximal index
    k = values.shape[1]
    values, flat = values.T, flat.T  # (K, B)
    which = idx.view(1, -1).expand(k, -1)
    if prev is not None:  # earlier images first, so a stable sort keeps them ahead on ties
        values = torch.cat([prev[0], values], 1)
        which = torch.cat([prev[1], which], 1)
        flat = torch.cat([prev[2], flat], 1)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :top]
    return values.gather(1, order), which.gather(1, order), flat.gather(1, order)


@contextmanager
def progress_bar(show: bool, total: int, what: str) -> Iterator[Callable[[int], None]]:
    """``with progress_bar(show, total, "what") as advance: advance(n)``: rich, on stderr.

    Nothing is drawn when ``show`` is false (tests, the report, a piped stderr is rich's call).
    """
    if not show:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


# --- the figure ------------------------------------------------------------------------------


def patch_crops(found: TopUnits, images: Images, channel: int) -> list[np.ndarray]:
    """The crops of ``channel``'s top images, each the receptive field of its strongest unit."""
    hw = tuple(images.pixels.shape[-2:])
    return [
        crop(images.shown(int(i)), found.box(channel, r, hw))
        for r, i in enumerate(found.images[channel])
        if i >= 0
    ]


GAP = (0.55, 0.7, 0.95)  # the lines between tiles: a light blue no gray or RGB image confuses


def mosaic(tiles: Sequence[np.ndarray], cols: int | None = None, gap: int = 1) -> np.ndarray:
    """Equal-size (h, w, C) tiles in a near-square RGB grid, ``gap`` light-blue pixels apart.

    Tiles smaller than 48 px are enlarged by a whole factor (each pixel a block), so a one-pixel
    gap stays thin beside a 5x5 first-layer patch.
    """
    if not tiles:
        raise ConvnetError("nothing to draw: no tiles")
    scale = max(1, 48 // max(tiles[0].shape[:2]))
    tiles = [t.repeat(scale, 0).repeat(scale, 1) for t in tiles]
    h, w, _ = tiles[0].shape
    rows, cols = grid_shape(len(tiles), cols)
    out = np.empty((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), dtype=np.float32)
    out[:] = GAP
    for k, t in enumerate(tiles):
        r, q = divmod(k, cols)
        rgb = np.repeat(t, 3, axis=-1) if t.shape[-1] == 1 else t
        out[r * (h + gap) : r * (h + gap) + h, q * (w + gap) : q * (w + gap) + w] = rgb
    return out


def draw_tile(ax, image: np.ndarray) -> None:
    """An (H, W, C) image in [0, 1], pixels as blocks (gray for one channel), no ticks."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def patches(
    model: nn.Module,
    images: Images,
    layer: str,
    *,
    channels: Sequence[int] | None = None,
    top: int = 9,
    max_channels: int = 16,
    batch_size: int = 64,
    mean=None,
    std=None,
    progress: bool = False,
    found: TopUnits | None = None,
) -> Figure:
    """For each of ``channels`` (default: the ``max_channels`` strongest), its ``top`` patches.

    One tile grid per channel, strongest patch first (left to right, top to bottom); each
    patch is the receptive field of the unit that fired, so all patches of a layer have its
    RF size. ``found`` reuses an earlier :func:`top_units` scan.
    """
    get_layer(model, layer)
    if found is None:
        found = top_units(
            model, images, [layer], top=top, batch_size=batch_size, mean=mean, std=std,
            progress=progress,
        )[layer]  # fmt: skip
    k = found.values.shape[0]
    picks = list(channels) if channels else found.ranked_channels()[:max_channels]
    bad = [c for c in picks if not 0 <= c < k]
    if bad:
        raise ConvnetError(f"layer {layer!r} has channels 0..{k - 1}; got {bad}")
    rows, cols = grid_shape(len(picks))
    fig = Figure(figsize=(cols * 1.7 + 0.3, rows * 1.9 + 0.7), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(picks) :]:
        ax.set_axis_off()
    for ax, ch in zip(axes.flat, picks):
        draw_tile(ax, mosaic(patch_crops(found, images, ch)))
        ax.set_title(f"ch {ch}: max {found.values[ch, 0]:.3g}", fontsize=8, pad=2)
    fig.suptitle(
        f"{describe(model, layer)}: top {found.values.shape[1]} of {len(images)} {images.what} "
        f"images per channel, {_rf_text(found.field, images)}",
        fontsize=10,
    )
    return fig


def _rf_text(field: Field | None, images: Images) -> str:
    h, w = images.pixels.shape[-2:]
    if field is None:
        return f"each unit sees the whole {h}x{w} input"
    sh, sw = (math.floor(s + 0.5) for s in field.size)
    return f"crops = receptive field {sh}x{sw} px of the {h}x{w} input"
