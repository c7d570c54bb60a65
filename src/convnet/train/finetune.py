"""Fine-tuning a pretrained net: its weights, frozen layers, and a rate for the head and one for
the rest.

The notes' advice for real work ("don't be a hero"): start from a net trained on ImageNet and
fine-tune it on your data. Three knobs, each a TrainConfig field:

- ``weights``: the file to start from (:func:`convnet.models.load_weights_report`; a head whose
  class count differs starts fresh);
- ``freeze``: module prefixes whose parameters stay fixed (``requires_grad`` off, so they are
  in no optimizer group and get no weight decay) and whose batch-norm layers stay in eval mode
  (their running statistics are the pretrained ones, not this data's); ``all-but-head``
  freezes everything but the classifier head (a linear classifier on the net's CNN codes);
- ``lr_head`` / ``lr_backbone`` / ``lr_backbone_mult``: the head's and the other layers' peak
  rates, one optimizer group each, both scaled by the schedule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch.nn as nn

from ..errors import ConvnetError
from ..models import head_keys
from .config import TrainConfig

ALL_BUT_HEAD = "all-but-head"


def head_parameters(model: nn.Module) -> set[str]:
    """Names (as ``named_parameters`` gives them) of the classifier head's parameters: the last
    Linear or Conv2d, or the modules a model lists in ``head_names``."""
    keys = head_keys(model)
    return {n for n, _ in model.named_parameters() if n in keys}


def group_rates(cfg: TrainConfig) -> dict[str, float]:
    """Peak learning rates ``{"head": ..., "backbone": ...}``: ``lr_head`` (0: ``lr``) and
    ``lr_backbone`` (0: ``lr x lr_backbone_mult``)."""
    return {
        "head": cfg.lr_head or cfg.lr,
        "backbone": cfg.lr_backbone or cfg.lr * cfg.lr_backbone_mult,
    }


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@dataclass
class Frozen:
    """What :func:`freeze` fixed: parameter names, and the normalization layers kept in eval
    mode (their running statistics do not move)."""

    parameters: list[str]
    norms: list[nn.Module]
    total: int  # parameters (values) of the whole model
    fixed: int  # of which frozen

    def describe(self, prefixes: Iterable[str]) -> str:
        """'froze features (2,260,992 of 2,476,266 parameters), batch-norm statistics of 0 layers'."""
        return (
            f"froze {', '.join(prefixes)} ({self.fixed:,} of {self.total:,} parameters), "
            f"batch-norm statistics of {len(self.norms)} layer(s)"
        )

    def train_mode(self, model: nn.Module) -> None:
        """``model.train()``, except the frozen normalization layers, which stay in eval mode."""
        model.train()
        for m in self.norms:
            m.eval()


def freeze(model: nn.Module, prefixes: Iterable[str]) -> Frozen:
    """Fix the parameters under each module prefix (``layer1``, ``features.0``, ``fc.weight``)
    or all but the head's (``all-but-head``): ``requires_grad_(False)``, so the optimizer never
    sees them. Normalization layers with running statistics under a prefix are returned in
    :attr:`Frozen.norms`, to be kept in eval mode while training.

    A prefix that names nothing in the model, or a freeze that leaves nothing to train, is a
    ConvnetError naming the model's top-level layers.
    """
    prefixes = list(prefixes)
    params = dict(model.named_parameters())
    head = head_parameters(model)
    head_modules = {n.rsplit(".", 1)[0] for n in head}
    frozen: set[str] = set()
    norms: list[nn.Module] = []
    for prefix in prefixes:
        if prefix == ALL_BUT_HEAD:
            if not head:
                raise ConvnetError(
                    f"--freeze {ALL_BUT_HEAD}: {type(model).__name__} has no classifier head "
                    "(a last Linear or Conv2d) to keep training; freeze layers by name instead"
                )
            hit = {n for n in params if n not in head}
            mods = [
                m
                for name, m in model.named_modules()
                if not any(_under(name, h) for h in head_modules)
            ]
        else:
            hit = {n for n in params if _under(n, prefix)}
            mods = [m for name, m in model.named_modules() if name and _under(name, prefix)]
            if not hit and not mods:
                tops = ", ".join(name for name, _ in model.named_children())
                raise ConvnetError(
                    f"--freeze {prefix!r} names no layer of {type(model).__name__}; its layers: "
                    f"{tops} (a prefix such as layer1 or layer1.0, or {ALL_BUT_HEAD})"
                )
        frozen |= hit
        norms += [m for m in mods if getattr(m, "running_mean", None) is not None]
    if prefixes and frozen == set(params):
        raise ConvnetError(
            f"--freeze {' '.join(prefixes)} leaves no parameter of {type(model).__name__} to "
            f"train; freeze fewer layers ({ALL_BUT_HEAD} keeps the head training)"
        )
    for n in frozen:
        params[n].requires_grad_(False)
    unique = list({id(m): m for m in norms}.values())
    return Frozen(
        parameters=sorted(frozen),
        norms=unique,
        total=sum(p.numel() for p in params.values()),
        fixed=sum(params[n].numel() for n in frozen),
    )
