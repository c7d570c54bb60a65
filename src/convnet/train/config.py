"""Training configuration: one dataclass, and the notes' recipes as named presets.

A recipe is a dict of field overrides over ``TrainConfig``'s defaults; any field can be overridden
again by the caller (CLI flags or keyword arguments), so ``recipe("resnet", lr=0.05)`` is the
ResNet recipe with a different base learning rate.

The values come from the notes (cs231n lecture 9 as translated in the seeds):

- AlexNet: SGD momentum 0.9, learning rate 1e-2 divided by 10 when validation accuracy plateaus,
  L2 weight decay 5e-4, batch 128, dropout 0.5 (in the model), 7-net ensemble
  (``convnet eval --ensemble``); the paper's augmentation: images rescaled to 256 (shorter
  side), random crops of the model's input with mirrors, the colour PCA jitter (alpha ~
  N(0, 0.1^2)), and at test time the ten crops (``convnet eval --tta 10crop``).
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
  and random shifts of up to 3 pixels; no flips (a flipped digit is another digit). Top-1 on
  the 1,000 held-out digits 98.5 / 98.6 / 98.7% for seeds 0 / 1 / 2 (2 threads), measured when
  the run trained on all 4,000 digits and reported its best epoch on those same held-out ones;
  ``convnet train lenet5 --seed S`` now trains on 3,600, picks on 400 and reports the test
  split's top-1 of that pick (BENCHMARKS.md has the current figures).
- Fine-tuning (the notes: "don't be a hero", take a net pretrained on ImageNet and fine-tune it
  on your data; cs231n's transfer-learning notes): with ``--weights``, SGD momentum 0.9 at a
  tenth of the from-scratch rate (1e-2), the pretrained layers at a tenth of that
  (``lr_backbone_mult`` 0.1) so they move less than the fresh head, weight decay 1e-4, a short
  cosine run. The notes' four cases, as flags over this recipe:

  - small data, similar to ImageNet: ``--freeze all-but-head`` (a linear classifier on the CNN
    codes; too little data to fine-tune without overfitting);
  - large data, similar: the recipe as it is (fine-tune everything, gently);
  - small data, different: freeze the early, generic layers (``--freeze conv1 --freeze bn1
    --freeze layer1 --freeze layer2`` on a ResNet) and train the later ones and the head;
  - large data, different: ``--lr-backbone-mult 1 --epochs 30`` (the pretrained weights are only
    a starting point: fine-tune everything at the full rate, longer).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, ConvnetError
from ..limits import MAX_IMAGE_SIDE

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "multistep", "plateau", "cosine", "onecycle", "warmup")
PRECISIONS = ("auto", "fp32", "bf16")


def _threads_limit() -> int:
    return 4 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class Range:
    """The values a numeric field (or each element of a tuple field) may take, and why.

    ``lo``/``hi`` are the bounds (None: unbounded), inclusive unless ``lo_open``/``hi_open``;
    ``hi`` may be a function of the machine (threads per core). ``hi_text`` names such a bound.
    """

    lo: float | None = None
    hi: float | Callable[[], float] | None = None
    lo_open: bool = False
    hi_open: bool = False
    why: str = ""
    hi_text: str = ""

    def upper(self) -> float | None:
        return self.hi() if callable(self.hi) else self.hi

    def contains(self, v: float) -> bool:
        """Whether ``v`` is in the range; never nan or an infinity (no setting is infinite)."""
        if not math.isfinite(v):
            return False
        hi = self.upper()
        return (self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)) and (
            hi is None or (v < hi if self.hi_open else v <= hi)
        )

    def __str__(self) -> str:
        """'1..100000' (integers, both ends in), '[0, 1)', '>= 1', '> 0' or '<= 8'."""
        hi = self.upper()
        hi_s = f"{hi:g}" if hi is not None else ""
        if self.hi_text:  # a named bound, with its value on this machine when it depends on it
            hi_s = f"{self.hi_text} (= {hi_s})" if callable(self.hi) else self.hi_text
        if self.lo is not None and hi is not None:
            if not (self.lo_open or self.hi_open) and float(self.lo).is_integer():
                return f"{self.lo:g}..{hi_s}"
            return (
                f"{'(' if self.lo_open else '['}{self.lo:g}, {hi_s}{')' if self.hi_open else ']'}"
            )
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {hi_s}"

    def rule(self) -> str:
        """'must be in 1..100000 (why)' or 'must be >= 0 (why)'."""
        text = str(self)
        where = f"in {text}" if text[0] not in "<>" else text
        return f"must be {where}" + (f" ({self.why})" if self.why else "")


@dataclass(frozen=True)
class FieldDoc:
    """What the CLI says about a TrainConfig field: its flag, help, units, choices and range."""

    help: str
    units: str = ""
    choices: tuple[str, ...] = ()
    range: Range | None = None
    flags: tuple[str, ...] = ()  # CLI option strings; () = --FIELD-NAME


def _f(
    default: Any,
    help: str,
    *,
    units: str = "",
    choices: tuple[str, ...] = (),
    range: Range | None = None,
    flags: tuple[str, ...] = (),
) -> Any:
    """A dataclass field whose metadata documents it (``documented_fields`` reads it back)."""
    doc = FieldDoc(help, units, choices, range, flags)
    return dataclasses.field(default=default, metadata={"doc": doc})


def _positive(why: str) -> Range:
    return Range(0, lo_open=True, why=why)


def _at_least(lo: int, why: str) -> Range:
    return Range(lo, why=why)


def _fraction(why: str) -> Range:
    """[0, 1): a decay or a share that must leave something."""
    return Range(0, 1, hi_open=True, why=why)


@dataclass
class TrainConfig:
    """Everything a run needs besides the model and the data; each field documents its units.

    Values are checked on construction (``validate``): a value outside its range or choices
    raises ``ConfigError`` naming the field, the value, what is allowed and why.
    """

    # run
    out: str | None = _f(
        None,
        "run folder for config.json, metrics, checkpoints and curves (None: write no files)",
        flags=("-o", "--out", "--output"),
    )
    epochs: int = _f(
        10,
        "passes over the training set",
        units="epochs",
        range=Range(1, 100_000, why="at least one pass; more than 100000 is a typo"),
    )
    batch_size: int = _f(
        128,
        "global batch: images per optimizer step, summed over processes",
        units="images",
        range=_at_least(1, "a step needs at least one image"),
        flags=("--batch", "--batch-size"),
    )
    seed: int = _f(
        0,
        "seed of the initialization, shuffling and augmentation",
        range=Range(0, 2**63 - 1, why="torch takes a 64-bit seed", hi_text="2**63-1"),
    )
    device: str = _f("auto", "auto (cuda if available, else cpu), cpu, cuda or cuda:N")
    precision: str = _f(
        "auto",
        "auto: bf16 autocast on a CUDA GPU that has bf16, else fp32",
        choices=PRECISIONS,
    )
    channels_last: bool = _f(False, "channels-last (NHWC) memory layout; pays with bf16 on GPUs")
    compile: bool = _f(False, "torch.compile the model (slower to start; measure before using)")
    num_threads: int = _f(
        0,
        "CPU threads per process (0: the cores idle when the run starts, shared by the processes)",
        units="threads",
        range=Range(
            0, _threads_limit, why="more than 4 per core only adds contention", hi_text="4 x cores"
        ),
        flags=("--threads", "--num-threads"),
    )
    # optimizer
    optimizer: str = _f("sgd", "SGD with momentum, or AdamW", choices=OPTIMIZERS)
    lr: float = _f(
        0.1,
        "peak learning rate (the schedule scales it step by step)",
        range=_positive("a zero or negative step does not descend"),
    )
    momentum: float = _f(
        0.9,
        "SGD momentum: the velocity's decay per step",
        range=_fraction("at 1 the velocity never forgets a gradient"),
    )
    nesterov: bool = _f(False, "Nesterov momentum (SGD)")
    betas: tuple[float, float] = _f(
        (0.9, 0.999),
        "AdamW: decay per step of the gradient's running mean and of its square",
        range=_fraction("at 1 an average never takes in a new gradient"),
    )
    weight_decay: float = _f(
        5e-4,
        "L2 penalty (SGD) or decoupled decay (AdamW)",
        range=_at_least(0, "a negative decay grows the weights"),
    )
    no_decay_bn_bias: bool = _f(False, "no weight decay on 1-d parameters (BN weights, biases)")
    # schedule (epochs may be fractional: the learning rate is set every step)
    schedule: str = _f("cosine", "learning-rate curve over the run", choices=SCHEDULES)
    warmup_epochs: float = _f(
        0.0,
        "linear warmup from 0 to lr, combined with any schedule",
        units="epochs",
        range=_at_least(0, "0 turns it off"),
    )
    step_size: float = _f(
        30.0,
        "step: epochs between drops",
        units="epochs",
        range=_positive("a drop every 0 epochs is no schedule"),
    )
    milestones: tuple[float, ...] = _f(
        (30.0, 60.0, 90.0),
        "multistep: epochs of the drops",
        units="epochs",
        range=_at_least(0, "an epoch of the run"),
    )
    gamma: float = _f(
        0.1,
        "step / multistep / plateau: the learning rate's factor at each drop",
        range=_positive("a factor of 0 stops learning"),
    )
    patience: int = _f(
        5,
        "plateau: epochs without a better validation top-1 before a drop",
        units="epochs",
        range=_at_least(0, "0 drops after the first epoch without improvement"),
    )
    min_lr: float = _f(
        0.0,
        "cosine: the floor the curve ends at",
        range=_at_least(0, "a negative learning rate climbs the loss"),
    )
    onecycle_pct: float = _f(
        0.25,
        "one-cycle: share of the steps spent rising",
        range=Range(0, 1, lo_open=True, hi_open=True, why="it has to rise and to fall"),
    )
    onecycle_div: float = _f(
        25.0,
        "one-cycle: start lr = lr / div",
        range=_positive("lr / 0 has no value"),
    )
    onecycle_final_div: float = _f(
        1e4,
        "one-cycle: final lr = lr / div / final_div",
        range=_positive("lr / 0 has no value"),
    )
    # loss and regularization
    label_smoothing: float = _f(
        0.0,
        "share of each target's probability spread evenly over all classes",
        range=_fraction("at 1 the label carries no information"),
    )
    aux_weight: float = _f(
        0.3,
        "weight of each auxiliary classifier's loss (GoogLeNet)",
        range=_at_least(0, "a negative weight rewards the loss"),
    )
    clip_grad: float = _f(
        0.0, "max global L2 norm of the gradient (0: off)", range=_at_least(0, "0 turns it off")
    )
    ema: float = _f(
        0.0,
        "decay per step of a moving average of the weights, used for evaluation (0: off; e.g. 0.999)",
        range=_fraction("at 1 the average never moves"),
    )
    # augmentation (batched tensor ops on the training device)
    crop_padding: int = _f(
        0,
        "random crops after zero padding of this many pixels (0: off)",
        units="pixels",
        range=_at_least(0, "0 turns it off"),
    )
    hflip: bool = _f(False, "random horizontal flips (turned off for digits unless given)")
    cutout: int = _f(
        0,
        "side of a random zeroed square (0: off)",
        units="pixels",
        range=_at_least(0, "0 turns it off"),
    )
    resize: int = _f(
        0,
        "scale every image so its shorter side is this many pixels before cropping, in "
        "training and evaluation (AlexNet: 256, then random crops of the model's input; 0: off)",
        units="pixels",
        range=Range(0, MAX_IMAGE_SIDE, why="a longer side is a typo: 48 MiB per RGB image"),
    )
    pca_jitter: float = _f(
        0.0,
        "std of AlexNet's colour jitter: each training image shifts by P (alpha * lambda), "
        "alpha ~ N(0, std^2), P and lambda the eigenvectors and eigenvalues of the training "
        "pixels' colour covariance (the paper: 0.1; 0: off)",
        range=_at_least(0, "0 turns it off"),
    )
    # checkpoints, evaluation, logging
    checkpoint_every: int = _f(
        0,
        "also save last.pt every N steps (0: at epoch ends only)",
        units="steps",
        range=_at_least(0, "0: only at epoch ends"),
    )
    eval_every: int = _f(
        1,
        "evaluate every N epochs (and always after the last)",
        units="epochs",
        range=_at_least(1, "every epoch at most"),
    )
    eval_batch_size: int = _f(
        512,
        "evaluation batch",
        units="images",
        range=Range(1, 65536, why="a larger batch only costs memory"),
    )
    drop_last: bool = _f(
        True, "equal-size training batches (needed for exact multi-process averaging)"
    )
    # validation: every choice is made on it, the test split is scored once at the end
    val_split: float = _f(
        0.1,
        "share of each class of the training split held out for validation, which picks "
        "best.pt and drives plateau schedules and early stopping (a data set's own val/ split "
        "is used instead; 0: nothing is validated)",
        range=_fraction("the rest is for training"),
    )
    early_stop: int = _f(
        0,
        "stop after N epochs without a better validation top-1 (or an equal one at a lower "
        "validation loss) (0: off)",
        units="epochs",
        range=_at_least(0, "0 turns it off"),
    )
    # fine-tuning a pretrained net
    weights: str | None = _f(
        None,
        "pretrained weights to start from: a torchvision, timm-style or convnet file "
        "(.safetensors, or a .pt/.pth that loads with weights_only); a head whose class count "
        "differs starts fresh",
    )
    freeze: tuple[str, ...] = _f(
        (),
        "keep the parameters under a module prefix fixed (e.g. features, layer1, or "
        "all-but-head): no updates, no weight decay, batch-norm statistics frozen; repeatable",
    )
    lr_head: float = _f(
        0.0,
        "peak learning rate of the classifier head (0: --lr)",
        range=_at_least(0, "0: the same as --lr"),
    )
    lr_backbone: float = _f(
        0.0,
        "peak learning rate of every layer but the head (0: --lr x --lr-backbone-mult)",
        range=_at_least(0, "0: --lr x --lr-backbone-mult"),
    )
    lr_backbone_mult: float = _f(
        1.0,
        "the backbone's learning rate as a multiple of --lr (pretrained layers move less)",
        range=_positive("a multiple of 0 is --freeze all-but-head"),
    )
    progress: bool = _f(True, "progress bar and one line per epoch")
    # distributed
    nproc: int = _f(
        1,
        "processes on this machine (torchrun environments are detected)",
        units="processes",
        range=_at_least(1, "at least one process trains"),
    )
    dist_timeout: float = _f(
        60.0,
        "how long a collective waits on a dead process before failing",
        units="seconds",
        range=Range(
            0, 86400, lo_open=True, why="0 fails every collective; a day is past any stall"
        ),
    )

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        self.milestones = tuple(float(m) for m in self.milestones)
        self.freeze = (self.freeze,) if isinstance(self.freeze, str) else tuple(self.freeze)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first field whose value cannot work.

        Each field's choices and range come from its documentation (``documented_fields``), so
        the CLI's help and this check cannot disagree; checks across fields follow.
        """
        for f, doc in documented_fields():
            value = getattr(self, f.name)
            if doc.choices and value not in doc.choices:
                raise ConfigError(f.name, repr(value), f"use one of {', '.join(doc.choices)}")
            if doc.range is not None:
                for v in value if isinstance(value, tuple) else (value,):
                    if isinstance(v, bool) or not isinstance(v, (int, float)):
                        raise ConfigError(f.name, repr(value), "must be a number")
                    if not doc.range.contains(v):
                        raise ConfigError(f.name, value, doc.range.rule())
        if self.lr_backbone > 0 and self.lr_backbone_mult != 1.0:
            raise ConfigError(
                "lr_backbone",
                self.lr_backbone,
                f"give it or lr_backbone_mult ({self.lr_backbone_mult:g}), not both",
            )
        if self.batch_size % self.nproc:
            raise ConfigError(
                "batch_size",
                self.batch_size,
                f"must be divisible by nproc={self.nproc} (the global batch is split evenly)",
            )

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
        resize=256,  # the paper: images rescaled to 256, random 224 crops and their mirrors
        crop_padding=0,
        hflip=True,
        pca_jitter=0.1,  # and the colour PCA jitter, alpha ~ N(0, 0.1^2)
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
    # 97.9 / 98.2 / 98.0% held-out top-1 (seeds 0-2) in 20 epochs, about 15 s, measured before
    # the validation split (the best epoch chosen on those held-out digits; BENCHMARKS.md).
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
    "finetune": dict(
        optimizer="sgd",
        momentum=0.9,
        lr=1e-2,  # a tenth of training from scratch: the start is already good
        lr_backbone_mult=0.1,  # the pretrained layers at 1e-3, the fresh head at 1e-2
        schedule="cosine",
        weight_decay=1e-4,
        batch_size=64,
        epochs=15,
        crop_padding=4,
        hflip=True,
    ),
}


def documented_fields() -> list[tuple[dataclasses.Field, FieldDoc]]:
    """TrainConfig's fields in order, each with its FieldDoc (help, units, choices, range, flags)."""
    return [(f, f.metadata["doc"]) for f in dataclasses.fields(TrainConfig)]


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
    if name.startswith("plain"):  # the ResNet paper's plain twins train as their ResNets do
        return "cifar-resnet" if name[5:] in ("20", "32", "44", "56", "110") else "resnet"
    if (
        name.startswith("resnet")
        and name[6:].isdigit()
        and int(name[6:]) in (20, 32, 44, 56, 110, 1202)
    ):
        return "cifar-resnet"
    if name.startswith(("resnet", "wide_resnet", "resnext")):
        return "resnet"
    return None
