"""Checkpoints: atomic, exact to resume, and loadable with ``weights_only=True``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (nothing pickled as an
object), written to a temporary file, fsynced and renamed over ``last.pt`` / ``best.pt``:

- ``model``: the training weights; ``ema``: the averaged weights when EMA is on
- ``optimizer``, ``schedule``: their state dicts
- ``rng``: torch's CPU generator state as a uint8 tensor (and CUDA's, per device), so dropout
  continues exactly
- ``progress``: epoch, step within the epoch, global step, best top-1, the epoch's running sums
- ``spec``: how to rebuild the model (the MODEL string, num_classes, in_chans, input size,
  class names, normalization mean and std), ``config``: the resolved TrainConfig
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .._io import atomic_open
from ..errors import CheckpointError

FORMAT = "convnet-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` atomically with torch.save (tensors moved to the CPU)."""
    state = {"format": FORMAT, **_to_cpu(state)}
    with atomic_open(path, "wb") as f:
        torch.save(state, f)


def read_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """The raw checkpoint dict, loaded with ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt" if (path / "best.pt").is_file() else path / "last.pt"
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path} (give a run folder or its last.pt / best.pt)"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a convnet training checkpoint; load plain weights with convnet.load_weights"
        )
    return state


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"].cpu())
    if (
        "cuda" in state
        and torch.cuda.is_available()
        and len(state["cuda"]) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def build_model(
    model_spec: str,
    num_classes: int | None,
    in_chans: int | None,
    input_size: tuple[int, int, int] | None,
) -> nn.Module:
    """The untrained model a MODEL string names, for ``num_classes`` classes of ``input_size`` images.

    A pattern-language line without ``INPUT[WxHxD]`` is built for ``input_size`` (the data's
    channels and the size the images reach the model at), not the notation's 32x32x3 default.
    """
    import re

    from .._resolve import _looks_like_notation, resolve_model
    from ..models import is_model

    spec = model_spec.strip()
    if input_size and not is_model(spec) and ".py:" not in spec and _looks_like_notation(spec):
        from .. import notation

        if not re.search(r"INPUT\s*\[", spec, re.IGNORECASE):
            return notation.build(spec, num_classes=num_classes, input_size=tuple(input_size))
    return resolve_model(spec, num_classes=num_classes, in_chans=in_chans)


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild the untrained model a checkpoint's ``spec`` names."""
    model_spec = spec.get("model")
    if not model_spec:
        raise CheckpointError(
            "checkpoint does not say how to build its model (it was trained from a Python object); "
            "build the model yourself and load read_checkpoint(path)['model']"
        )
    size = spec.get("input_size")
    model = build_model(
        model_spec, spec.get("num_classes"), spec.get("in_chans"), tuple(size) if size else None
    )
    if size:
        model.default_input_size = tuple(size)
    return model


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", use_ema: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a run's checkpoint (a file, or a run folder: best.pt first).

    Returns ``(model, info)``: the model in eval mode with the evaluated weights (the EMA when the
    run kept one and ``use_ema``), and ``info`` with ``model`` (the MODEL string), ``num_classes``,
    ``in_chans``, ``input_size`` (C, H, W), ``classes``, ``mean``, ``std``, ``epoch``, ``step``,
    ``best_top1``, ``config`` and ``path``.
    """
    state = read_checkpoint(path, map_location)
    spec = dict(state.get("spec") or {})
    model = build_from_spec(spec)
    weights = state["ema"]["weights"] if use_ema and state.get("ema") else state["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: weights do not fit the model {spec.get('model')!r}: {e}"
        ) from None
    model.to(map_location).eval()
    progress = state.get("progress", {})
    info = {
        **spec,
        "input_size": tuple(spec.get("input_size") or ()),
        "epoch": int(progress.get("epoch", 0)),
        "step": int(progress.get("global_step", 0)),
        "best_top1": float(progress.get("best_top1", 0.0)),
        "config": state.get("config", {}),
        "path": str(path),
    }
    return model, info


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return (
            type(obj)(_to_cpu(v) for v in obj)
            if isinstance(obj, list)
            else [_to_cpu(v) for v in obj]
        )
    return obj
