"""Dense evaluation: one forward pass of the converted network over a large image.

The notes' recipe: enlarge the image, score many positions with the converted network, average.
A converted network of total stride S scores windows ``S`` pixels apart; for a finer stride
(the notes' "what if we want stride 16?") run it again on the image shifted by ``S / n`` pixels
(``n`` = ``shifts``) along each axis and interleave the ``n x n`` maps into one map of stride
``S / n``: entry ``p`` of the merged map comes from shift ``p mod n``, entry ``p // n`` there.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ShapeError
from ..models.outputs import as_logits
from .convert import Conversion, fc_to_conv, resolve_input_size

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class ScoreMap:
    """The class scores of every window at one scale.

    ``scores`` (K, h, w): the model's outputs (``output`` says whether scores, probabilities or
    log-probabilities) for the windows at
    ``(i * stride[0], j * stride[1])`` in the scaled image. ``merged`` (K, h2, w2) with
    ``shifts > 1``: the finer map at ``merged_stride = stride / shifts`` from all the shifted
    passes (``merged[:, ::shifts, ::shifts]`` is ``scores``); None otherwise.
    """

    scale: float
    image_size: tuple[int, int]  # (H, W) of the scaled image
    stride: tuple[int, int]  # pixels of the scaled image between neighbouring entries of scores
    scores: torch.Tensor
    merged: torch.Tensor | None = None
    merged_stride: tuple[float, float] | None = None
    output: str = "scores"  # what the entries are: "scores", "probs" or "log_probs"

    @property
    def finest(self) -> torch.Tensor:
        """The map at the finest stride available: ``merged`` if there is one, else ``scores``."""
        return self.merged if self.merged is not None else self.scores

    @property
    def finest_stride(self) -> tuple[float, float]:
        return (
            self.merged_stride if self.merged is not None else tuple(float(s) for s in self.stride)
        )

    def probabilities(self) -> torch.Tensor:
        """(K, h, w) class probabilities of ``finest`` at each window.

        A softmax of the scores, unless the network already ends in one (then its outputs are
        the probabilities, or their logarithms after a log-softmax).
        """
        return as_logits(self.finest[None], self.output)[0].softmax(0)


@dataclass(frozen=True)
class DensePrediction:
    """Result of ``dense_predict``.

    ``probs`` (K,): class probabilities averaged over every window of a scale, then over scales
    (each scale counts once, however many windows it has). ``maps``: one ``ScoreMap`` per scale.
    ``input_size`` (C, H, W): the window; ``stride``: the network's total stride.
    """

    probs: torch.Tensor
    maps: tuple[ScoreMap, ...]
    input_size: tuple[int, int, int]
    stride: tuple[int, int]
    shifts: int

    @property
    def merged(self) -> torch.Tensor | None:
        """The finer merged map of the first scale (None with ``shifts=1``)."""
        return self.maps[0].merged

    def topk(self, k: int = 5) -> list[tuple[int, float]]:
        """The ``k`` most probable classes as (index, probability), best first."""
        p, i = self.probs.topk(min(k, self.probs.numel()))
        return [(int(a), float(b)) for a, b in zip(i, p)]


def _param_key(model: nn.Module) -> tuple:
    # In-place updates (an optimizer step, load_state_dict) bump a tensor's version counter, so a
    # cached conversion is rebuilt after the weights change.
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def converted_for(model: nn.Module, input_size=None) -> fx.GraphModule:
    """``model`` itself if it is already converted, else its conversion, cached per model."""
    if isinstance(getattr(model, "conversion", None), Conversion):
        return model
    size = resolve_input_size(model, input_size)
    key = (size, _param_key(model))
    hit = _CACHE.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    # channels-last: oneDNN and cuDNN run convolutions faster in it (VGG-16's F=7 head on CPU
    # most of all); only our own copy changes layout, never a module the caller passed in.
    conv = fc_to_conv(model, size).eval().to(memory_format=torch.channels_last)
    _CACHE[model] = (key, conv)
    return conv


def _resize(image: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return image
    h, w = image.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(
        image[None], size=size, mode="bilinear", align_corners=False, antialias=scale < 1
    )[0]


def _merge(maps: dict[tuple[int, int], torch.Tensor], n: int) -> torch.Tensor:
    """Interleave the maps of shifts (ty, tx) in 0..n-1 into one map of n times the density.

    Merged row p holds row p // n of the shift-(p mod n) map; the merged map keeps the rows
    every shift covers: h2 = min over t of (h_t * n + t).
    """
    hs = [maps[(t, 0)].shape[1] for t in range(n)]
    ws = [maps[(0, t)].shape[2] for t in range(n)]
    h2 = min(h * n + t for t, h in enumerate(hs))
    w2 = min(w * n + t for t, w in enumerate(ws))
    first = maps[(0, 0)]
    out = first.new_empty((first.shape[0], h2, w2))
    for (ty, tx), m in maps.items():
        rows, cols = len(range(ty, h2, n)), len(range(tx, w2, n))
        if rows and cols:  # a shift past the last window along an axis adds nothing there
            out[:, ty::n, tx::n] = m[:, :rows, :cols]
    return out


def _passes(scales, shifts, stride) -> list[tuple[float, int, int]]:
    oy, ox = stride[0] // shifts, stride[1] // shifts
    return [(s, ty * oy, tx * ox) for s in scales for ty in range(shifts) for tx in range(shifts)]


@torch.inference_mode()
def dense_predict(
    model: nn.Module,
    image: torch.Tensor,
    scales: Sequence[float] = (1.0,),
    shifts: int = 1,
    input_size: int | Sequence[int] | None = None,
    progress: bool | None = None,
) -> DensePrediction:
    """Score every window of ``image`` in one pass per scale (and shift); average the results.

    ``model``: the original network (converted with ``fc_to_conv`` here, and cached) or an
    already converted one. ``image`` (C, H, W): a float tensor, normalized as the model expects.
    ``scales``: resize factors applied to the image first (bilinear); every scaled image must be
    at least the window (``input_size``, default the model's ``default_input_size``).
    ``shifts`` n: n x n passes per scale, on the image cropped by ``(ty * S/n, tx * S/n)``,
    merged into a map of stride ``S / n``; n must divide the stride S.

    A 384x384 image on a VGG-16 (window 224, S = 32) gives a 6x6 map: ``(384 - 224)/32 + 1``.
    """
    if image.dim() != 3:
        raise ShapeError(f"image must be one (C, H, W) tensor, got shape {tuple(image.shape)}")
    if shifts < 1:
        raise ShapeError(f"shifts must be >= 1, got {shifts}")
    net = converted_for(model, input_size)
    conv: Conversion = net.conversion
    c, hin, win = conv.input_size
    if image.shape[0] != c:
        raise ShapeError(f"image has {image.shape[0]} channels, the model takes {c}")
    sy, sx = conv.stride
    if sy % shifts or sx % shifts:
        raise ShapeError(
            f"shifts={shifts} must divide the network's stride {sy}x{sx} (try a divisor of {sy})"
        )
    p = next(net.parameters(), None)
    x_all = image.to(
        device=p.device if p is not None else "cpu", dtype=p.dtype if p is not None else image.dtype
    )
    weights4d = next((q for q in net.parameters() if q.dim() == 4), None)
    if weights4d is not None and weights4d.is_contiguous(memory_format=torch.channels_last):
        x_all = x_all[None].contiguous(memory_format=torch.channels_last)[0]  # the model's layout
    passes = _passes(scales, shifts, conv.stride)
    show = progress if progress is not None else (len(passes) > 4 and sys.stderr.isatty())
    was_training = net.training
    net.eval()
    try:
        raw = _run_passes(net, x_all, passes, (hin, win), show)
    finally:
        net.train(was_training)
    maps = []
    for s in scales:
        scaled = raw[(s, 0, 0)][1]
        scores = raw[(s, 0, 0)][0]
        merged = merged_stride = None
        if shifts > 1:
            oy, ox = sy // shifts, sx // shifts
            merged = _merge(
                {
                    (ty, tx): raw[(s, ty * oy, tx * ox)][0]
                    for ty in range(shifts)
                    for tx in range(shifts)
                },
                shifts,
            )
            merged_stride = (sy / shifts, sx / shifts)
        maps.append(
            ScoreMap(float(s), scaled, (sy, sx), scores, merged, merged_stride, conv.output)
        )
    probs = torch.stack([m.probabilities().flatten(1).mean(1) for m in maps]).mean(0)
    return DensePrediction(probs, tuple(maps), conv.input_size, conv.stride, shifts)


def _run_passes(net, image, passes, window, show) -> dict:
    """{(scale, dy, dx): (scores (K, h, w) on CPU, scaled image size)} for every pass."""
    hin, win = window
    out: dict = {}
    scaled: dict[float, torch.Tensor] = {}
    bar = None
    if show:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("dense passes", total=len(passes))
    try:
        for s, dy, dx in passes:
            if s not in scaled:
                scaled[s] = _resize(image, s)
                h, w = scaled[s].shape[-2:]
                if h < hin or w < win:
                    raise ShapeError(
                        f"at scale {s} the image is {h}x{w}, smaller than the network's {hin}x{win} "
                        "window; use a larger scale or a larger image"
                    )
            x = scaled[s][:, dy:, dx:]
            if x.shape[1] < hin or x.shape[2] < win:  # a shift beyond the last window: no entries
                first = out[(s, 0, 0)][0]
                scores = first.new_empty((first.shape[0], 0, 0))
            else:
                scores = net(x[None])[0].cpu()
            out[(s, dy, dx)] = (scores, tuple(scaled[s].shape[-2:]))
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return out
