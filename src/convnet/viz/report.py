"""One self-contained HTML page for a training run: config, summary, curves, confusion matrix,
first-layer filters, activation maps and the feature hierarchy.

Everything is inside the file: CSS in a ``<style>`` element, figures as ``data:`` URIs (SVG
for the line plots, PNG for the image grids), no script and no external fetch, so the page
can be mailed, archived or opened offline and looks the same everywhere.
"""

from __future__ import annotations

import base64
import html
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..errors import ConvnetError
from ..resolve import Resolved, resolve_model
from ._images import conv_layer_paths, figure_bytes

_CSS = """
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: #1d2330;
       background: #f5f6f8; margin: 0; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 34px 0 10px;
     border-bottom: 1px solid #e1e4ea; padding-bottom: 4px; }
.sub { color: #5b6475; margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { background: #eef3fb; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card b { display: block; font-size: 22px; } .card span { color: #5b6475; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #e6e8ee; padding: 3px 10px; text-align: left; vertical-align: top; }
th { background: #f0f2f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.cols { columns: 2 320px; column-gap: 32px; } .cols table { width: 100%; }
figure { margin: 12px 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #5b6475; font-size: 13px; } .note { color: #8a5a00; font-size: 13px; }
code { background: #f0f2f6; padding: 0 4px; border-radius: 3px; }
"""


def build_report(
    run: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    images: int = 3,
    dpi: int = 100,
    model: str | None = None,
) -> Path:
    """Write ``run/report.html`` (or ``output``) for the run folder ``run``; return its path.

    Sections are drawn from whatever the run holds: ``config.json``, ``result.json``,
    ``metrics.jsonl``, ``confusion.json`` and a checkpoint (``best.pt``, else ``last.pt``);
    ``images`` test images of the run's data feed the activation maps. ``model`` names the
    ``file.py:Name`` a run was trained from (a checkpoint never imports it by itself).
    """
    from ..io import atomic_write_text

    run = Path(run)
    if not run.is_dir():
        raise ConvnetError(f"run folder not found: {run} (give runs/NAME as the trainer wrote it)")
    held = ("config.json", "metrics.jsonl", "best.pt", "last.pt", "leaderboard.json")
    if not any((run / f).is_file() for f in held):
        raise ConvnetError(
            f"{run} is not a run folder: it has no config.json, metrics.jsonl or checkpoint "
            "(nor a search's leaderboard.json)"
        )
    page = render_report(run, images=images, dpi=dpi, model=model)
    out = Path(output) if output is not None else run / "report.html"
    atomic_write_text(out, page)
    return out


def render_report(run: Path, *, images: int = 3, dpi: int = 100, model: str | None = None) -> str:
    """The report's HTML text (see ``build_report``)."""
    config = _read_json(run / "config.json")
    result = _read_json(run / "result.json")
    conf = _read_json(run / "confusion.json")
    body: list[str] = [f"<h1>{_e(run.name)}</h1>", _subtitle(run, config)]
    body.append(_cards(result, conf))
    if config:
        body += ["<h2>Configuration</h2>", _config_table(config)]
    loaded, why = _checkpoint(run, model)
    if loaded is not None:
        body += ["<h2>Model</h2>", _summary_table(loaded)]
    if (run / "metrics.jsonl").is_file():
        from .curves import curves

        body += [
            "<h2>Training curves</h2>",
            _figure(
                curves(run, title=run.name),
                "svg",
                dpi,
                "Loss, accuracy and learning rate per epoch.",
            ),
        ]
    if conf and conf.get("confusion"):
        from .curves import confusion

        body += [
            "<h2>Confusion matrix</h2>",
            _figure(
                confusion(conf["confusion"], conf.get("classes")),
                "svg",
                dpi,
                f"Test set, {conf.get('n', int(np.sum(conf['confusion'])))} images; rows true class, columns predicted.",
            ),
        ]
    if (run / "compare" / "compare.json").is_file():  # `convnet compare RUN ...` wrote it
        body += comparison_section(run / "compare")
    searched = (run / "leaderboard.json").is_file()  # `convnet search --out RUN` wrote it
    if searched:
        body += search_section(run)
    if loaded is not None:
        body += _learned(loaded, config, images, dpi)
    elif why and not searched:
        body.append(f"<p class='note'>No filters or activation maps: {_e(why)}</p>")
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(run.name)}: convnet run report</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConvnetError(f"{path}: not valid JSON ({e})") from None


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _subtitle(run: Path, config: dict | None) -> str:
    parts = []
    if config:
        parts += [
            f"model <code>{_e(config.get('model', '?'))}</code>",
            f"data <code>{_e(config.get('data', '?'))}</code>",
        ]
    stamp = datetime.fromtimestamp(max(p.stat().st_mtime for p in run.iterdir()), tz=timezone.utc)
    parts.append(f"last written {stamp:%Y-%m-%d %H:%M} UTC")
    return f"<p class='sub'>{' · '.join(parts)}</p>"


