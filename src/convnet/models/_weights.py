"""Loading a local weight file into a model, with one clear error when it does not fit."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import WeightsError
from ..io import load_tensors


def _strip_prefix(state: dict) -> dict:
    if state and all(k.startswith("module.") for k in state):  # saved from DistributedDataParallel
        return {k[len("module.") :]: v for k, v in state.items()}
    return state


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights_report` took from a file: ``loaded`` state-dict keys, and the
    ``fresh`` ones left as initialized (a classifier head whose shape differs: fine-tuning)."""

    path: str
    loaded: tuple[str, ...]
    fresh: tuple[str, ...]

    def describe(self) -> str:
        """'loaded 122 tensors from F; started fresh: fc.weight, fc.bias (a head of another
        shape)' or '...; nothing started fresh'."""
        fresh = (
            f"started fresh: {', '.join(self.fresh)} (a classifier head of another shape)"
            if self.fresh
            else "nothing started fresh"
        )
        return f"loaded {len(self.loaded)} tensors from {self.path}; {fresh}"


def load_weights(model: nn.Module, path: str, *, quiet: bool = False) -> nn.Module:
    """Load ``path`` into ``model``. A head whose shape differs is left initialized (fine-tuning).

    Raises WeightsError listing missing keys, unexpected keys and shape conflicts otherwise.
    """
    report = load_weights_report(model, path)
    if report.fresh and not quiet:
        print(
            f"loaded {path} except the classifier head ({', '.join(report.fresh)}): its shape "
            "differs, so it stays freshly initialized for fine-tuning",
            file=sys.stderr,
        )
    return model


def load_weights_report(model: nn.Module, path: str) -> LoadReport:
    """Load ``path`` (safetensors, or a state dict that loads with ``weights_only``; torchvision,
    timm or convnet key names) into ``model`` and say what loaded and what started fresh.

    The classifier head (:func:`head_keys`) is left as initialized when its shape differs from
    the file's (another class count); any other missing key, unexpected key or shape conflict
    is a WeightsError naming them.
    """
    state = _strip_prefix(dict(load_tensors(path)))
    own = model.state_dict()
    if hasattr(model, "adapt_state_dict"):  # legacy key names (DenseNet's norm.1 and the like)
        state = model.adapt_state_dict(state)
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    conflicts = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    head = head_keys(model)
    head_conflicts = [k for k in conflicts if k in head]
    other_conflicts = [k for k in conflicts if k not in head]
    if missing or unexpected or other_conflicts:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys ({_short(missing)})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys ({_short(unexpected)})")
        if other_conflicts:
            parts.append(
                "shape conflicts ("
                + _short(
                    [
                        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                        for k in other_conflicts
                    ]
                )
                + ")"
            )
        raise WeightsError(f"{path} does not fit {type(model).__name__}: " + "; ".join(parts))
    load = {k: v for k, v in state.items() if k not in head_conflicts}
    with torch.no_grad():
        model.load_state_dict(load, strict=False)
    return LoadReport(str(path), tuple(load), tuple(head_conflicts))


def head_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the classifier head(s).

    A model with several heads lists them in ``head_names`` (GoogLeNet: ``fc`` and the aux
    heads' ``fc2``); otherwise the head is the last Linear (or last conv, for all-conv heads).
    """
    names = getattr(model, "head_names", None)
    if names:
        own = model.state_dict()
        return {f"{n}.{p}" for n in names for p in ("weight", "bias") if f"{n}.{p}" in own}
    last = None
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            last = name
    if last is None:
        return set()
    return {f"{last}.weight", f"{last}.bias"}


def _short(items: list[str], n: int = 4) -> str:
    more = f", ... {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more
