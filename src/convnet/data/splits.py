"""Three splits: train, validation and test.

The notes' practice: every choice (the best epoch, when to drop the learning rate, when to
stop) is made on a validation split, and the test split is looked at once, at the end. A data
source that ships a validation split keeps it (an image folder's ``val/`` beside ``train/`` and
``test/``, a ``.npz``'s ``x_val``/``y_val``); otherwise :func:`with_validation` carves one out
of the training split:

- stratified: class ``c`` with ``n_c`` training images gives ``floor(n_c * f)`` or
  ``ceil(n_c * f)`` of them, so the total is ``round(N * f)`` (largest remainders get the extra
  image) and every class keeps at least one training image;
- seeded: which images go is a permutation per class from ``torch.Generator().manual_seed(seed)``,
  the same on every machine. The seed is ``SPLIT_SEED`` by default, not the run's seed, so runs
  that differ only in their seed are compared on the same validation images;
- the normalization statistics (mean, std) are recomputed on what is left for training, so no
  validation pixel leaks into them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import DataError
from .dataset import Dataset, channel_stats

SPLIT_SEED = 0  # the validation split is a property of the data and its fraction, not of a run


def stratified_split(
    y: torch.Tensor, fraction: float, seed: int = SPLIT_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices) of labels ``y`` (N,), each sorted ascending.

    Class ``c`` (``n_c`` images) gives ``k_c`` validation images: ``floor(n_c * f)``, plus one
    for the classes with the largest remainders ``n_c * f - floor(n_c * f)`` (ties: the lower
    class) until ``sum k_c = round(N * f)``; never all of a class (``k_c <= n_c - 1``). The
    ``k_c`` are the first of a seeded permutation of the class's indices.
    """
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"validation fraction must be in [0, 1), got {fraction}")
    y = y.long().cpu()
    n = int(y.numel())
    labels = sorted(int(c) for c in torch.unique(y)) if n else []
    members = {c: torch.nonzero(y == c).flatten() for c in labels}
    quota = {c: members[c].numel() * fraction for c in labels}
    take = {c: math.floor(quota[c]) for c in labels}
    spare = math.floor(n * fraction + 0.5) - sum(take.values())
    for c in sorted(labels, key=lambda c: (-(quota[c] - take[c]), c)):
        if spare <= 0:
            break
        if take[c] + 1 < members[c].numel():
            take[c] += 1
            spare -= 1
    g = torch.Generator().manual_seed(seed)
    val = []
    for c in labels:
        order = torch.randperm(members[c].numel(), generator=g)
        val.append(members[c][order[: take[c]]])
    val_idx = torch.sort(torch.cat(val)).values if val else torch.zeros(0, dtype=torch.long)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False
    return torch.nonzero(keep).flatten(), val_idx


@dataclass(frozen=True)
class SplitInfo:
    """Where a run's three splits came from and how large they are; part of the run's spec.

    ``source``: "data" (the source's own validation split), "train" (carved from the training
    split with ``fraction`` and ``seed``) or "none" (``fraction`` 0: nothing is validated).
    """

    source: str
    fraction: float
    seed: int
    train: int
    val: int
    test: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """'3,600 train / 400 validation (10% of the training split, stratified) / 1,000 test'."""
        if self.source == "data":
            val = f"{self.val:,} validation (the data's own)"
        elif self.source == "train":
            val = f"{self.val:,} validation ({100 * self.fraction:g}% of the training split, stratified)"
        else:
            val = "no validation"
        return f"{self.train:,} train / {val} / {self.test:,} test"


def with_validation(
    data: Dataset, fraction: float, seed: int = SPLIT_SEED
) -> tuple[Dataset, SplitInfo]:
    """``data`` with a validation split, and where it came from.

    A data set with its own ``x_val`` is returned as it is; otherwise ``fraction`` of each class
    of the training split is moved to ``x_val``/``y_val`` (:func:`stratified_split`) and the
    mean and std are recomputed on the rest. ``fraction`` 0 gives an empty validation split.
    A positive fraction too small to take a single image is a DataError.
    """
    n_test = int(data.x_test.shape[0])
    if data.x_val is not None:
        n = (int(data.x_train.shape[0]), int(data.x_val.shape[0]), n_test)
        return data, SplitInfo("data", fraction, seed, *n)
    n_train = int(data.x_train.shape[0])
    if fraction == 0:  # nothing to carve: the training split stays as it is, uncopied
        out = dataclasses.replace(data, x_val=data.x_train[:0], y_val=data.y_train[:0])
        return out, SplitInfo("none", 0.0, seed, n_train, 0, n_test)
    train_idx, val_idx = stratified_split(data.y_train, fraction, seed)
    if val_idx.numel() == 0:
        raise DataError(
            f"{data.name}: --val-split {fraction:g} of {n_train} training images "
            "is no image at all; give a larger --val-split, or 0 to validate nothing"
        )
    x_train, y_train = data.x_train[train_idx], data.y_train[train_idx]
    mean, std = channel_stats(x_train)
    out = dataclasses.replace(
        data,
        x_train=x_train,
        y_train=y_train,
        x_val=data.x_train[val_idx],
        y_val=data.y_train[val_idx],
        mean=mean,
        std=std,
    )
    return out, SplitInfo("train", fraction, seed, len(train_idx), len(val_idx), n_test)
