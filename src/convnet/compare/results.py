"""What ``convnet compare`` found: one row per model, the notes' conclusions, and its files.

Units: parameters and MACs (multiply-adds per image) are counts, GMACs = MACs / 1e9; memory is in
bytes (MiB = 2**20 bytes when shown); times in milliseconds per image; throughput in images per
second; energy in joules per image; power in watts. Accuracies are percent (100 - error).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .measure import BatchTiming
from .power import NOT_AVAILABLE

MIB = 2**20

# Seed 004, section 2, reads its figures as: Inception-v4 the most accurate; VGG the most memory
# and the most operations; GoogLeNet the most efficient. Each claim, with the zoo names it means.
NOTES_CLAIMS = {
    "most accurate": ("Inception-v4", lambda name: name == "inception_v4"),
    "most memory-hungry": ("VGG", lambda name: name.startswith("vgg")),
    "most operations": ("VGG", lambda name: name.startswith("vgg")),
    "most efficient": ("GoogLeNet", lambda name: name == "googlenet"),
}


@dataclass
class ModelResult:
    """Everything measured and known about one model (see the module docstring for units)."""

    name: str  # what was asked for: a zoo name, a run folder, a pattern line
    label: str  # short and unique, for tables and figures
    family: str
    input_size: tuple[int, ...]
    params: int
    macs: int
    top1: float | None = None  # reported (a paper or a weights release), percent
    top5: float | None = None
    accuracy_source: str = ""
    own_top1: float | None = None  # measured by a training run on this machine, percent
    own_top5: float | None = None
    own_source: str = ""
    memory_batch: int | None = None
    inference_estimate: int | None = None  # bytes, from convnet.analysis
    inference_measured: int | None = None  # bytes, this machine's allocator
    train_batch: int | None = None
    training_estimate: int | None = None
    training_measured: int | None = None
    timings: list[BatchTiming] = field(default_factory=list)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def accuracy(self) -> float | None:
        """The top-1 the figure plots: the reported one, else this machine's own."""
        return self.top1 if self.top1 is not None else self.own_top1

    @property
    def memory(self) -> tuple[int, str]:
        """The memory the figure's circles show: (bytes, what it is)."""
        if self.inference_measured is not None:
            return self.inference_measured, f"inference peak, batch {self.memory_batch}, measured"
        if self.inference_estimate is not None:
            return self.inference_estimate, f"inference peak, batch {self.memory_batch}, estimated"
        return 4 * self.params, "float32 parameters"

    @property
    def inference_error(self) -> float | None:
        """``(estimate - measured) / measured``, as a fraction."""
        if self.inference_estimate is None or not self.inference_measured:
            return None
        return (self.inference_estimate - self.inference_measured) / self.inference_measured

    @property
    def training_error(self) -> float | None:
        if self.training_estimate is None or not self.training_measured:
            return None
        return (self.training_estimate - self.training_measured) / self.training_measured

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "timings"}
        d["input_size"] = list(self.input_size)
        d["gmacs"] = self.gmacs
        d["timings"] = [t.to_dict() for t in self.timings]
        return d


@dataclass
class Conclusion:
    claim: str  # "most accurate"
    model: str | None  # the label of the model the data name, None when nothing was measured
    value: str  # the number behind it, with units
    notes: str  # what seed 004 names
    verdict: str  # "agrees", "differs", "not compared", "no data"

    def line(self) -> str:
        if self.model is None:
            return f"{self.claim}: no data ({self.value}); seed 004: {self.notes}"
        return f"{self.claim}: {self.model} ({self.value}); seed 004: {self.notes}, {self.verdict}"


