"""Training configuration: one dataclass, and the notes' recipes as named presets.

A recipe is a dict of field overrides over ``TrainConfig``'s defaults; any field can be overridden
again by the caller (CLI flags or keyword arguments), so ``recipe("resnet", lr=0.05)`` is the
ResNet recipe with a different base learning rate.

The values come from the notes (cs231n lecture 9 as translated in the seeds):

- AlexNet: SGD momentum 0.9, learning rate 1e-2 divided by 10 when validation accuracy plateaus,
  L2 weight decay 5e-4, batch 128, dropout 0.5 (in the model), data augmentation, 7-net ensemble
  (``convnet eval --ensemble``).
- VGG: "training close to AlexNet" (the VGG paper: batch 256, momentum 0.9, weight decay 5e-4,
  learning rate 1e-2 divided by 10 when validation accuracy stops improving).
- ResNet: batch norm after every conv and He init (in the model), SGD momentum 0.9, learning rate
  0.1 divided by 10 when the validation error plateaus, batch 256, weight decay 1e-5 as the notes
  say (the paper uses 1e-4), no dropout.
- GoogLeNet: auxiliary classifiers' losses weighted 0.3; the paper's SGD momentum 0.9 with the
  learning rate cut by 4% every 8 epochs.
- CIFAR ResNet (He et al. 2016, section 4.2): SGD momentum 0.9, lr 0.1, weight decay 1e-4,
  batch 128, lr / 10 at 32k and 48k iterations of 64k (epochs 91 and 136 of 182 at 45k images),
  4-pixel padding with random crops and horizontal flips.
- LeNet: tuned here for the bundled MNIST sample (4,000 training digits): SGD with Nesterov
  momentum, batch 32, a one-cycle schedule peaking at 0.03 over 35 epochs, label smoothing 0.1
  and random shifts of up to 3 pixels; no flips (a flipped digit is another digit). Held-out
  top-1 98.5 / 98.6 / 98.7% for seeds 0 / 1 / 2 (2 threads).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from ..errors import ConvnetError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "multistep", "plateau", "cosine", "onecycle", "warmup")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    """Everything a run needs besides the model and the data. Units are in the comments."""

    # run
    out: str | None = None  # run folder runs/NAME; None = do not write files
    epochs: int = 10
    batch_size: int = 128  # global batch (images per optimizer step, summed over processes)
    seed: int = 0
    device: str = "auto"  # "auto" = cuda if available, else cpu
    precision: str = "auto"  # "auto" = bf16 autocast on CUDA with bf16, else fp32; or fp32 | bf16
    channels_last: bool = False
    compile: bool = False  # torch.compile the model (slower to start; measure before using)
    num_threads: int = 0  # CPU threads per process; 0 = cores / processes
    # optimizer
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1  # peak learning rate
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW
    weight_decay: float = 5e-4  # L2 (SGD) or decoupled (AdamW)
    no_decay_bn_bias: bool = False  # no weight decay on 1-d parameters (BN weights, biases)
    # schedule (epochs may be fractional: the learning rate is set every step)
    schedule: str = "cosine"
    warmup_epochs: float = 0.0  # linear warmup from 0 to lr, combined with any schedule
    step_size: float = 30.0  # step: epochs between drops
    milestones: tuple[float, ...] = (30.0, 60.0, 90.0)  # multistep: epochs of the drops
    gamma: float = 0.1  # step / multistep / plateau factor
    patience: int = 5  # plateau: epochs without a better val top-1 before dividing
    min_lr: float = 0.0  # cosine floor
    onecycle_pct: float = 0.25  # one-cycle: share of steps spent rising
    onecycle_div: float = 25.0  # one-cycle: start lr = lr / div
    onecycle_final_div: float = 1e4  # one-cycle: final lr = lr / div / final_div
    # loss and regularization
    label_smoothing: float = 0.0
    aux_weight: float = 0.3  # weight of each auxiliary classifier's loss (GoogLeNet)
    clip_grad: float = 0.0  # max global gradient L2 norm; 0 = off
    ema: float = 0.0  # weight EMA decay per step (e.g. 0.999); 0 = off; evaluation uses the EMA
    # augmentation (batched tensor ops on the training device)
    crop_padding: int = 0  # random crop after zero padding of this many pixels (0 = off)
    hflip: bool = False
    cutout: int = 0  # side of a zeroed square (0 = off)
    # checkpoints, evaluation, logging
    checkpoint_every: int = 0  # also save last.pt every N steps (0 = epoch ends only)
    eval_every: int = 1  # evaluate every N epochs (and always after the last)
    eval_batch_size: int = 512
    drop_last: bool = True  # equal-size training batches (needed for exact multi-process averaging)
    progress: bool = True
    # distributed
    nproc: int = 1  # processes on this machine (torchrun environments are detected)
    dist_timeout: float = 60.0  # seconds before a collective waiting on a dead rank fails

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.milestones = tuple(float(m) for m in self.milestones)
        self.validate()

    def validate(self) -> None:
        """Raise ConvnetError naming the first field whose value cannot work."""
        checks = [
            (
                self.optimizer in OPTIMIZERS,
                f"optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}",
            ),
            (
                self.schedule in SCHEDULES,
                f"schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}",
            ),
            (
                self.precision in PRECISIONS,
                f"precision {self.precision!r}: use one of {', '.join(PRECISIONS)}",
            ),
            (self.epochs >= 1, f"epochs={self.epochs}: train for at least 1 epoch"),
            (self.batch_size >= 1, f"batch_size={self.batch_size}: must be at least 1"),
            (self.lr > 0, f"lr={self.lr}: the learning rate must be positive"),
            (self.nproc >= 1, f"nproc={self.nproc}: must be at least 1"),
            (
                self.batch_size % self.nproc == 0,
                f"batch_size={self.batch_size} is not divisible by nproc={self.nproc}: the global batch is split evenly",
            ),
            (0 <= self.ema < 1, f"ema={self.ema}: a decay in [0, 1), e.g. 0.999"),
            (
                0 <= self.label_smoothing < 1,
                f"label_smoothing={self.label_smoothing}: must be in [0, 1)",
            ),
            (0 < self.onecycle_pct < 1, f"onecycle_pct={self.onecycle_pct}: must be in (0, 1)"),
            (0 <= self.momentum < 1, f"momentum={self.momentum}: must be in [0, 1), e.g. 0.9"),
            (self.weight_decay >= 0, f"weight_decay={self.weight_decay}: must be >= 0"),
            (self.crop_padding >= 0, f"crop_padding={self.crop_padding}: pixels, >= 0"),
            (self.cutout >= 0, f"cutout={self.cutout}: a square side in pixels, >= 0"),
            (self.clip_grad >= 0, f"clip_grad={self.clip_grad}: a norm >= 0 (0 turns it off)"),
            (self.aux_weight >= 0, f"aux_weight={self.aux_weight}: must be >= 0"),
            (self.warmup_epochs >= 0, f"warmup_epochs={self.warmup_epochs}: must be >= 0"),
            (self.gamma > 0, f"gamma={self.gamma}: the decay factor must be positive"),
            (self.step_size > 0, f"step_size={self.step_size}: epochs, must be positive"),
            (self.eval_every >= 1, f"eval_every={self.eval_every}: epochs, at least 1"),
            (self.checkpoint_every >= 0, f"checkpoint_every={self.checkpoint_every}: >= 0"),
            (self.eval_batch_size >= 1, f"eval_batch_size={self.eval_batch_size}: at least 1"),
            (self.num_threads >= 0, f"num_threads={self.num_threads}: >= 0 (0: the default)"),
            (self.dist_timeout > 0, f"dist_timeout={self.dist_timeout}: seconds, positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConvnetError(f"training config: {message}")

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with some fields changed; unknown names raise ConvnetError."""
        _check_names(overrides)
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