def _cards(result: dict | None, conf: dict | None) -> str:
    src = dict(result or {})
    if conf and conf.get("split") == "test":  # confusion.json scores the test split
        src.setdefault("test_top1", conf.get("top1"))
        src.setdefault("test_top5", conf.get("top5"))
    items = [
        ("val_top1", "validation top-1 (best.pt)", "{:.2f}%"),
        ("best_epoch", "best epoch", "{}"),
        ("test_top1", "test top-1", "{:.2f}%"),
        ("test_top5", "test top-5", "{:.2f}%"),
        ("test_loss", "test loss", "{:.4f}"),
        # runs from before the three splits chose their best epoch on the held-out split
        ("best_top1", "best held-out top-1 (older run: chosen on it)", "{:.2f}%"),
        ("final_top1", "last held-out top-1 (older run)", "{:.2f}%"),
        ("epochs", "epochs", "{}"),
        ("seconds", "training time", "{:.1f} s"),
        ("images_per_second", "images / s", "{:,.0f}"),
        ("status", "status", "{}"),
    ]
    cards = [
        f"<div class='card'><b>{_e(fmt.format(src[k]))}</b><span>{_e(label)}</span></div>"
        for k, label, fmt in items
        if src.get(k) is not None
    ]
    return f"<div class='cards'>{''.join(cards)}</div>" if cards else ""


def _config_table(config: dict) -> str:
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
        for k, v in config.items()
    )
    return f"<div class='cols'><table>{rows}</table></div>"


def _checkpoint(run: Path, model: str | None) -> tuple[Resolved | None, str]:
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            return resolve_model(run / name, model=model), ""
    return None, "the run folder holds no best.pt or last.pt"


def _summary_table(loaded: Resolved) -> str:
    from ..analysis import summary

    s = summary(loaded.model, input_size=loaded.input_size).to_dict()
    head = [
        "layer",
        "type",
        "hyperparameters",
        "output (C, H, W)",
        "params",
        "MACs",
        "receptive field",
    ]
    rows = []
    for r in s["rows"]:
        rf = r.get("rf") or {}
        out = "x".join(str(v) for v in r["output"]) if r.get("output") else ""
        rows.append(
            f"<tr><td>{_e(r['path'])}</td><td>{_e(r['type'])}</td><td>{_e(r.get('hyper', ''))}</td>"
            f"<td>{_e(out)}</td><td class='n'>{r['params']:,}</td><td class='n'>{r['macs']:,}</td>"
            f"<td class='n'>{_e(rf.get('size', '') if isinstance(rf, dict) else rf)}</td></tr>"
        )
    t = s.get("totals", {})
    foot = (
        f"<p>{_e(type(loaded.model).__name__)} at input {_e('x'.join(map(str, loaded.input_size)))}: "
        f"{t.get('params', sum(r['params'] for r in s['rows'])):,} parameters, "
        f"{t.get('macs', sum(r['macs'] for r in s['rows'])):,} multiply-adds (MACs) per image.</p>"
    )
    th = "".join(f"<th>{h}</th>" for h in head)
    return f"{foot}<table><tr>{th}</tr>{''.join(rows)}</table>"


