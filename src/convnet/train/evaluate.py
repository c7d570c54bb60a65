"""Evaluation: top-1 / top-5, loss, per-class accuracy, confusion matrix; test-time augmentation and
ensembles (the notes' 7-net AlexNet ensemble: 18.2% -> 15.4% top-5 error).

Scores are class probabilities ``softmax(f(x))``. With test-time augmentation or an ensemble they
are averaged over views and models before taking the arg-max; the loss is ``-log`` of the averaged
probability of the true class (the cross-entropy when there is one view and one model).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConvnetError
from ..models.outputs import as_logits, output_kind

TTA = ("flip", "multicrop", "10crop")
SPLITS = ("test", "val", "train")


def main_logits(out: Any, kind: str = "scores") -> torch.Tensor:
    """The main classifier's logits from a model output: a tensor, a tuple/namedtuple (first
    element), or a dict (``logits`` / ``out`` key, else the first value). ``kind`` is
    :func:`~convnet.models.outputs.output_kind` of the model: a model that ends in a softmax
    gives ``log p`` here."""
    return as_logits(main_output(out), kind)


def main_output(out: Any) -> torch.Tensor:
    """The main classifier's output tensor, as the model returned it."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict):
        for key in ("logits", "out", "main"):
            if key in out:
                return out[key]
        return next(iter(out.values()))
    if isinstance(out, tuple | list):
        return out[0]
    raise ConvnetError(f"model returned a {type(out).__name__}; expected a tensor of logits")


