"""``convnet train --engine numpy``: the same model and data, trained by the NumPy reference engine.

The reference engine runs every layer from scratch (im2col convolution, pooling switches,
backprop as convolution with flipped filters); this module only turns the data into the float
arrays it takes and writes the run folder the way the PyTorch loop does (config.json, result.json,
best.pt), with the same run spec, the same learning-rate curve and the same claim on the folder.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConvnetError
from ..io import atomic_write_text
from .config import TrainConfig
from .run import Progress, prepare_model
from .run_folder import claim_run_folder


def as_arrays(data: Any, input_size: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """float32 normalized (N, C, H, W) train/test arrays at the model's input size, int64 labels."""
    from .loader import Loader

    out = []
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        loader = Loader(x, y, 1024, input_size, data.mean, data.std, train=False)
        xs = [xb.numpy() for _, xb, _ in loader.batches(0)]
        out += [np.concatenate(xs).astype(np.float32), y.numpy().astype(np.int64)]
    return tuple(out)


def train_with_numpy(
    model_spec: str, data: Any, cfg: TrainConfig, *, force: bool = False
) -> dict[str, Any]:
    """Train ``model_spec`` on ``data`` with the reference engine; write and return result.json's
    dict. The run folder is claimed as the PyTorch loop claims it (``force`` moves what is there
    aside); the learning rate follows the same curve (:func:`~convnet.train.optim.lr_factor`)."""
    try:
        from ..reference.torch_bridge import train_numpy
    except ImportError as e:
        raise ConvnetError(
            f"the NumPy reference engine is not available ({e}); use --engine torch"
        ) from None
    with claim_run_folder(cfg.out, force=force) as out:
        return _train(train_numpy, model_spec, data, cfg, out)


def _train(train_numpy, model_spec: str, data: Any, cfg: TrainConfig, out: Path | None) -> dict:
    import torch

    from .checkpoint import save_checkpoint
    from .optim import lr_factor

    torch.manual_seed(cfg.seed)
    model, spec = prepare_model(model_spec, data)
    x_train, y_train, x_test, y_test = as_arrays(data, spec.input_size)
    resolved = {"model": spec.model, "data": spec.data, "engine": "numpy", **cfg.to_dict()}
    if out is not None:
        atomic_write_text(out / "config.json", json.dumps(resolved, indent=2) + "\n")
    # the PyTorch loop's learning-rate curve (reduce-on-plateau stays at its start value)
    steps_per_epoch = max(1, len(y_train) // cfg.batch_size)
    augment = None
    if cfg.crop_padding:
        from ..reference.solver import random_shift

        background = -np.asarray(data.mean, dtype=np.float32) / np.asarray(data.std, np.float32)
        augment = random_shift(cfg.crop_padding, fill=background)
    t0 = time.perf_counter()
    raw = train_numpy(
        model,
        x_train,
        y_train,
        x_test,
        y_test,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        nesterov=cfg.nesterov,
        lr_schedule=lambda step: lr_factor(step, cfg, steps_per_epoch),
        seed=cfg.seed,
        progress=cfg.progress,
        augment=augment,
    )
    seconds = time.perf_counter() - t0
    # train_numpy reports accuracies as fractions
    result = {
        "best_top1": 100.0 * float(raw["best_top1"]),
        "final_top1": 100.0 * float(raw["final_top1"]),
        "epochs": int(raw.get("epochs", cfg.epochs)),
        "seconds": round(seconds, 3),
        "images_per_second": round(float(raw.get("images_per_second", 0.0)), 1),
        "engine": "numpy",
        "status": "done",
        "out": str(out) if out else None,
    }
    if out is not None:
        progress = Progress(
            epoch=result["epochs"],
            global_step=result["epochs"] * steps_per_epoch,
            best_top1=result["best_top1"],
        )
        state = {
            "model": model.state_dict(),
            "spec": spec.to_dict(),
            "config": resolved,
            "progress": progress.state_dict(),
        }
        save_checkpoint(out / "best.pt", state)  # train_numpy leaves the best epoch's weights
        atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    return result