def _learned(loaded: Resolved, config: dict | None, images: int, dpi: int) -> list[str]:
    from .activations import activations
    from .filters import filters
    from .overlay import overlay

    model = loaded.model
    convs = conv_layer_paths(model)
    if not convs:
        return ["<p class='note'>The model has no Conv2d layer: no filters or activation maps.</p>"]
    out = [
        "<h2>First-layer filters</h2>",
        _figure(
            filters(model, convs[0], max_filters=96),
            "png",
            dpi,
            f"{convs[0]}: each filter scaled to its own range.",
        ),
    ]
    picks, labels, why = _test_images(loaded, config, images)
    if not picks:
        out.append(f"<p class='note'>No activation maps: {_e(why)}</p>")
        return out
    kw = {"input_size": loaded.input_size, "mean": loaded.mean, "std": loaded.std}
    out += [
        "<h2>Activation maps</h2>",
        _figure(
            activations(model, picks[0], convs[0], top=16, **kw),
            "png",
            dpi,
            f"{convs[0]} on a test image ({labels[0]}): the 16 most active 2D maps.",
        ),
        _figure(
            overlay(model, picks, convs[-1], labels=labels, **kw),
            "png",
            dpi,
            f"{convs[-1]}: its 4 most active channels over {len(picks)} test images, one scale per channel.",
        ),
    ]
    out += _hierarchy_section(loaded, config, dpi)
    return out


HIERARCHY_IMAGES = 500  # test images the hierarchy section scans (seconds for LeNet-5 on a CPU)


def _hierarchy_section(loaded: Resolved, config: dict | None, dpi: int) -> list[str]:
    """The feature-hierarchy page (``convnet viz hierarchy``) on the run's test images."""
    from .hierarchy import hierarchy
    from .patches import load_images

    try:
        images = load_images(config["data"], loaded.input_size, limit=HIERARCHY_IMAGES)
        fig = hierarchy(loaded.model, images, mean=loaded.mean, std=loaded.std)
    except ConvnetError as e:
        return [f"<p class='note'>No feature hierarchy: {_e(e)}</p>"]
    caption = (
        f"Every conv layer, first to last: for its 4 strongest channels, the deconvnet "
        f"projections of the strongest unit in each of the top 9 of {len(images)} test images "
        "(left; grey = no signal) and the image patches under them (right), both cropped to the "
        "layer's receptive field, whose size the row label gives. Deeper layers see larger "
        "regions and respond to larger parts."
    )
    return ["<h2>Feature hierarchy</h2>", _figure(fig, "png", dpi, caption)]


def _test_images(
    loaded: Resolved, config: dict | None, n: int
) -> tuple[list[np.ndarray], list[str], str]:
    """``n`` test images of distinct classes from the run's data, as (H, W, C) uint8 arrays."""
    spec = (config or {}).get("data")
    if not spec:
        return [], [], "config.json does not name the data set"
    from ..data import load

    try:
        data = load(spec, progress=False)
    except ConvnetError as e:
        return [], [], f"the data set {spec!r} cannot be loaded here ({e})"
    seen: set[int] = set()
    picks, labels = [], []
    for i in range(len(data.y_test)):
        y = int(data.y_test[i])
        if y in seen:
            continue
        seen.add(y)
        picks.append(data.x_test[i].permute(1, 2, 0).numpy())
        labels.append(f"test {i}: {data.classes[y]}")
        if len(picks) == n:
            break
    return picks, labels, ""


