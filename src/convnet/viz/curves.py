"""Figures of a training run: loss and accuracy curves, learning rate, confusion matrix.

A run folder ``runs/NAME/`` holds ``metrics.jsonl``, one JSON object per epoch with
``epoch, step, lr, train_loss, train_top1, val_loss, val_top1, val_top5, seconds,
images_per_second``; accuracies are fractions in [0, 1] or percentages, drawn as percent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..errors import ConvnetError

_TRAIN, _VAL = "#1f77b4", "#d62728"


def read_metrics(run: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of ``run/metrics.jsonl`` (or of the file ``run`` itself), in order.

    A torn last line (a run killed mid-write) is skipped; any other bad line is an error.
    """
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        raise ConvnetError(
            f"no metrics at {path}: give a run folder runs/NAME that has metrics.jsonl"
        )
    lines = path.read_text().splitlines()
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break
            raise ConvnetError(f"{path}:{i + 1}: not a JSON object") from None
    if not records:
        raise ConvnetError(f"{path} has no records yet: the run has not finished an epoch")
    return records


def _series(records: Sequence[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r.get("epoch", i + 1), r[key]) for i, r in enumerate(records) if r.get(key) is not None]
    if not pts:
        return np.array([]), np.array([])
    x, y = zip(*pts)
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


def _percent(y: np.ndarray) -> np.ndarray:
    return y * 100.0 if y.size and np.nanmax(y) <= 1.0 + 1e-9 else y


def curves(run: str | os.PathLike | Sequence[dict], *, title: str | None = None) -> Figure:
    """Loss, accuracy (top-1, and validation top-5) and learning rate against epoch.

    ``run`` is a run folder, a ``metrics.jsonl`` file, or the records themselves. The best
    validation top-1 epoch is marked.
    """
    records = read_metrics(run) if isinstance(run, (str, os.PathLike)) else list(run)
    if not records:
        raise ConvnetError("no metrics to plot")
    has_lr = any(r.get("lr") is not None for r in records)
    fig = Figure(figsize=(13.0 if has_lr else 9.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 3 if has_lr else 2, width_ratios=[1, 1, 0.75] if has_lr else [1, 1])
    ax_loss, ax_acc = axes[0], axes[1]
    for key, color, label, style in (
        ("train_loss", _TRAIN, "train", "-"),
        ("val_loss", _VAL, "validation", "-"),
    ):
        x, y = _series(records, key)
        if x.size:
            ax_loss.plot(
                x, y, style, color=color, label=label, marker="o" if x.size < 30 else None, ms=3
            )
    ax_loss.set_title("loss", fontsize=10)
    ax_loss.set_ylabel("cross-entropy")
    for key, color, label, style in (
        ("train_top1", _TRAIN, "train top-1", "-"),
        ("val_top1", _VAL, "validation top-1", "-"),
        ("val_top5", _VAL, "validation top-5", ":"),
    ):
        x, y = _series(records, key)
        if x.size:
            ax_acc.plot(
                x,
                _percent(y),
                style,
                color=color,
                label=label,
                marker="o" if x.size < 30 else None,
                ms=3,
            )
    x, y = _series(records, "val_top1")
    if x.size:
        b = int(np.nanargmax(y))
        ax_acc.annotate(
            f"best {_percent(y)[b]:.2f}% (epoch {x[b]:g})",
            (x[b], _percent(y)[b]),
            xytext=(0, -22),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            arrowprops={"arrowstyle": "->", "color": "0.3"},
        )
    ax_acc.set_title("accuracy", fontsize=10)
    ax_acc.set_ylabel("%")
    if has_lr:
        x, y = _series(records, "lr")
        axes[2].step(x, y, where="post", color="0.25")
        if y.size and np.all(y > 0) and y.max() / y.min() > 20:
            axes[2].set_yscale("log")
        axes[2].set_title("learning rate", fontsize=10)
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, frameon=False)
    fig.suptitle(title or "training curves", fontsize=11)
    return fig


def confusion(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    classes: Sequence[str] | None = None,
    *,
    normalize: bool = True,
    title: str | None = None,
) -> Figure:
    """A confusion matrix: rows the true class, columns the predicted class.

    With ``normalize`` each row is divided by its sum (the recall of that class on the
    diagonal); cells show the counts when the matrix is small enough to read.
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ConvnetError(f"a confusion matrix is square; got shape {m.shape}")
    n = m.shape[0]
    classes = [str(c) for c in (classes if classes is not None else range(n))]
    if len(classes) != n:
        raise ConvnetError(f"{len(classes)} class names for a {n}x{n} confusion matrix")
    rows = m.sum(1, keepdims=True)
    shown = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0) if normalize else m
    side = min(9.0, 2.2 + 0.42 * n)
    fig = Figure(figsize=(side + 1.2, side), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if m[i, j]:
                    color = "white" if shown[i, j] > 0.5 * (shown.max() or 1) else "0.15"
                    ax.text(j, i, f"{m[i, j]:g}", ha="center", va="center", fontsize=7, color=color)
        ax.set_xticks(
            range(n), classes, rotation=45 if max(map(len, classes)) > 2 else 0, fontsize=8
        )
        ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(
        im, ax=ax, shrink=0.8, label="fraction of the true class" if normalize else "count"
    )
    acc = float(np.trace(m) / m.sum()) if m.sum() else 0.0
    ax.set_title(title or f"confusion matrix (accuracy {acc * 100:.2f}%)", fontsize=10)
    return fig
