"""Turn what a user typed for MODEL into a module: a zoo name, a pattern-language line, or
``path/to/file.py:Name`` (a class or a factory taking no required arguments)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
from pathlib import Path

import torch.nn as nn

from .errors import ConvnetError, ModelNotFoundError


def resolve_model(
    spec: str | nn.Module,
    num_classes: int | None = None,
    in_chans: int | None = None,
    **options,
) -> nn.Module:
    """Return the module ``spec`` names. Zoo and notation models carry ``default_input_size``."""
    if isinstance(spec, nn.Module):
        return spec
    from .models import create_model, is_model

    spec = spec.strip()
    if is_model(spec):
        return create_model(spec, num_classes=num_classes, in_chans=in_chans, **options)
    if ".py:" in spec:
        return _from_file(spec, num_classes, in_chans)
    if _looks_like_notation(spec):
        from . import notation

        return notation.build(spec, num_classes=num_classes, in_chans=in_chans)
    from .models import get_card

    get_card(spec)  # raises with close-match suggestions
    raise ModelNotFoundError(f"unknown model {spec!r}")


def _looks_like_notation(spec: str) -> bool:
    s = spec.upper()
    return any(t in s for t in ("->", "=>", "⇒", "INPUT", "CONV", "FC"))


def _from_file(spec: str, num_classes: int | None, in_chans: int | None) -> nn.Module:
    path_s, _, name = spec.rpartition(":")
    path = Path(path_s)
    if not path.is_file():
        raise ConvnetError(
            f"model file not found: {path} (write MODEL as path/to/file.py:ClassOrFactory)"
        )
    mod_name = f"_convnet_user_{abs(hash(path.resolve()))}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:
        raise ConvnetError(f"{path}: importing it failed: {type(e).__name__}: {e}") from None
    obj = getattr(module, name, None)
    if obj is None:
        found = [
            n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, nn.Module)
        ]
        raise ConvnetError(
            f"{path} has no {name!r}; modules defined there: {', '.join(found) or 'none'}"
        )
    kwargs = {}
    params = inspect.signature(obj).parameters
    if num_classes is not None and "num_classes" in params:
        kwargs["num_classes"] = num_classes
    if in_chans is not None and "in_chans" in params:
        kwargs["in_chans"] = in_chans
    try:
        model = obj(**kwargs)
    except TypeError as e:
        raise ConvnetError(f"{spec}: cannot be called without arguments ({e})") from None
    if not isinstance(model, nn.Module):
        raise ConvnetError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model
