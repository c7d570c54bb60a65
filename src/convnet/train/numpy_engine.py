"""``convnet train --engine numpy``: the same model and data, trained by the NumPy reference engine.

The reference engine runs every layer from scratch (im2col convolution, pooling switches,
backprop as convolution with flipped filters); this module only turns the data into the float
arrays it takes and writes the run folder the way the PyTorch loop does (config.json, result.json).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text
from ..errors import ConvnetError
from .config import TrainConfig


def as_arrays(data: Any, input_size: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """float32 normalized (N, C, H, W) train/test arrays at the model's input size, int64 labels."""
    from .loader import Loader

    out = []
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        loader = Loader(x, y, 1024, input_size, data.mean, data.std, train=False)
        xs = [xb.numpy() for _, xb, _ in loader.batches(0)]
        out += [np.concatenate(xs).astype(np.float32), y.numpy().astype(np.int64)]
    return tuple(out)


def train_with_numpy(model_spec: str, data: Any, cfg: TrainConfig) -> dict[str, Any]:
    """Train ``model_spec`` on ``data`` with the reference engine; write and return result.json's dict."""
    try:
        from ..reference.torch_bridge import train_numpy
    except ImportError as e:
        raise ConvnetError(
            f"the NumPy reference engine is not available ({e}); use --engine torch"
        ) from None
    import torch

    from .checkpoint import build_model

    torch.manual_seed(cfg.seed)
    model = build_model(model_spec, len(data.classes), data.input_size[0], data.input_size)
    size = tuple(getattr(model, "default_input_size", None) or data.input_size)
    x_train, y_train, x_test, y_test = as_arrays(data, (data.input_size[0], *size[1:]))
    out = Path(cfg.out) if cfg.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        resolved = {"model": model_spec, "data": data.name, "engine": "numpy", **cfg.to_dict()}
        atomic_write_text(out / "config.json", json.dumps(resolved, indent=2) + "\n")
    import torch.nn as nn

    from .checkpoint import save_checkpoint
    from .optim import LRSchedule

    # the same learning-rate curve as the PyTorch loop (reduce-on-plateau stays at its start value)
    steps_per_epoch = max(1, len(y_train) // cfg.batch_size)
    curve = LRSchedule(
        build_dummy_optimizer(nn.Parameter(torch.zeros(1)), cfg.lr), cfg, steps_per_epoch
    )
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
        lr_schedule=curve.factor,
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
        spec = {
            "model": model_spec,
            "num_classes": len(data.classes),
            "in_chans": data.input_size[0],
            "input_size": [data.input_size[0], *size[1:]],
            "data_size": list(data.input_size[1:]),
            "classes": list(data.classes),
            "mean": list(data.mean),
            "std": list(data.std),
        }
        state = {
            "model": model.state_dict(),
            "spec": spec,
            "config": resolved,
            "progress": {
                "epoch": result["epochs"],
                "global_step": result["epochs"] * steps_per_epoch,
                "best_top1": result["best_top1"],
            },
        }
        save_checkpoint(out / "best.pt", state)  # train_numpy leaves the best epoch's weights
        atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    return result


def build_dummy_optimizer(p, lr: float):
    import torch

    return torch.optim.SGD([p], lr=lr)
