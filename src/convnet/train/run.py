"""What a run records besides its weights, shared by the PyTorch loop and the NumPy engine.

- :class:`RunSpec`: what was trained on what (the MODEL string, the classes, the input size,
  the normalization, the data's name, the source record of a ``file.py:Name`` model). Its
  ``to_dict()`` is a checkpoint's ``spec``, from which a model is rebuilt for evaluation.
- :class:`Progress`: where a run stands (epoch, step, the epoch's running sums). Its
  ``state_dict()`` is a checkpoint's ``progress``, restored exactly on resume.
- :func:`prepare_model`: the model a run trains, built for the data, and its RunSpec.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from ..errors import ConvnetError


@dataclass(frozen=True)
class RunSpec:
    """What a run trains: enough to rebuild the model and feed it images as in training."""

    model: str | None  # the MODEL string; None for a Python object without a name
    data: str  # the data set's name or path
    classes: tuple[str, ...]
    input_size: tuple[int, int, int]  # (C, H, W) at the model's input
    data_size: tuple[int, int]  # (H, W) of the stored images (random crops cut input_size)
    mean: tuple[float, ...]  # per channel, pixels scaled to [0, 1]
    std: tuple[float, ...]
    source: dict[str, Any] | None = None  # file.py:Name models: path, sha256, name
    split: dict[str, Any] | None = None  # data.splits.SplitInfo: where validation came from, sizes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return self.input_size[0]

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint's ``spec``: model, num_classes, in_chans, input_size, data_size,
        classes, mean, std, source, data and split (lists, not tuples, as JSON would hold them)."""
        return {
            "model": self.model,
            "num_classes": self.num_classes,
            "in_chans": self.in_chans,
            "input_size": list(self.input_size),
            "data_size": list(self.data_size),
            "classes": list(self.classes),
            "mean": list(self.mean),
            "std": list(self.std),
            "source": self.source,
            "data": self.data,
            "split": self.split,
        }


def validation_rank(top1: float | None, loss: float | None) -> tuple[float, float]:
    """Where a validation result ranks, smaller first: the higher top-1, and among equal top-1s
    the lower loss (how best.pt, early stopping and the search choose); a missing value last."""
    inf = float("inf")
    return (inf if top1 is None else -top1, inf if loss is None else loss)


@dataclass
class Progress:
    """Where a run stands. Saved in every checkpoint; a resumed run continues from it exactly."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps done in the current epoch
    global_step: int = 0  # optimizer steps done since the start
    best_top1: float = -1.0  # best validation top-1 so far (percent); -1 before any
    best_epoch: int = 0  # the epoch (1-based) that scored it, saved as best.pt; 0 before any
    best_loss: float = float("inf")  # that epoch's validation loss: breaks ties in top-1
    seconds: float = 0.0  # wall time of the completed epochs, training and evaluation
    train_seconds: float = 0.0  # of which training
    train_images: int = 0  # images trained on in the completed epochs, all processes
    # this epoch so far, summed over processes when saved (in memory: this process's share)
    loss_sum: float = 0.0  # sum of loss x batch size
    correct: int = 0  # top-1 hits on the training batches
    count: int = 0  # this epoch so far, this process: images
    epoch_seconds: float = 0.0  # this epoch so far: wall time

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take the saved values; a key the checkpoint lacks keeps its start value (a NumPy
        engine's checkpoint records only epoch, global_step and best_top1)."""
        for f in dataclasses.fields(self):
            if f.name in state:
                setattr(self, f.name, type(f.default)(state[f.name]))

    def advance(self, images: int) -> None:
        """One optimizer step on ``images`` images (this process's share of the batch) is done."""
        self.global_step += 1
        self.step_in_epoch += 1
        self.count += images

    def next_epoch(self) -> None:
        """The epoch is complete: count it and reset its running sums."""
        self.epoch += 1
        self.step_in_epoch = self.count = self.correct = 0
        self.loss_sum = self.epoch_seconds = 0.0


def prepare_model(model: nn.Module | str, data: Any) -> tuple[nn.Module, RunSpec]:
    """The model to train on ``data`` (a ``convnet.data.Dataset``) and the run's spec.

    ``model`` is a module, or a MODEL string (zoo name, pattern-language line, ``file.py:Name``)
    built for the data's classes, channels and image size. The model sees ``input_size`` =
    (data channels, its ``default_input_size``'s H x W, else the data's). A model with nothing
    to train is a ConvnetError.
    """
    if isinstance(model, str):
        from ..resolve import resolve_model

        model = resolve_model(
            model,
            num_classes=len(data.classes),
            in_chans=data.input_size[0],
            input_size=data.input_size,
        ).model
    # what rebuilds it: the MODEL string, or the one a checkpoint given as MODEL recorded
    name = getattr(model, "model_spec", None) or getattr(model, "model_name", None)
    if not any(p.requires_grad for p in model.parameters()):
        raise ConvnetError(
            f"{name or type(model).__name__} has no trainable parameters, so there is nothing "
            "to train; add a layer with weights (CONV, FC) or unfreeze some"
        )
    size = tuple(getattr(model, "default_input_size", None) or data.input_size)
    spec = RunSpec(
        model=name,
        data=str(data.name),
        classes=tuple(data.classes),
        input_size=(int(data.input_size[0]), *(int(s) for s in size[1:])),
        data_size=tuple(int(s) for s in data.input_size[1:]),
        mean=tuple(float(m) for m in data.mean),
        std=tuple(float(s) for s in data.std),
        source=getattr(model, "model_source", None),
    )
    return model, spec