def _figure(fig: Figure, fmt: str, dpi: int, caption: str) -> str:
    data = base64.b64encode(figure_bytes(fig, fmt, dpi=dpi)).decode("ascii")
    mime = "image/svg+xml" if fmt == "svg" else "image/png"
    return (
        f"<figure><img alt='{_e(caption)}' src='data:{mime};base64,{data}'>"
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def comparison_section(folder: Path) -> list[str]:
    """``convnet compare``'s table, conclusions and two figures, from the files it wrote."""
    data = _read_json(folder / "compare.json") or {}
    head = [
        "model",
        "input",
        "params (M)",
        "GMACs",
        "top-1 / top-5 %",
        "inference MiB est. / meas.",
    ]
    head += ["ms / image (batch)", "J / image"]
    rows = []
    for m in data.get("models", []):
        t = m.get("timings") or [{}]
        own = m.get("top1") is None  # a run's own test accuracy, not a reported one
        acc, top5 = (m.get("own_top1"), m.get("own_top5")) if own else (m["top1"], m.get("top5"))
        top5 = "-" if top5 is None else f"{top5:.1f}"
        cells = [m["label"], "x".join(map(str, m["input_size"])), f"{m['params'] / 1e6:.2f}"]
        cells += [
            f"{m['gmacs']:.3g}",
            "-" if acc is None else f"{acc:.1f} / {top5}{' (here)' if own else ''}",
        ]
        cells.append(
            " / ".join(_mib(m.get(k)) for k in ("inference_estimate", "inference_measured"))
        )
        cells.append(f"{t[-1]['ms_per_image']:.1f} ({t[-1]['batch']})" if "batch" in t[-1] else "-")
        joules = t[-1].get("j_per_image")
        cells.append("not measured" if joules is None else f"{joules:.3f}")
        rows.append("".join(f"<td>{_e(c)}</td>" for c in cells))
    table = f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"
    table += "".join(f"<tr>{r}</tr>" for r in rows) + "</table>"
    notes = [
        f"{c['claim']}: {c['model']} ({c['value']}); seed 004: {c['notes']}, {c['verdict']}"
        for c in data.get("conclusions", [])
        if c.get("model")
    ]
    out = [
        "<h2>Comparison</h2>",
        f"<p class='sub'>{_e(data.get('device_name', ''))}, "
        f"{_e(data.get('precision', ''))}; power: {_e(data.get('power', ''))}</p>",
        table,
    ]
    out.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    for name, caption in (
        ("accuracy_vs_ops.png", "Top-1 accuracy against GMACs per image; circle area: memory."),
        ("time_vs_batch.png", "Forward time per image against the batch size."),
    ):
        if (folder / name).is_file():
            png = base64.b64encode((folder / name).read_bytes()).decode("ascii")
            out.append(
                f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{png}'>"
                f"<figcaption>{_e(caption)}</figcaption></figure>"
            )
    return out


SEARCH_ROWS = 10  # leaderboard lines shown in the report


def search_section(folder: Path) -> list[str]:
    """``convnet search``'s leaderboard (the best lines), trial counts and its two figures, from
    the files it wrote (leaderboard.json, pareto.png, controller.png)."""
    data = _read_json(folder / "leaderboard.json") or {}
    head = [
        "#", "trial", "line", "val top-1 %", "epochs", "params", "MACs", "train s", "test top-1 %"
    ]  # fmt: skip
    rows = []
    for r in data.get("rows", [])[:SEARCH_ROWS]:
        cells = [
            r["rank"], r["trial"], r["line"], f"{r['val_top1']:.2f}", r.get("epochs") or "-",
            f"{r['params']:,}", f"{r['macs']:,}",
            "-" if r.get("seconds") is None else f"{r['seconds']:.1f}",
            "-" if r.get("test_top1") is None else f"{r['test_top1']:.2f}",
        ]  # fmt: skip
        rows.append("".join(f"<td>{_e(c)}</td>" for c in cells))
    table = f"<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"
    table += "".join(f"<tr>{r}</tr>" for r in rows) + "</table>"
    s = data.get("settings", {})
    counts = ", ".join(f"{v} {k}" for k, v in data.get("counts", {}).items() if v)
    out = [
        "<h2>Architecture search</h2>",
        f"<p class='sub'>space {_e(s.get('space', '?'))}, controller "
        f"{_e(s.get('controller', '?'))}, objective {_e(s.get('objective', '?'))}, data "
        f"{_e(s.get('data', '?'))}; trials: {_e(counts)}. Validation top-1 ranks the lines; "
        "only the retrained lines were scored on test, once.</p>",
        table,
    ]
    pick = data.get("chosen")
    if pick:
        out.append(
            f"<p>Chosen on validation after retraining: trial {_e(pick['trial'])}, "
            f"{_e(pick['line'])} (validation {pick['final_val_top1']:.2f}%, test "
            f"{pick['test_top1']:.2f}%, {pick['macs']:,} MACs).</p>"
        )
    for name, caption in (
        ("pareto.png", "Validation top-1 against multiply-adds; the Pareto front ringed."),
        ("controller.png", "The controller's reward per trial and its moving average."),
    ):
        if (folder / name).is_file():
            png = base64.b64encode((folder / name).read_bytes()).decode("ascii")
            out.append(
                f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{png}'>"
                f"<figcaption>{_e(caption)}</figcaption></figure>"
            )
    return out


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:,.1f}"
