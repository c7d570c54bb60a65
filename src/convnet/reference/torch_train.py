"""Train a torch model with the NumPy reference engine, and hand the weights back.

``train_numpy`` converts the model with :func:`~convnet.reference.torch_bridge.from_torch`,
runs the reference :class:`~convnet.reference.solver.Solver` (SGD in NumPy, the notes'
training loop) and copies the best epoch's weights into the torch model. This is what
``convnet train --engine numpy`` runs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn

from ..errors import ConversionError
from . import layers as L
from .torch_bridge import from_torch, load_into_torch

__all__ = ["train_numpy"]


def _scores_part(model: nn.Module) -> nn.Module:
    """``model`` without a final ``nn.Softmax`` (looking into nested Sequentials), sharing its
    modules; ``model`` itself when it does not end in one."""
    if not isinstance(model, nn.Sequential) or len(model) == 0:
        return model
    last = model[-1]
    if isinstance(last, nn.Softmax):
        return model[:-1]
    inner = _scores_part(last)
    return model if inner is last else nn.Sequential(*model[:-1], inner)


def train_numpy(
    model: nn.Module,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    nesterov: bool = False,
    lr_schedule: Callable[[int], float] | str | None = "onecycle",
    seed: int = 0,
    progress: bool = True,
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
) -> dict:
    """Train ``model`` in NumPy alone: convert it, run the reference Solver, copy weights back.

    x_* are float32 (N, C, H, W) arrays, already normalized; y_* int64 labels. SGD with
    momentum and weight decay (torch's formulas), cross-entropy loss, the held-out set checked
    after every epoch. ``lr_schedule`` is a function of the global step giving the multiple of
    ``lr`` to use, "onecycle" (the default, :func:`~convnet.reference.solver.one_cycle`) or
    "constant". ``augment`` transforms each training minibatch (see
    :func:`~convnet.reference.solver.random_shift`). Returns best_top1 and final_top1 (fractions), epochs, seconds,
    images_per_second, and the per-epoch ``val_top1`` and ``loss`` histories. The model ends up
    holding the parameters of the best epoch.
    """
    from .optim import SGD
    from .solver import Solver, one_cycle

    torch.manual_seed(seed)
    model = model.float().train()
    # a net that ends in a softmax trains on the scores before it (the losses take scores);
    # the shared modules get the trained weights back, and the softmax has none
    model = _scores_part(model)
    net = from_torch(model, np.ascontiguousarray(x_train[:2], dtype=np.float32))
    for layer in net.layers.values():
        if isinstance(layer, L.Dropout):
            layer.rng = np.random.default_rng(seed)
    data = {
        "X_train": np.ascontiguousarray(x_train, dtype=np.float32),
        "y_train": np.asarray(y_train, dtype=np.int64),
        "X_val": np.ascontiguousarray(x_test, dtype=np.float32),
        "y_val": np.asarray(y_test, dtype=np.int64),
    }
    opt = SGD(net, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if lr_schedule == "onecycle":
        lr_schedule = one_cycle(epochs * max(len(y_train) // batch_size, 1))
    elif lr_schedule == "constant":
        lr_schedule = None
    elif isinstance(lr_schedule, str):
        raise ConversionError(
            f"unknown lr_schedule {lr_schedule!r}; use 'onecycle', 'constant' or a function of the step"
        )
    solver = Solver(
        net,
        data,
        optimizer=opt,
        num_epochs=epochs,
        batch_size=batch_size,
        lr_schedule=lr_schedule,
        seed=seed,
        progress=progress,
        augment=augment,
    )
    solver.train()
    load_into_torch(net, model)
    return {
        "best_top1": solver.best_val_acc,
        "final_top1": solver.val_acc_history[-1],
        "epochs": epochs,
        "seconds": solver.seconds,
        "images_per_second": solver.images_seen / max(solver.seconds, 1e-9),
        "val_top1": list(solver.val_acc_history),
        "loss": [float(np.mean(c)) for c in np.array_split(solver.loss_history, epochs)],
    }
