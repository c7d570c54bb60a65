"""``convnet train --engine numpy``: the same model and data, trained by the NumPy reference engine.

The reference engine runs every layer from scratch (im2col convolution, pooling switches,
backprop as convolution with flipped filters); this module only turns the data into the float
arrays it takes and writes the run folder the way the PyTorch loop does (config.json, result.json,
best.pt), with the same run spec, the same learning-rate curve and the same claim on the folder.
It follows the loop's rule on splits: the best epoch is chosen on the validation split
(``convnet.data.splits``, ``--val-split``), and the test split is scored once, at the end.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..data.splits import with_validation
from ..errors import ConvnetError
from ..io import atomic_write_text
from .config import TrainConfig
from .run import Progress, prepare_model
from .run_folder import claim_run_folder


def as_arrays(data: Any, input_size: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """float32 normalized (N, C, H, W) arrays at the model's input size and int64 labels of the
    train, validation (when ``data`` has one) and test splits: (x_train, y_train[, x_val,
    y_val], x_test, y_test)."""
    from .loader import Loader

    out = []
    splits = [(data.x_train, data.y_train), (data.x_test, data.y_test)]
    if data.x_val is not None:
        splits.insert(1, (data.x_val, data.y_val))
    for x, y in splits:
        loader = Loader(x, y, 1024, input_size, data.mean, data.std, train=False)
        xs = [xb.numpy() for _, xb, _ in loader.batches(0)]
        c, h, w = input_size
        empty = np.zeros((0, c, h, w), np.float32)
        out += [np.concatenate(xs).astype(np.float32) if xs else empty, y.numpy().astype(np.int64)]
    return tuple(out)


def train_with_numpy(
    model_spec: str, data: Any, cfg: TrainConfig, *, force: bool = False
) -> dict[str, Any]:
    """Train ``model_spec`` on ``data`` with the reference engine; write and return result.json's
    dict. The run folder is claimed as the PyTorch loop claims it (``force`` moves what is there
    aside); the learning rate follows the same curve (:func:`~convnet.train.optim.lr_factor`)."""
    tuned = [f for f in ("weights", "freeze", "lr_head", "lr_backbone") if getattr(cfg, f)]
    if tuned or cfg.lr_backbone_mult != 1.0:
        flag = "--" + (tuned[0] if tuned else "lr_backbone_mult").replace("_", "-")
        raise ConvnetError(
            f"{flag}: the NumPy engine trains every layer from scratch at one rate; fine-tune "
            "with --engine torch"
        )
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

    data, split = with_validation(data, cfg.val_split)
    torch.manual_seed(cfg.seed)
    model, spec = prepare_model(model_spec, data)
    spec = dataclasses.replace(spec, split=split.to_dict())
    x_train, y_train, x_val, y_val, x_test, y_test = as_arrays(data, spec.input_size)
    if cfg.progress:
        print(f"{spec.model} on {spec.data} ({split.describe()}), NumPy engine", flush=True)
        if not split.val:
            print(
                "nothing is validated (--val-split 0): the test split is scored once, at the "
                "end, with the last epoch's weights",
                flush=True,
            )
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
        x_val,
        y_val,
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
        test=(x_test, y_test),
    )
    seconds = time.perf_counter() - t0

    def percent(key: str) -> float | None:  # train_numpy reports accuracies as fractions
        return None if raw.get(key) is None else 100.0 * float(raw[key])

    result = {  # the PyTorch loop's result.json keys (see convnet.train.fit)
        "val_top1": percent("best_top1"),
        "best_epoch": raw["best_epoch"],
        "test_top1": percent("test_top1"),
        "test_top5": percent("test_top5"),
        "checkpoint": "best" if raw["best_epoch"] else "last",
        "last_val_top1": percent("final_top1"),
        "split": split.to_dict(),
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
            best_top1=result["val_top1"] if result["val_top1"] is not None else -1.0,
            best_epoch=result["best_epoch"] or 0,
        )
        state = {
            "model": model.state_dict(),
            "spec": spec.to_dict(),
            "config": resolved,
            "progress": progress.state_dict(),
        }
        # train_numpy leaves the best epoch's weights (the last when nothing is validated)
        save_checkpoint(out / ("best.pt" if raw["best_epoch"] else "last.pt"), state)
        atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    return result
