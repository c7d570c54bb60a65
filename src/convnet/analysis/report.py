"""Render a :class:`~convnet.analysis.summary.Summary` as a table, markdown, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .summary import LayerRow, Summary

FORMATS = ("table", "markdown", "json", "csv")


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return str(n)


def human_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def rf_text(rf: dict | None) -> str:
    if rf is None:
        return "all"

    def one(v):
        return "x".join(str(x) for x in v) if isinstance(v, list) else str(v)

    return f"{one(rf['size'])} /{one(rf['jump'])} @{one(rf['start'])}"


def _cells(r: LayerRow, itemsize: int) -> list[str]:
    mem = (
        human_bytes(r.activations * itemsize) if r.new_memory else ("no copy" if r.output else "-")
    )
    return [
        r.type + (" (shared)" if r.shared else ""),
        r.hyper,
        r.volume,
        f"{r.activations:,}",
        mem,
        f"{r.weights:,}" if r.weights else "",
        f"{r.biases:,}" if r.biases else "",
        human_count(r.macs) if r.macs else "",
        rf_text(r.rf),
    ]


HEADERS = [
    "Layer",
    "Type",
    "F S P",
    "Output",
    "Activations",
    "Memory",
    "Weights",
    "Biases",
    "MACs",
    "RF size /jump @start",
]
NUMERIC = {"Output", "Activations", "Memory", "Weights", "Biases", "MACs"}  # right-justified
# Left out in this order where the table is wider than the terminal: a number cut short by an
# ellipsis ("12.8 …") reads as another number, so whole columns go instead.
OPTIONAL = ("F S P", "RF size /jump @start", "Biases", "Activations")


def totals_lines(s: Summary) -> list[str]:
    t = s.totals
    lines = [
        f"Parameters: {t['params']:,} (trainable {t['trainable_params']:,}, frozen {t['frozen_params']:,}); "
        f"weights {t['weights']:,} + biases {t['biases']:,}",
        f"Multiply-adds: {human_count(t['macs'])} MACs per image ({human_count(t['flops'])} FLOPs)",
        f"Activations: {t['activations']:,} values per image (input included) = "
        f"{human_bytes(t['forward_bytes'])} forward in {s.dtype}, x2 for backward = {human_bytes(t['forward_backward_bytes'])}",
        f"Parameter memory: {human_bytes(t['param_bytes'])}; with gradients and optimizer state "
        f"{human_bytes(t['param_grad_optimizer_bytes'])}",
    ]
    if t.get("weight_layers") is not None:
        from .depth import describe

        lines.insert(
            1,
            f"Weight layers: {describe(t['weight_layer_kinds'])} on the longest path from input "
            "to output, as the papers count depth",
        )
    if t.get("training_bytes") is not None:
        lines.append(
            f"Training memory at batch {s.batch_size}: {human_bytes(t['training_bytes'])} estimated peak "
            f"(the notes' rule, params x (2 + optimizer state) + 2 x activations x batch: "
            f"{human_bytes(t['notes_training_bytes'])})"
        )
    if t.get("inference_bytes") is not None:
        lines.append(
            f"Inference memory at batch {s.batch_size} (no gradients): "
            f"{human_bytes(t['inference_bytes'])} estimated peak (parameters and buffers, the "
            f"batch, and {human_bytes(t['inference_activation_bytes'])} of activations alive "
            "at once, the notes' test time)"
        )
    if t.get("max_batch") is not None:
        lines.append(f"Largest batch that fits in the given memory: {t['max_batch']:,}")
    if t.get("max_inference_batch") is not None:
        lines.append(
            f"Largest inference batch that fits in the given memory: {t['max_inference_batch']:,}"
        )
    return lines


def _group_rows(s: Summary) -> list[tuple[str, list[str] | None, int]]:
    """Rows with container headers inserted where a new group starts: (label, cells, depth)."""
    out: list[tuple[str, list[str] | None, int]] = []
    open_groups: list[str] = []
    itemsize = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}[s.dtype]
    for r in s.rows:
        parts = r.path.split(".") if r.path else []
        ancestors = [".".join(parts[:i]) for i in range(1, len(parts))]
        ancestors = [a for a in ancestors if a in s.containers]
        while open_groups and open_groups[-1] not in ancestors:
            open_groups.pop()
        for a in ancestors:
            if a not in open_groups:
                out.append((f"{a.split('.')[-1]} ({s.containers[a]})", None, len(open_groups)))
                open_groups.append(a)
        label = parts[-1] if parts else (r.path or s.model)
        out.append((label, _cells(r, itemsize), len(open_groups)))
    return out


def _table_rows(grouped: list[tuple[str, list[str] | None, int]]) -> list[list[str]]:
    """The header and one row of cells per line of the table (a group's line: its label)."""
    rows = [list(HEADERS)]
    rows += [
        ["  " * d + label, *(cells or [""] * (len(HEADERS) - 1))] for label, cells, d in grouped
    ]
    return rows


def _columns_that_fit(rows: list[list[str]], width: int) -> list[int]:
    """Indices of the columns to show: all, or without OPTIONAL ones, in order, until the table
    (each column as wide as its widest cell, two spaces apart) fits ``width``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS))]
    keep = list(range(len(HEADERS)))
    for name in OPTIONAL:
        if sum(widths[i] for i in keep) + 2 * (len(keep) - 1) <= width:
            break
        keep.remove(HEADERS.index(name))
    return keep


def _plain_table(
    title: str, rows: list[list[str]], keep: list[int], width: int
) -> list[str] | None:
    """The lines rich prints for the summary's borderless table, without rich's layout engine.

    Rich measures and wraps every cell (a second for DenseNet-121's 560 rows); when the table
    fits the width, its layout is simple: each column as wide as its widest cell, columns two
    spaces apart, the title on its own line. None where rich's wrapping or markup would change
    the text (too wide, a title longer than the table, brackets, non-ASCII): render with rich.
    """
    rows = [[row[i] for i in keep] for row in rows]
    texts = [title, *(c for row in rows for c in row)]
    if any("[" in t or not t.isascii() for t in texts):
        return None
    widths = [max(len(row[i]) for row in rows) for i in range(len(keep))]
    table_width = sum(widths) + 2 * (len(widths) - 1)
    if table_width > width or len(title) > table_width:
        return None
    right = [HEADERS[i] in NUMERIC for i in keep]
    lines = [title]
    for row in rows:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        lines.append("  ".join(cells))
    return lines


def render(s: Summary, fmt: str = "table", width: int | None = None) -> str:
    if fmt == "json":
        return json.dumps(s.to_dict(), indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(
            [
                "path",
                "type",
                "hyper",
                "output",
                "activations",
                "new_memory",
                "weights",
                "biases",
                "params",
                "macs",
                "rf_size",
                "rf_jump",
                "rf_start",
            ]
        )
        for r in s.rows:
            rf = r.rf or {}
            w.writerow(
                [
                    r.path,
                    r.type,
                    r.hyper,
                    r.volume,
                    r.activations,
                    r.new_memory,
                    r.weights,
                    r.biases,
                    r.params,
                    r.macs,
                    rf.get("size", "all"),
                    rf.get("jump", ""),
                    rf.get("start", ""),
                ]
            )
        return buf.getvalue()
    head = f"{s.model}: input {'x'.join(map(str, s.input))} (C x H x W), batch {s.batch_size}, {s.dtype}"
    if fmt == "markdown":
        lines = [f"**{head}**", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        for label, cells, depth in _group_rows(s):
            name = "&nbsp;&nbsp;" * depth + label
            lines.append("| " + " | ".join([name, *(cells or [""] * (len(HEADERS) - 1))]) + " |")
        lines += [""] + [f"- {x}" for x in totals_lines(s)]
        lines += [f"- warning: {w}" for w in s.warnings]
        return "\n".join(lines) + "\n"
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    grouped = _group_rows(s)
    width = width or 160
    rows = _table_rows(grouped)
    keep = _columns_that_fit(rows, width)
    left_out = [h for i, h in enumerate(HEADERS) if i not in keep]
    notes = []
    if left_out:
        notes.append(
            f"(left out to fit {width} columns: {', '.join(left_out)}; a wider terminal or "
            "--format csv shows them)"
        )
    plain = _plain_table(head, rows, keep, width)
    if plain is not None:
        lines = [*plain, *notes, *totals_lines(s), *(f"warning: {w}" for w in s.warnings)]
        return "\n".join(line.rstrip() for line in lines) + "\n"
    from rich.console import Console
    from rich.table import Table

    table = Table(title=head, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for i in keep:
        right = HEADERS[i] in NUMERIC
        table.add_column(HEADERS[i], justify="right" if right else "left", no_wrap=i != 2)
    for (label, cells, depth), row in zip(grouped, rows[1:]):
        if cells is None:
            table.add_row("  " * depth + f"[bold]{label}[/bold]")
        else:
            table.add_row(*(row[i] for i in keep))
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None)
    console.print(table)
    for line in notes:
        console.print(line, highlight=False, soft_wrap=True)
    for line in totals_lines(s):
        console.print(line, highlight=False, soft_wrap=True)
    for w in s.warnings:
        console.print(f"warning: {w}", highlight=False, soft_wrap=True)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
