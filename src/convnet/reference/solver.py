"""The training loop of the notes: minibatch SGD over epochs, watching validation accuracy.

Each step samples a minibatch, runs forward, computes the loss and its gradient, runs
backward and lets the optimizer update the parameters. After every epoch the learning rate is
multiplied by ``lr_decay``, accuracy is measured on a training subsample and on the validation
set, and the parameters with the best validation accuracy are kept; at the end they are loaded
back into the model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from ..errors import TrainingError
from ._blas import blas_threads
from .losses import softmax_cross_entropy, svm_hinge
from .optim import SGD, Adam, Optimizer

__all__ = ["Solver", "one_cycle"]

_LOSSES: dict[str, Callable] = {"softmax": softmax_cross_entropy, "svm": svm_hinge}


class Solver:
    """Train a reference model (anything with forward/backward/params/grads/train/eval).

    Args:
        model: a :class:`~convnet.reference.net.Net` or :class:`~convnet.reference.net.Sequential`.
        data: ``X_train`` (N, C, H, W), ``y_train`` (N,), ``X_val``, ``y_val``.
        optimizer: "sgd", "adam" or an :class:`~convnet.reference.optim.Optimizer`.
        optim_config: keyword arguments for the optimizer (lr, momentum, weight_decay, ...).
        loss: "softmax" (cross-entropy) or "svm".
        lr_decay: multiply the learning rate by this after every epoch.
        lr_schedule: instead of ``lr_decay``, a function of the global step (0-based) giving the
            multiple of the initial learning rate for that step's update, e.g. :func:`one_cycle`.
        num_epochs, batch_size: the schedule.
        num_train_samples: training images used to measure training accuracy each epoch.
        seed: for the minibatch order.
        progress: show a rich progress bar.
        blas_threads: BLAS threads while training (1 by default: a small net's products are
            faster on one thread than the hand-off to a second costs; ``None`` leaves BLAS alone).
        augment: ``f(X_batch, rng) -> X_batch`` applied to every training minibatch, e.g.
            :func:`random_shift`.
    """

    def __init__(
        self,
        model,
        data: dict[str, np.ndarray],
        optimizer: str | Optimizer = "sgd",
        optim_config: dict | None = None,
        loss: str = "softmax",
        lr_decay: float = 1.0,
        lr_schedule: Callable[[int], float] | None = None,
        num_epochs: int = 10,
        batch_size: int = 64,
        num_train_samples: int = 1000,
        eval_batch_size: int = 256,
        seed: int = 0,
        progress: bool = True,
        blas_threads: int | None = 1,
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ) -> None:
        self.model = model
        self.augment = augment
        self.blas_threads = blas_threads
        self.X_train, self.y_train = data["X_train"], np.asarray(data["y_train"])
        self.X_val, self.y_val = data["X_val"], np.asarray(data["y_val"])
        if loss not in _LOSSES:
            raise TrainingError(f"unknown loss {loss!r}; use one of {sorted(_LOSSES)}")
        self.loss_fn = _LOSSES[loss]
        if isinstance(optimizer, Optimizer):
            self.optimizer = optimizer
        else:
            cls = {"sgd": SGD, "adam": Adam}.get(optimizer)
            if cls is None:
                raise TrainingError(f"unknown optimizer {optimizer!r}; use 'sgd' or 'adam'")
            self.optimizer = cls(model, **(optim_config or {}))
        self.lr_decay, self.num_epochs, self.batch_size = lr_decay, num_epochs, batch_size
        self.lr_schedule = lr_schedule
        self.base_lr = self.optimizer.lr
        self.num_train_samples, self.eval_batch_size = num_train_samples, eval_batch_size
        self.rng = np.random.default_rng(seed)
        self.progress = progress
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.best_val_acc = -1.0
        self.best_params: dict[str, np.ndarray] | None = None
        self.seconds = 0.0
        self.images_seen = 0

    def step(self, xb: np.ndarray, yb: np.ndarray) -> float:
        """One minibatch: forward, loss, backward, update. Returns the loss."""
        self.model.train()
        scores = self.model.forward(xb)
        loss, dscores = self.loss_fn(scores, yb)
        if not np.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss}; lower the learning rate (now {self.optimizer.lr})"
            )
        self.model.zero_grad()
        self.model.backward(dscores)
        self.optimizer.step()
        self.loss_history.append(loss)
        self.images_seen += len(yb)
        return loss

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class scores in evaluation mode, in batches of ``eval_batch_size``."""
        self.model.eval()
        out = [
            self.model.forward(X[i : i + self.eval_batch_size])
            for i in range(0, len(X), self.eval_batch_size)
        ]
        self.model.train()
        return np.concatenate(out)

    def check_accuracy(self, X: np.ndarray, y: np.ndarray, num_samples: int | None = None) -> float:
        """Top-1 accuracy on (a random subsample of) X."""
        if num_samples is not None and len(X) > num_samples:
            idx = self.rng.choice(len(X), num_samples, replace=False)
            X, y = X[idx], y[idx]
        return float(np.mean(self.predict(X).argmax(axis=1) == y))

    def train(self) -> Solver:
        """Run ``num_epochs`` epochs; afterwards the model holds the best validation parameters
        (the last ones when the validation split is empty)."""
        n = len(self.X_train)
        steps = max(n // self.batch_size, 1)
        start = time.perf_counter()
        with _progress(self.progress) as bar, blas_threads(self.blas_threads):
            task = bar.add_task("numpy", total=self.num_epochs * steps) if bar else None
            for epoch in range(self.num_epochs):
                order = self.rng.permutation(n)
                for s in range(steps):
                    if self.lr_schedule is not None:
                        self.optimizer.lr = self.base_lr * self.lr_schedule(epoch * steps + s)
                    idx = order[s * self.batch_size : (s + 1) * self.batch_size]
                    xb = self.X_train[idx]
                    if self.augment is not None:
                        xb = self.augment(xb, self.rng)
                    loss = self.step(xb, self.y_train[idx])
                    if bar:
                        bar.update(
                            task,
                            advance=1,
                            description=f"epoch {epoch + 1}/{self.num_epochs} loss {loss:.3f}",
                        )
                if self.lr_schedule is None:
                    self.optimizer.lr *= self.lr_decay
                train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples)
                self.train_acc_history.append(train_acc)
                val = ""
                if len(self.X_val):  # an empty validation split: keep the last parameters
                    val_acc = self.check_accuracy(self.X_val, self.y_val)
                    self.val_acc_history.append(val_acc)
                    val = f" val {val_acc:.2%}"
                    if val_acc > self.best_val_acc:
                        self.best_val_acc = val_acc
                        self.best_params = self.model.state_dict()
                if bar:
                    bar.console.print(
                        f"epoch {epoch + 1}: loss {np.mean(self.loss_history[-steps:]):.4f} "
                        f"train {train_acc:.2%}{val}"
                    )
        self.seconds += time.perf_counter() - start
        if self.best_params is not None:
            self.model.load_state_dict(self.best_params)
        return self


