"""A run's records: metrics.jsonl (one JSON object per epoch), metrics.csv, curves.png.

Every file is rewritten atomically from the in-memory records, so a run killed at any moment
leaves complete files, and a resumed run drops the records of epochs it is about to redo.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_write_text

COLUMNS = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "seconds",
    "images_per_second",
)


class RunLog:
    """The per-epoch records of a run folder (``out=None``: kept in memory only)."""

    def __init__(self, out: Path | None, resume: bool = False):
        self.out = out
        self.records: list[dict[str, Any]] = []
        if out is not None and resume and (out / "metrics.jsonl").is_file():
            for line in (out / "metrics.jsonl").read_text().splitlines():
                if line.strip():
                    self.records.append(json.loads(line))

    def truncate(self, epochs_done: int) -> None:
        """Forget records of epochs >= ``epochs_done`` (1-based epoch numbers above it)."""
        self.records = [r for r in self.records if r["epoch"] <= epochs_done]

    def append(self, record: dict[str, Any]) -> None:
        self.records.append({k: _clean(record.get(k)) for k in COLUMNS})
        self.write()

    def write(self) -> None:
        if self.out is None:
            return
        atomic_write_text(
            self.out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in self.records)
        )
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records)
        atomic_write_text(self.out / "metrics.csv", buf.getvalue())

    def plot(self) -> Path | None:
        """Loss and top-1 per epoch, train and validation, saved as curves.png."""
        if self.out is None or not self.records:
            return None
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figures

        epochs = [r["epoch"] for r in self.records]
        fig = Figure(figsize=(10, 4))
        # fixed margins: a layout engine doubles the time of this small figure (0.7 s -> 1.3 s
        # on a 2-core machine), and every training run draws it
        fig.subplots_adjust(left=0.07, right=0.985, bottom=0.13, top=0.91, wspace=0.22)
        ax_loss, ax_acc = fig.subplots(1, 2)
        for key, label, ax in (
            ("train_loss", "train", ax_loss),
            ("val_loss", "validation", ax_loss),
            ("train_top1", "train", ax_acc),
            ("val_top1", "validation top-1", ax_acc),
            ("val_top5", "validation top-5", ax_acc),
        ):
            pts = [(e, r[key]) for e, r in zip(epochs, self.records) if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=label)
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            ax.legend()
        path = self.out / "curves.png"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        from ..io import atomic_write_bytes

        atomic_write_bytes(path, buf.getvalue())
        return path


class EpochSums:
    """This process's running training loss and top-1 hits over an epoch.

    Kept as device tensors and added to without reading them back, so a step costs no device
    sync; ``loss`` sums ``loss x batch size`` (float64) and ``correct`` counts arg-max hits.
    """

    def __init__(self, loss_sum: float, correct: int, device: torch.device | str = "cpu"):
        self.loss = torch.tensor(loss_sum, dtype=torch.float64, device=device)
        self.correct = torch.tensor(correct, dtype=torch.int64, device=device)

    @torch.no_grad()
    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss.double() * y.shape[0]
        self.correct += (logits.argmax(1) == y).sum()


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, 6)
    return v


def print_epoch(record: dict[str, Any], epochs: int) -> None:
    """One line per epoch, e.g. ``epoch 3/8  loss 0.1234  acc 96.10%  val 98.40% (top-5 99.90%) ...``."""
    parts = [
        f"epoch {record['epoch']}/{epochs}",
        f"loss {record['train_loss']:.4f}",
        f"acc {record['train_top1']:6.2f}%",
    ]
    if record.get("val_top1") is not None:
        parts.append(
            f"val loss {record['val_loss']:.4f}  top-1 {record['val_top1']:6.2f}%  top-5 {record['val_top5']:6.2f}%"
        )
    parts += [
        f"lr {record['lr']:.3g}",
        f"{record['images_per_second']:,.0f} img/s",
        f"{record['seconds']:.1f} s",
    ]
    print("  ".join(parts), flush=True)


def report_line(result: dict[str, Any]) -> str:
    """Validation and test in one line: 'validation top-1 98.50% (epoch 7, best.pt)  test
    top-1 98.10%  top-5 99.90%', or 'nothing validated; test top-1 ... (last epoch's weights)'."""
    test = f"test top-1 {result['test_top1']:.2f}%  top-5 {result['test_top5']:.2f}%"
    if result.get("val_top1") is None:
        return f"nothing validated; {test} (the last epoch's weights)"
    return f"validation top-1 {result['val_top1']:.2f}% (epoch {result['best_epoch']}, best.pt)  {test}"


def print_report(result: dict[str, Any], final: dict[str, Any]) -> None:
    """The final report: the kept checkpoint's validation top-1 and its test top-1 and top-5,
    then the test split's per-class accuracy and confusion matrix (``final``)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    console.print(
        f"{report_line(result)}  ({final['n']} test images, {result['epochs']} epochs, "
        f"{result['seconds']:.1f} s, {result['images_per_second']:,.0f} img/s)",
        soft_wrap=True,
    )
    classes = final["classes"]
    if len(classes) > 20:  # a 100 x 100 matrix helps nobody on a terminal; it is in confusion.json
        worst = sorted((v, c) for c, v in final["per_class"].items() if v is not None)[:10]
        console.print("lowest per-class top-1: " + ", ".join(f"{c} {v:.1f}%" for v, c in worst))
        return
    table = Table(
        title="test confusion matrix (rows: true class, columns: predicted)", show_lines=False
    )
    table.add_column("class")
    table.add_column("top-1", justify="right")
    for c in classes:
        table.add_column(str(c)[:6], justify="right")
    for i, c in enumerate(classes):
        acc = final["per_class"][c]
        row = [str(v) if v else "." for v in final["confusion"][i]]
        table.add_row(str(c), "-" if acc is None else f"{acc:.1f}%", *row)
    console.print(table)


class EpochBar:
    """A rich progress bar for one epoch on stderr: loss, accuracy, images/s, ETA (rank 0, terminals only)."""

    def __init__(self, enabled: bool, epoch: int, epochs: int, total: int, start: int):
        self.progress = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:  # a log file gets the one line per epoch, not bar redraws
            return
        self.progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeRemainingColumn(),
            transient=True,
            console=console,
        )
        self.task = self.progress.add_task("train", total=total, completed=start, stats="")
        self.progress.start()

    def update(self, done: int, loss: float, acc: float, images: int, seconds: float) -> None:
        if self.progress is None:
            return
        rate = images / max(seconds, 1e-9)
        loss_s = f"{loss:.4f}" if math.isfinite(loss) else str(loss)
        self.progress.update(
            self.task, completed=done, stats=f"loss {loss_s}  acc {acc:5.2f}%  {rate:,.0f} img/s"
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
