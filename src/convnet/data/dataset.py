"""The in-memory data set every source produces: uint8 images, int64 labels, class names, statistics.

Images stay uint8 (N, C, H, W) in memory: a quarter of float32's bytes, and exactly what the
files hold. They become floats only batch by batch, on the training device, in
:func:`convnet.data.augment.normalize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import DataError
from ..limits import MAX_ARRAY_BYTES, MAX_CHANNELS, MAX_CLASSES, human_bytes


@dataclass(repr=False)
class Dataset:
    """A data set held in memory: training and test splits, and a validation split when the
    source has one of its own (an image folder's ``val/`` beside ``train/`` and ``test/``, a
    ``.npz``'s ``x_val``); otherwise :func:`convnet.data.splits.with_validation` carves one from
    the training split.

    Attributes:
        name: where it came from ("mnist-sample", "cifar10", a path).
        x_train: uint8 tensor (N_train, C, H, W).
        y_train: int64 tensor (N_train,), values in [0, len(classes)).
        x_test: uint8 tensor (N_test, C, H, W).
        y_test: int64 tensor (N_test,).
        classes: class names; ``classes[k]`` names label k.
        mean, std: per-channel statistics of ``x_train`` in [0, 1] units (pixel / 255),
            population std over every pixel of the channel. Computed when not given.
        x_val, y_val: the validation split, uint8 (N_val, C, H, W) and int64 (N_val,), or None.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] | None = field(default=None)
    std: tuple[float, ...] | None = field(default=None)
    x_val: torch.Tensor | None = field(default=None)
    y_val: torch.Tensor | None = field(default=None)

    def __post_init__(self) -> None:
        if len(self.classes) > MAX_CLASSES:
            raise DataError(
                f"{self.name}: {len(self.classes):,} classes, more than the {MAX_CLASSES:,} "
                "a data set may have; the class list is corrupt"
            )
        if (self.x_val is None) != (self.y_val is None):
            raise DataError(f"{self.name}: give both x_val and y_val, or neither")
        for split in ("train", "val", "test") if self.x_val is not None else ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise DataError(
                    f"{self.name}: x_{split} must be a uint8 (N, C, H, W) tensor, "
                    f"got {x.dtype} {tuple(x.shape)}"
                )
            if x.shape[1] > MAX_CHANNELS:
                raise DataError(
                    f"{self.name}: x_{split} {tuple(x.shape)} has {x.shape[1]:,} channels, more "
                    f"than {MAX_CHANNELS}; images are (N, C, H, W): is the array (N, H, W, C)?"
                )
            if y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise DataError(
                    f"{self.name}: y_{split} has {tuple(y.shape)} labels for {x.shape[0]} images"
                )
            y = y.long()
            setattr(self, f"y_{split}", y)
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= len(self.classes)):
                raise DataError(
                    f"{self.name}: {split} labels span [{int(y.min())}, {int(y.max())}] "
                    f"but there are {len(self.classes)} classes"
                )
        for split in ("val", "test"):
            x = getattr(self, f"x_{split}")
            if x is not None and x.shape[0] and x.shape[1:] != self.x_train.shape[1:]:
                raise DataError(
                    f"{self.name}: train images are {tuple(self.x_train.shape[1:])} "
                    f"but {split} images are {tuple(x.shape[1:])}"
                )
        if self.mean is None or self.std is None:
            mean, std = channel_stats(self.x_train)
            self.mean = self.mean if self.mean is not None else mean
            self.std = self.std if self.std is not None else std
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)

    @property
    def input_size(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        n_val = 0 if self.x_val is None else self.x_val.shape[0]
        return int(self.x_train.shape[0] + n_val + self.x_test.shape[0])

    def __repr__(self) -> str:
        c, h, w = self.input_size
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape[0]}, "
            + ("" if self.x_val is None else f"val={self.x_val.shape[0]}, ")
            + f"test={self.x_test.shape[0]}, "
            f"input_size=({c}, {h}, {w}), classes={len(self.classes)}, "
            f"mean={_fmt(self.mean)}, std={_fmt(self.std)})"
        )


def check_labels(y: np.ndarray, where: str) -> int:
    """Check that ``y`` holds class indices: 1-d, integer, in [0, MAX_CLASSES). Returns max + 1.

    Runs before anything is sized by the labels (a class-name list, a bincount), so a label of
    10**12 in a small file is a one-line DataError rather than minutes of allocation.
    """
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be 1-d, got shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be whole numbers (class indices), got {y.dtype}")
    if y.size == 0:
        return 0
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= MAX_CLASSES:
        raise DataError(
            f"{where}: labels span [{lo}, {hi}] but must be class indices in "
            f"[0, {MAX_CLASSES:,}); the file is corrupt or holds something other than labels"
        )
    return hi + 1


def check_bytes(nbytes: int, where: str, what: str = "the data") -> None:
    """Refuse a declared size over ``MAX_ARRAY_BYTES`` before anything of that size is allocated."""
    if nbytes > MAX_ARRAY_BYTES:
        raise DataError(
            f"{where}: {what} would take {human_bytes(nbytes)}, more than the "
            f"{human_bytes(MAX_ARRAY_BYTES)} one data file may hold; the header is corrupt "
            "(a real data set this large belongs in an image folder)"
        )


def _fmt(values: tuple[float, ...] | None) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values or ()) + ")"


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population std of a uint8 (N, C, H, W) tensor, in [0, 1] units.

    Exact and memory-light: a 256-bin histogram per channel gives
    mean = sum_v v * n_v / n and var = sum_v v^2 * n_v / n - mean^2 (in float64),
    without ever making a float copy of the images.
    """
    if x.shape[0] == 0:
        raise DataError("cannot compute statistics of an empty training split")
    values = torch.arange(256, dtype=torch.float64)
    counts = torch.zeros(x.shape[1], 256, dtype=torch.int64)
    for start in range(0, x.shape[0], 4096):  # contiguous chunks; bincount takes uint8 as is
        chunk = x[start : start + 4096]
        for c in range(x.shape[1]):
            counts[c] += torch.bincount(chunk[:, c].reshape(-1), minlength=256)
    means, stds = [], []
    for c in range(x.shape[1]):
        counts_c = counts[c].double()
        n = counts_c.sum()
        mean = (values * counts_c).sum() / n
        var = ((values * values) * counts_c).sum() / n - mean * mean
        means.append(float(mean) / 255.0)
        stds.append(float(var.clamp_min(0).sqrt()) / 255.0)
    return tuple(means), tuple(stds)