def random_shift(pad: int, fill: float | np.ndarray = 0.0):
    """Augmentation: move each image by up to ``pad`` pixels in x and y, filling with ``fill``.

    The same as padding by ``pad`` and cropping the original size at a random offset (the
    notes' random crops). ``fill`` is a scalar or one value per channel: for normalized images,
    the normalized value of the background, ``-mean / std``.

    >>> x = np.arange(2 * 1 * 3 * 3, dtype=np.float32).reshape(2, 1, 3, 3)
    >>> y = random_shift(1)(x, np.random.default_rng(0))
    >>> y.shape, bool(np.isin(y[y != 0], x).all())
    ((2, 1, 3, 3), True)
    """
    if pad < 0:
        raise TrainingError(f"random_shift needs pad >= 0, got {pad}")

    def shift(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if pad == 0:
            return x
        n, c, h, w = x.shape
        xp = np.empty((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype)
        xp[...] = np.broadcast_to(np.asarray(fill, dtype=x.dtype).reshape(-1, 1, 1), (c, 1, 1))
        xp[:, :, pad : pad + h, pad : pad + w] = x
        dy, dx = rng.integers(0, 2 * pad + 1, size=(2, n))
        windows = np.lib.stride_tricks.sliding_window_view(xp, (h, w), axis=(2, 3))
        return windows[np.arange(n), :, dy, dx]  # (N, C, h, w), one offset per image

    return shift


def one_cycle(
    total_steps: int, pct: float = 0.25, div: float = 25.0, final_div: float = 1e4
) -> Callable[[int], float]:
    """The one-cycle learning-rate shape (Smith 2018) as a multiple of the peak rate.

    A cosine rise from ``1/div`` to 1 over the first ``pct`` of the steps, then a cosine fall to
    ``1/(div*final_div)``: the warm start keeps early steps with a high rate from diverging.

    >>> f = one_cycle(100)
    >>> round(f(0), 3), round(f(24), 3), f(99) < 1e-4
    (0.04, 1.0, True)
    """
    start, low = 1.0 / div, 1.0 / (div * final_div)
    up = max(pct * total_steps - 1, 1.0)
    down = max(total_steps - 1 - up, 1.0)

    def factor(step: int) -> float:
        if step <= up:
            a, b, frac = start, 1.0, step / up
        else:
            a, b, frac = 1.0, low, min((step - up) / down, 1.0)
        return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2

    return factor


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _progress(enabled: bool):
    if not enabled:
        return _NoBar()
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
    )
