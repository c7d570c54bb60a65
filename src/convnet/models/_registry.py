"""The model registry: names -> builders, with a model card for each.

A builder is a function ``(num_classes=..., in_chans=..., **options) -> nn.Module``. Registering
records its card (family, year, paper, canonical input, expected parameter count, the result the
notes quote, and where known the reported top-1 / top-5 accuracy with its source) so
``convnet models``, ``convnet compare`` and the tests need no per-model code.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from ..errors import ModelNotFoundError


@dataclass(frozen=True)
class ModelCard:
    name: str
    builder: Callable[..., nn.Module]
    family: str
    year: int
    paper: str
    input_size: tuple[int, int, int]  # (C, H, W) at which the paper's numbers hold
    params: int | None = None  # exact parameter count at the default head (tests assert it)
    result: str = ""  # the result the notes or the paper quote, e.g. "ILSVRC-2012 top-5 15.3%"
    num_classes: int = 1000
    torchvision_keys: bool = False  # state-dict keys and shapes are exactly torchvision's
    options: dict[str, Any] = field(default_factory=dict)
    # reported accuracy on the data set the card's ``result`` names (ImageNet-1k validation for
    # the ImageNet models), in percent (100 - error), single crop unless the source says otherwise
    top1: float | None = None
    top5: float | None = None
    accuracy_source: str = ""  # where top1/top5 come from: a paper's table, a weights release
    timm_keys: bool = False  # state-dict keys and shapes are exactly timm's


_MODELS: dict[str, ModelCard] = {}


def register_model(
    *,
    family: str,
    year: int,
    paper: str,
    input_size: tuple[int, int, int] = (3, 224, 224),
    params: int | None = None,
    result: str = "",
    num_classes: int = 1000,
    torchvision_keys: bool = False,
    name: str | None = None,
    top1: float | None = None,
    top5: float | None = None,
    accuracy_source: str = "",
    timm_keys: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder under its function name (or ``name``).

    ``top1``/``top5`` are accuracies in percent; give ``accuracy_source`` with them.
    """
    if (top1 is not None or top5 is not None) and not accuracy_source:
        raise ValueError("a card's top1/top5 need an accuracy_source (paper table or weights)")

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is registered twice")
        _MODELS[key] = ModelCard(
            key,
            fn,
            family,
            year,
            paper,
            tuple(input_size),
            params,
            result,
            num_classes,
            torchvision_keys,
            top1=top1,
            top5=top5,
            accuracy_source=accuracy_source,
            timm_keys=timm_keys,
        )
        return fn

    return deco


def _ensure_loaded() -> None:
    from . import _zoo  # noqa: F401  (imports every family so each registers itself)


def _load(name: str) -> None:
    """Register ``name``: import the one family module the stored index names for it (a model
    costs one family's import, not the zoo's), or every family where the index does not know it."""
    if name in _MODELS:
        return
    from .macs import MODULES

    if name in MODULES:
        importlib.import_module(f"{__package__}.{MODULES[name]}")
    if name not in _MODELS:
        _ensure_loaded()


def _natural_key(name: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names in natural order (resnet18 before resnet101); ``pattern`` is a shell glob
    (``resnet*``) or a substring."""
    _ensure_loaded()
    names = sorted(_MODELS, key=_natural_key)
    if pattern:
        glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
        names = [n for n in names if fnmatch.fnmatch(n, glob)]
    return names


def get_card(name: str) -> ModelCard:
    _load(name)
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `convnet models` lists them"
        raise ModelNotFoundError(f"unknown model {name!r}{hint}") from None


def is_model(name: str) -> bool:
    _load(name)
    return name in _MODELS


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    weights: str | None = None,
    **options: Any,
) -> nn.Module:
    """Build a registered model; ``weights`` is a local .safetensors/.pth file to load.

    With a ``num_classes`` different from the file's head, the backbone loads and the head
    stays freshly initialized (fine-tuning); a message says so.
    """
    card = get_card(name)
    kwargs: dict[str, Any] = dict(options)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    model = card.builder(**kwargs)
    model.default_input_size = (in_chans or card.input_size[0],) + tuple(card.input_size[1:])
    model.model_name = name
    if weights is not None:
        from ._weights import load_weights

        load_weights(model, weights)
    return model
