"""Classify one image file with a trained checkpoint: top-k classes with probabilities, from one
centre view or densely over every window (FC layers run as convolutions, ``convnet.surgery``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConvnetError
from .models.outputs import output_kind


def read_image(path: str | os.PathLike, channels: int) -> torch.Tensor:
    """uint8 (C, H, W) from any file PIL reads: grey ("L") for 1 channel, else RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")
            arr = np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise ConvnetError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ConvnetError(f"{path}: not an image PIL can read ({e})") from None
    t = torch.from_numpy(arr.copy())
    t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
    if channels not in (1, 3):
        t = t[:1].expand(channels, -1, -1).contiguous()
    return t


def resize_shorter(img: torch.Tensor, side: int) -> torch.Tensor:
    """Bilinear resize of uint8 (C, H, W) so the shorter side is ``side`` pixels."""
    import torch.nn.functional as F

    h, w = img.shape[-2:]
    if min(h, w) == side:
        return img
    s = side / min(h, w)
    size = (max(side, round(h * s)), max(side, round(w * s)))
    out = F.interpolate(
        img[None].float(), size=size, mode="bilinear", align_corners=False, antialias=s < 1
    )
    return out[0].round().clamp(0, 255).to(torch.uint8)


def prepare(img: torch.Tensor, info: dict[str, Any], dense: bool = False) -> torch.Tensor:
    """uint8 image -> the normalized float (C, H, W) the model saw in training.

    Like the training data: the shorter side resized to the data's image size, centre-cropped to it,
    then padded/cropped to the model's input (28x28 MNIST digits were padded to LeNet's 32x32).
    With ``dense`` the whole image is kept (only enlarged when smaller than one window).
    """
    from .train.loader import fit_size

    c, h, w = info["input_size"]
    dh, dw = info.get("data_size") or (h, w)
    if dense:
        img = resize_shorter(img, max(h, w)) if min(img.shape[-2:]) < max(h, w) else img
    else:
        img = fit_size(resize_shorter(img, min(dh, dw))[None], (dh, dw))
        img = fit_size(img, (h, w))[0]
    mean = torch.tensor(info["mean"]).view(c, 1, 1)
    std = torch.tensor(info["std"]).view(c, 1, 1)
    return (img.float() / 255.0 - mean) / std


def predict(
    checkpoint: str | os.PathLike,
    image: str | os.PathLike,
    *,
    top: int = 5,
    dense: bool = False,
    scales: Sequence[float] = (1.0,),
    shifts: int = 1,
    heatmap: str | os.PathLike | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """Top-``top`` ``(class name, probability)`` pairs for ``image``; with ``dense`` the
    probabilities are averaged over every window at every scale (FC layers run as convolutions).
    ``model`` names the ``file.py:Name`` the checkpoint was trained from (a checkpoint never
    imports it by itself)."""
    from .resolve import resolve_model
    from .train.evaluate import main_logits

    r = resolve_model(Path(checkpoint), model=model)  # a Path: always a checkpoint or run folder
    net, info = r.model, r.checkpoint
    classes = info.get("classes") or [str(i) for i in range(info["num_classes"])]
    raw = read_image(image, info["input_size"][0])
    x = prepare(raw, info, dense=dense)
    out: dict[str, Any] = {}
    if dense:
        from .surgery import dense_predict

        res = dense_predict(
            net, x, scales=tuple(scales), shifts=shifts, input_size=tuple(info["input_size"])
        )
        probs = res.probs
        if heatmap is not None:
            from .viz import save_heatmap

            save_heatmap(res, x, heatmap, labels=classes)
            out["heatmap"] = str(heatmap)
    else:
        with torch.no_grad():
            probs = main_logits(net(x[None]), output_kind(net)).float().softmax(1)[0]
    p, i = probs.topk(min(top, probs.numel()))
    out["top"] = [(classes[int(k)], float(v)) for k, v in zip(i, p)]
    out["probs"] = probs
    return out