RECIPES: dict[str, dict[str, Any]] = {
    "alexnet": dict(
        optimizer="sgd",
        momentum=0.9,
        lr=1e-2,
        schedule="plateau",
        gamma=0.1,
        patience=3,
        weight_decay=5e-4,
        batch_size=128,
        epochs=90,
        crop_padding=4,
        hflip=True,
    ),
    "vgg": dict(
        optimizer="sgd",
        momentum=0.9,
        lr=1e-2,
        schedule="plateau",
        gamma=0.1,
        patience=3,
        weight_decay=5e-4,
        batch_size=256,
        epochs=74,
        crop_padding=4,
        hflip=True,
    ),
    "resnet": dict(
        optimizer="sgd",
        momentum=0.9,
        lr=0.1,
        schedule="plateau",
        gamma=0.1,
        patience=3,
        weight_decay=1e-5,
        batch_size=256,
        epochs=90,
        crop_padding=4,
        hflip=True,
    ),
    "googlenet": dict(
        optimizer="sgd",
        momentum=0.9,
        lr=1e-2,
        schedule="step",
        step_size=8,
        gamma=0.96,
        weight_decay=2e-4,
        batch_size=128,
        epochs=90,
        aux_weight=0.3,
        crop_padding=4,
        hflip=True,
    ),
    "cifar-resnet": dict(
        optimizer="sgd",
        momentum=0.9,
        lr=0.1,
        schedule="multistep",
        milestones=(91, 136),
        gamma=0.1,
        weight_decay=1e-4,
        batch_size=128,
        epochs=182,
        crop_padding=4,
        hflip=True,
        precision="bf16",
        channels_last=True,
    ),
    "lenet": dict(
        optimizer="sgd",
        momentum=0.9,
        nesterov=True,
        lr=0.03,  # peak of the one-cycle curve
        schedule="onecycle",
        onecycle_pct=0.25,
        weight_decay=5e-4,
        label_smoothing=0.1,
        batch_size=32,
        epochs=35,
        crop_padding=3,  # random shifts of up to 3 pixels
        hflip=False,
        precision="fp32",  # LeNet's small convolutions gain nothing from bf16 on a CPU
        eval_every=5,
    ),
    # The NumPy engine is slower than torch, so a shorter schedule with smaller shifts:
    # 97.9 / 98.2 / 98.0% held-out top-1 (seeds 0-2) in 20 epochs, about 15 s (BENCHMARKS.md).
    "lenet-numpy": dict(
        optimizer="sgd",
        momentum=0.9,
        nesterov=True,
        lr=0.03,
        schedule="onecycle",
        onecycle_pct=0.25,
        weight_decay=5e-4,
        batch_size=32,
        epochs=20,
        crop_padding=2,  # random shifts of up to 2 pixels, done by the reference Solver
        eval_every=1,
    ),
}