@dataclass
class Comparison:
    """The models compared and how they were measured. ``write(out)`` saves every output."""

    models: list[ModelResult]
    device: str
    device_name: str
    precision: str
    measured: tuple[str, ...]
    batches: tuple[int, ...]
    warmup: int
    repeats: int
    max_seconds: float
    power: str  # the meter's source, or "not available here: why"
    circle: str = "memory"  # what the accuracy figure's circle areas show: memory or params
    environment: dict[str, Any] = field(default_factory=dict)

    def conclusions(self) -> list[Conclusion]:
        """The notes' four readings of their figures, checked against these models."""
        ms = self.models
        picks: dict[str, tuple[ModelResult | None, str]] = {}
        rated = [m for m in ms if m.accuracy is not None]
        best = max(rated, key=lambda m: m.accuracy, default=None)
        picks["most accurate"] = (
            best,
            f"top-1 {best.accuracy:.1f}%" if best else "no accuracy known",
        )
        hungry = max(ms, key=lambda m: m.memory[0], default=None)
        picks["most memory-hungry"] = (
            hungry,
            f"{_mib(hungry.memory[0])} MiB, {hungry.memory[1]}" if hungry else "",
        )
        most = max(ms, key=lambda m: m.macs, default=None)
        picks["most operations"] = (most, f"{_num(most.gmacs)} GMACs per image" if most else "")
        eff = max((m for m in rated if m.macs), key=lambda m: m.accuracy / m.gmacs, default=None)
        picks["most efficient"] = (
            eff,
            f"top-1 {eff.accuracy:.1f}% / {_num(eff.gmacs)} GMACs = {eff.accuracy / eff.gmacs:,.1f} "
            "% per GMAC"
            if eff
            else "no accuracy known",
        )
        out = []
        for claim, (notes, means) in NOTES_CLAIMS.items():
            model, value = picks[claim]
            if model is None:
                out.append(Conclusion(claim, None, value, notes, "no data"))
                continue
            if not any(means(m.name) for m in ms):
                verdict = f"not compared here (no {notes} among these models)"
            else:
                verdict = "agrees" if means(model.name) else "differs"
            out.append(Conclusion(claim, model.label, value, notes, verdict))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "device_name": self.device_name,
            "precision": self.precision,
            "measured": list(self.measured),
            "batches": list(self.batches),
            "warmup": self.warmup,
            "repeats": self.repeats,
            "max_seconds": self.max_seconds,
            "power": self.power,
            "circle": self.circle,
            "environment": dict(self.environment),
            "models": [m.to_dict() for m in self.models],
            "conclusions": [c.__dict__ for c in self.conclusions()],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_csv(self) -> str:
        """One row per model and batch size (a model without timings has one row, batch empty)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for m in self.models:
            for t in m.timings or [None]:
                writer.writerow(_csv_row(m, t, self.power))
        return buf.getvalue()

    def render(self, fmt: str = "text", width: int | None = None) -> str:
        """The table and the conclusions: ``text`` (rich), ``markdown``, ``json`` or ``csv``."""
        if fmt == "json":
            return self.to_json()
        if fmt == "csv":
            return self.to_csv()
        if fmt == "markdown":
            return _markdown(self)
        return _text(self, width)

    def write(self, out: str | Path) -> list[Path]:
        """Write ``compare.json``, ``compare.csv`` and the two figures into the folder ``out``."""
        from ..io import atomic_write_bytes, atomic_write_text
        from .figures import accuracy_vs_ops, save_png, time_vs_batch

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "compare.json", out / "compare.csv"]
        atomic_write_text(written[0], self.to_json())
        atomic_write_text(written[1], self.to_csv())
        for name, draw in (
            ("accuracy_vs_ops.png", accuracy_vs_ops),
            ("time_vs_batch.png", time_vs_batch),
        ):
            fig = draw(self)
            if fig is not None:
                atomic_write_bytes(out / name, save_png(fig))
                written.append(out / name)
        return written


CSV_COLUMNS = (
    "model",
    "family",
    "input",
    "params",
    "macs",
    "gmacs",
    "top1",
    "top5",
    "accuracy_source",
    "own_top1",
    "own_top5",
    "own_source",
    "memory_batch",
    "inference_estimate_bytes",
    "inference_measured_bytes",
    "train_batch",
    "training_estimate_bytes",
    "training_measured_bytes",
    "batch",
    "runs",
    "ms_per_image",
    "images_per_s",
    "j_per_image",
    "watts",
    "power",
)


def _csv_row(m: ModelResult, t: BatchTiming | None, power: str) -> dict[str, Any]:
    return {
        "model": m.label,
        "family": m.family,
        "input": "x".join(map(str, m.input_size)),
        "params": m.params,
        "macs": m.macs,
        "gmacs": round(m.gmacs, 6),
        "top1": m.top1,
        "top5": m.top5,
        "accuracy_source": m.accuracy_source,
        "own_top1": m.own_top1,
        "own_top5": m.own_top5,
        "own_source": m.own_source,
        "memory_batch": m.memory_batch,
        "inference_estimate_bytes": m.inference_estimate,
        "inference_measured_bytes": m.inference_measured,
        "train_batch": m.train_batch,
        "training_estimate_bytes": m.training_estimate,
        "training_measured_bytes": m.training_measured,
        "batch": t.batch if t else None,
        "runs": len(t.seconds) if t else None,
        "ms_per_image": round(t.ms_per_image, 4) if t else None,
        "images_per_s": round(t.images_per_s, 3) if t else None,
        "j_per_image": round(t.j_per_image, 5) if t and t.j_per_image is not None else None,
        "watts": round(t.watts, 2) if t and t.watts is not None else None,
        "power": power if t else None,
    }


# --- the table --------------------------------------------------------------------------------


def _num(x: float) -> str:
    """Two decimals from 1 up, three significant digits below (0.000416 GMACs for LeNet-5)."""
    return f"{x:,.2f}" if x >= 1 else f"{x:.3g}"


def _mib(n: int | None) -> str:
    if n is None:
        return "-"
    v = n / MIB
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _pct(x: float | None) -> str:
    return "" if x is None else f" ({100 * x:+.1f}%)"


def _acc(m: ModelResult) -> str:
    if m.top1 is not None:
        return f"{m.top1:.1f} / {m.top5:.1f}" if m.top5 is not None else f"{m.top1:.1f} / -"
    if m.own_top1 is not None:
        top5 = f"{m.own_top5:.1f}" if m.own_top5 is not None else "-"
        return f"{m.own_top1:.1f} / {top5} (here)"
    return "-"


def table_rows(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """The table's header and cells, shared by the text, markdown and HTML renderings."""
    first, last = (c.batches[0], c.batches[-1]) if c.batches else (None, None)
    head = ["model", "input", "params (M)", "GMACs", "top-1 / top-5 %"]
    if "memory" in c.measured:
        mb = c.models[0].memory_batch if c.models else None
        tb = c.models[0].train_batch if c.models else None
        head += [
            f"inference MiB, batch {mb}: est. / meas. (err)",
            f"training MiB, batch {tb}: est. / meas. (err)",
        ]
    if "time" in c.measured:
        head += [f"ms/image @{first}", f"ms/image @{last}", f"images/s @{last}"]
        if "power" in c.measured:
            head += [f"J/image @{last}"]
    rows = []
    for m in c.models:
        row = [m.label, "x".join(map(str, m.input_size)), _num(m.params / 1e6)]
        row += [_num(m.gmacs), _acc(m)]
        if "memory" in c.measured:
            row.append(
                f"{_mib(m.inference_estimate)} / {_mib(m.inference_measured)}"
                + _pct(m.inference_error)
            )
            row.append(
                f"{_mib(m.training_estimate)} / {_mib(m.training_measured)}"
                + _pct(m.training_error)
            )
        if "time" in c.measured and m.timings:
            t0, t1 = m.timings[0], m.timings[-1]
            row += [f"{t0.ms_per_image:.1f}", f"{t1.ms_per_image:.1f}", f"{t1.images_per_s:.1f}"]
            if "power" in c.measured:
                j = t1.j_per_image
                row.append(NOT_AVAILABLE if j is None else f"{j:.3f}")
        rows.append(row + ["-"] * (len(head) - len(row)))  # a model with nothing timed
    return head, rows