def views(
    x: torch.Tensor,
    tta: str | None,
    fill: torch.Tensor | None = None,
    mirror: bool = True,
    size: tuple[int, int] | None = None,
) -> list[torch.Tensor]:
    """The test-time views of a normalized batch (B, C, H, W).

    10crop: AlexNet's ten views, the four corner crops and the centre crop of ``size`` (the
    model's input H x W, smaller than the batch's images: resized to 256 for 224 crops) and
    their mirrors (the five crops alone with ``mirror=False``).

    flip: the batch and its mirror image. multicrop: the four corner crops and the centre crop of the
    batch padded by ``max(1, H // 16)`` pixels (each H x W, so shifts of up to H/16), and their
    mirrors: 10 views (5 with ``mirror=False``, for models trained without flips, e.g. digits). ``fill`` (C,): the normalized value of a black pixel, ``-mean / std``, so the
    padding is black as in training's random crops (zero would be the mean grey).
    """
    if tta is None or tta == "none":
        return [x]
    if tta == "flip":
        return [x, x.flip(-1)]
    if tta == "10crop":
        return _ten_crop(x, size, mirror)
    if tta != "multicrop":
        raise ConvnetError(f"unknown test-time augmentation {tta!r}; use one of {', '.join(TTA)}")
    h, w = x.shape[-2:]
    p = max(1, h // 16)
    f = (
        torch.zeros(1, x.shape[1], 1, 1, device=x.device)
        if fill is None
        else fill.view(1, -1, 1, 1).to(x)
    )
    padded = F.pad(x - f, (p, p, p, p)) + f
    offsets = ((0, 0), (0, 2 * p), (2 * p, 0), (2 * p, 2 * p), (p, p))
    crops = [padded[..., t : t + h, s : s + w] for t, s in offsets]
    return crops + [c.flip(-1) for c in crops] if mirror else crops


def _ten_crop(x: torch.Tensor, size: tuple[int, int] | None, mirror: bool) -> list[torch.Tensor]:
    from ..data.augment import ten_crop

    h, w = x.shape[-2:]
    if size is None or tuple(size) == (h, w) or size[0] > h or size[1] > w:
        raise ConvnetError(
            f"--tta 10crop cuts the model's input out of larger images, but the images are "
            f"{h}x{w} and the input {'unknown' if size is None else 'x'.join(map(str, size))}; "
            "train with --resize (the alexnet recipe resizes to 256), or use --tta multicrop"
        )
    crops = ten_crop(x, size)
    return crops if mirror else crops[:5]


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    images: torch.Tensor,
    tta: str | None = None,
    autocast: Any = None,
    fill: torch.Tensor | None = None,
    mirror: bool = True,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Class probabilities (B, K) of a normalized batch, averaged over the test-time views
    (``size``: the model's input H x W, for ``10crop``)."""
    ctx = autocast if autocast is not None else nullcontext()
    total = None
    vs = views(images, tta, fill, mirror, size)
    kind = output_kind(model)
    for v in vs:
        with ctx:
            logits = main_logits(model(v), kind)
        p = logits.float().softmax(dim=1)
        total = p if total is None else total + p
    return total / len(vs)


@torch.no_grad()
def validate(
    model: nn.Module, loader: Any, classes: Sequence[str], autocast: Any = None
) -> dict[str, Any]:
    """:meth:`Tally.result` of ``model`` over every batch of ``loader`` (summed over processes
    when a process group is up); the model is left in training mode."""
    model.eval()
    tally = Tally(len(classes), loader.device)
    for _, xb, yb in loader.batches(0):
        tally.add(predict_probs(model, xb, None, autocast), yb)
    tally.all_reduce()
    model.train()
    return tally.result(classes)


class Tally:
    """Running sums of an evaluation: loss, top-k hits and the confusion matrix (true x predicted)."""

    def __init__(self, num_classes: int, device: torch.device | str = "cpu"):
        self.k = num_classes
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.top5 = torch.zeros((), dtype=torch.int64, device=device)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def add(self, probs: torch.Tensor, y: torch.Tensor) -> None:
        p_true = probs.gather(1, y[:, None]).squeeze(1).clamp_min(1e-12)
        self.loss += -p_true.double().log().sum()
        k5 = min(5, probs.shape[1])
        self.top5 += (probs.topk(k5, dim=1).indices == y[:, None]).any(1).sum()
        pred = probs.argmax(1)
        self.confusion += torch.bincount(y * self.k + pred, minlength=self.k * self.k).view(
            self.k, self.k
        )

    def all_reduce(self) -> None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for t in (self.loss, self.top5, self.confusion):
                dist.all_reduce(t)

    def result(self, classes: Sequence[str] | None = None) -> dict[str, Any]:
        conf = self.confusion.cpu()
        n = int(conf.sum())
        per_class_n = conf.sum(1)
        correct = conf.diag()
        classes = list(classes) if classes else [str(i) for i in range(self.k)]
        return {
            "n": n,
            "loss": float(self.loss) / max(1, n),
            "top1": 100.0 * int(correct.sum()) / max(1, n),
            "top5": 100.0 * int(self.top5) / max(1, n),
            "per_class": {
                c: (100.0 * int(correct[i]) / int(per_class_n[i]) if int(per_class_n[i]) else None)
                for i, c in enumerate(classes)
            },
            "classes": classes,
            "confusion": conf.tolist(),
        }


def evaluate(
    checkpoints: str | os.PathLike | Sequence[str | os.PathLike],
    data: Any = None,
    *,
    split: str = "test",
    tta: str | None = None,
    batch_size: int = 512,
    device: str = "auto",
    progress: bool = False,
    model: str | None = None,
) -> dict[str, Any]:
    """Evaluate one checkpoint, or an ensemble of several, on a split of a data set.

    ``data`` is a spec for ``convnet.data.load`` or a Dataset; ``None`` = the data the first
    checkpoint was trained on. ``split``: "test" (default), or "val" / "train" as the first
    checkpoint's run split them (its recorded validation split, rebuilt by
    :func:`convnet.data.splits.with_validation`). Returns ``n``, ``loss``, ``top1``, ``top5``
    (percent), ``per_class`` (class -> top-1 percent), ``classes``, ``confusion`` (rows: true
    class, columns: predicted), ``split``, ``models`` and ``tta``. ``model`` names the
    ``file.py:Name`` the checkpoints were trained from (a checkpoint never imports it by itself).
    """
    from .checkpoint import load_checkpoint
    from .distributed import pick_device

    paths = [checkpoints] if isinstance(checkpoints, str | os.PathLike) else list(checkpoints)
    if not paths:
        raise ConvnetError("evaluate: give at least one checkpoint")
    dev = pick_device(device)
    loaded = [load_checkpoint(p, map_location=dev, model=model) for p in paths]
    if data is None:
        data = (loaded[0][1].get("config") or {}).get("data")
        if not data:
            raise ConvnetError("the checkpoint does not name its data set; pass --data")
    if isinstance(data, str):
        from ..data import load

        data = load(data)
    x, y = _split_of(data, split, loaded[0][1], paths[0])
    if not len(y):
        raise ConvnetError(f"the {split} split of {data.name} holds no images; score another")
    num_classes = len(data.classes)
    for (_, info), p in zip(loaded, paths):
        if info.get("num_classes") not in (None, num_classes):
            raise ConvnetError(
                f"{p}: the model has {info['num_classes']} classes, the data {num_classes}"
            )
    total = None
    for model, info in loaded:
        mirror = bool((info.get("config") or {}).get("hflip", True))  # no mirrored views of digits
        if tta == "flip" and not mirror:
            warnings.warn(
                "--tta flip mirrors the images, but this model was trained without flips "
                "(a mirrored digit is another digit); --tta multicrop leaves mirrors out",
                stacklevel=2,
            )
        loader, size = _loader(x, y, batch_size, info, data, dev, tta)
        fill = -loader.mean * loader.inv_std
        probs = torch.cat(
            [
                predict_probs(model, xb, tta, fill=fill, mirror=mirror, size=size)
                for _, xb, _ in loader.batches(0)
            ]
        )
        total = probs if total is None else total + probs
    tally = Tally(num_classes, dev)
    tally.add(total / len(loaded), y.to(dev))
    result = tally.result(data.classes)
    result.update(split=split, models=[str(p) for p in paths], tta=tta or "none")
    return result


def _loader(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    info: dict[str, Any],
    data: Any,
    device: torch.device,
    tta: str | None,
) -> tuple[Any, tuple[int, int]]:
    """The evaluation loader of one checkpoint's model, and the model's input H x W.

    Images are resized as in training (the run's ``resize``) and centre-cropped to the input,
    except for ``10crop``, whose views are cut from the whole resized image.
    """
    from ..data.augment import resized_size
    from .loader import Loader

    c, *hw = info.get("input_size") or data.input_size
    resize = int((info.get("config") or {}).get("resize") or 0)
    shown = resized_size(*x.shape[-2:], resize) if resize else tuple(x.shape[-2:])
    if tta == "10crop":  # the whole (resized) image, padded where it is smaller than the input
        shown = (max(shown[0], hw[0]), max(shown[1], hw[1]))
    size = shown if tta == "10crop" else tuple(hw)
    loader = Loader(
        x,
        y,
        batch_size,
        (c, *size),
        info.get("mean") or data.mean,
        info.get("std") or data.std,
        train=False,
        device=device,
        resize=resize,
    )
    return loader, (int(hw[0]), int(hw[1]))


def _split_of(
    data: Any, split: str, info: dict[str, Any], path: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels) of ``split`` as the checkpoint's run made its three splits."""
    if split not in SPLITS:
        raise ConvnetError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if split == "test":
        return data.x_test, data.y_test
    from ..data.splits import with_validation

    record = info.get("split")
    if not isinstance(record, dict) or record.get("source") not in ("data", "train", "none"):
        raise ConvnetError(
            f"{path} records no validation split (trained before runs kept one); score --split test"
        )
    if split == "val" and record["source"] == "none":
        raise ConvnetError(f"{path}: its run validated nothing (--val-split 0); use --split test")
    try:
        fraction, seed = float(record.get("fraction", 0.0)), int(record.get("seed", 0))
    except (TypeError, ValueError):
        raise ConvnetError(f"{path}: its split record is damaged; use --split test") from None
    if record["source"] == "data" and data.x_val is None:
        raise ConvnetError(
            f"{path} validated on its data's own val split, which {data.name} lacks; "
            "give that data set with --data, or use --split test"
        )
    data, _ = with_validation(data, fraction, seed)
    return (data.x_val, data.y_val) if split == "val" else (data.x_train, data.y_train)