def _check_names(overrides: dict[str, Any]) -> None:
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConvnetError(
            f"training config has no field {', '.join(map(repr, unknown))}; fields: {', '.join(sorted(known))}"
        )


def recipe(name: str | None = None, **overrides: Any) -> TrainConfig:
    """The named recipe's config with ``overrides`` applied (``None`` = TrainConfig defaults)."""
    base: dict[str, Any] = {}
    if name is not None:
        if name not in RECIPES:
            raise ConvnetError(f"unknown recipe {name!r}; recipes: {', '.join(RECIPES)}")
        base = dict(RECIPES[name])
    _check_names(overrides)
    base.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**base)


def recipe_for_model(model_name: str, engine: str = "torch") -> str | None:
    """The recipe a zoo model trains with by default (by family and engine), or None."""
    name = model_name.lower()
    if name.startswith("lenet"):
        return "lenet-numpy" if engine == "numpy" else "lenet"
    if name.startswith("alexnet"):
        return "alexnet"
    if name.startswith("vgg"):
        return "vgg"
    if name.startswith(("googlenet", "inception")):
        return "googlenet"
    if (
        name.startswith("resnet")
        and name[6:].isdigit()
        and int(name[6:]) in (20, 32, 44, 56, 110, 1202)
    ):
        return "cifar-resnet"
    if name.startswith(("resnet", "wide_resnet", "resnext")):
        return "resnet"
    return None
