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
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..io import atomic_open, load_error_reason

FORMAT = "convnet-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` atomically with torch.save (tensors moved to the CPU)."""
    state = {"format": FORMAT, **_to_cpu(state)}
    try:
        with atomic_open(path, "wb") as f:
            torch.save(state, f)
    except OSError as e:  # a full disk, a read-only folder: the earlier file stays as it was
        raise CheckpointError(f"cannot write the checkpoint {path}: {e.strerror or e}") from None


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
        with warnings.catch_warnings():  # torch's note on a pickle protocol is not the user's
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({load_error_reason(e)})"
        ) from None
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


def save_training_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    ema: Any,
    progress: dict[str, Any],
    spec: dict[str, Any],
    config: dict[str, Any],
) -> None:
    """Save everything a run needs to continue exactly (see the module docstring for the keys):
    the weights, the optimizer's, schedule's and EMA's states, the RNG state, the progress, the
    run's spec and its resolved config."""
    save_checkpoint(
        path,
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "rng": rng_state(),
            "progress": dict(progress),
            "spec": spec,
            "config": config,
        },
    )


def restore_training_state(
    state: dict[str, Any],
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Any,
    ema: Any,
) -> None:
    """Load a training checkpoint's weights and optimizer, schedule, EMA and RNG states.

    The optimizer keeps this run's hyperparameters (learning rate, momentum, weight decay, betas):
    only its buffers come from the checkpoint, so a resume with a changed ``--lr`` trains at the
    new rate from the resumed step. With unchanged settings they are the saved values anyway.
    """
    hyper = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        set_rng_state(state["rng"])
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(
            f"{path}: cannot resume from it ({type(e).__name__}: {first}); start a new --out"
        ) from None
    for group, h in zip(optimizer.param_groups, hyper):
        group.update(h)


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    use_ema: bool = True,
    *,
    model: str | nn.Module | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from a run's checkpoint (a file, or a run folder: best.pt first).

    Returns ``(model, info)``: the model in eval mode with the evaluated weights (the EMA when the
    run kept one and ``use_ema``), and ``info`` with ``model`` (the MODEL string), ``num_classes``,
    ``in_chans``, ``input_size`` (C, H, W), ``classes``, ``mean``, ``std``, ``source``,
    ``epoch``, ``step``, ``best_top1``, ``config`` and ``path``.

    Loading runs no code the checkpoint names: a run trained from ``file.py:Name`` needs
    ``model="file.py:Name"`` (the file's sha256 must match the record), or a module to load the
    weights into (see ``convnet.resolve``).
    """
    from ..resolve import resolve_model

    r = resolve_model(Path(path), model=model, map_location=map_location, use_ema=use_ema)
    return r.model, r.checkpoint


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