def _footer(c: Comparison) -> list[str]:
    lines = [
        f"device: {c.device_name} ({c.device}), {c.precision}, channels-last; "
        f"time: median of up to {c.repeats} runs (fewer once they pass {c.max_seconds:g} s) "
        f"after {c.warmup} warm-up run(s) per batch size",
    ]
    if "power" in c.measured:
        lines.append(f"power: {c.power}")
    sources: dict[str, list[str]] = {}  # each source once, with the models it speaks for
    for m in c.models:
        source = m.accuracy_source if m.top1 is not None else m.own_source
        if source:
            sources.setdefault(source, []).append(m.label + (" (here)" if m.top1 is None else ""))
    lines += [f"top-1/top-5 of {', '.join(ms)}: {s}" for s, ms in sources.items()]
    return lines


def _text(c: Comparison, width: int | None) -> str:
    from rich.console import Console
    from rich.table import Table

    head, rows = table_rows(c)
    table = Table(title="convnet compare", title_justify="left")
    for i, h in enumerate(head):
        table.add_column(h, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*row)
    if width is None:  # the terminal's width; piped output is not cut to 80 columns
        width = shutil.get_terminal_size((220, 40)).columns if sys.stdout.isatty() else 220
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    for line in _footer(c):
        console.print(line, highlight=False, soft_wrap=True)
    for conclusion in c.conclusions():
        console.print(conclusion.line(), highlight=False, soft_wrap=True)
    return console.export_text().rstrip() + "\n"


def _markdown(c: Comparison) -> str:
    head, rows = table_rows(c)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    lines += [""] + [f"- {line}" for line in _footer(c)]
    lines += [""] + [f"- {conclusion.line()}" for conclusion in c.conclusions()]
    return "\n".join(lines) + "\n"
