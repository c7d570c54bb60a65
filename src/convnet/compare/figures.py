"""The notes' two comparison figures (seed 004, section 2), drawn from what was measured.

- :func:`accuracy_vs_ops`: top-1 accuracy against multiply-adds per image (GMACs, log scale),
  one circle per model whose *area* is proportional to its memory (the notes: "圆圈大小表示内存
  占用", the circle's size is the memory used) or to its parameters; labelled, with a legend
  of reference sizes.
- :func:`time_vs_batch`: forward time per image against the batch size, one line per model,
  and beside it the mean power drawn during the timed runs where a meter measured it.

Both take a :class:`~convnet.compare.results.Comparison` and return a matplotlib ``Figure``
(no pyplot state, no window).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

if TYPE_CHECKING:
    from .results import Comparison, ModelResult

MIB = 2**20
_MAX_AREA = 2400.0  # points^2 of the largest circle (about 55 pt across)
_MIN_AREA = 12.0  # so that a tiny model is still a visible dot


def _colors(n: int) -> list:
    """Distinct colours: tab10's, five dark ones, then tab20's pale shades (25 in all)."""
    from matplotlib import colormaps

    strong = [colormaps["tab10"](i) for i in range(10)]
    strong += ["#000000", "#7a5c00", "#00306e", "#006d6d", "#6e0000"]  # dark, unlike tab10's
    pale = [colormaps["tab20"](i) for i in range(1, 20, 2)]
    return [(strong + pale)[i % 25] for i in range(n)]


def _ticks_125(axis, lo: float, hi: float) -> None:
    """Ticks at 1, 2, 5 x 10^k inside [lo, hi], written as plain numbers (a log axis)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    ticks = [
        m * 10.0**k
        for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
        if lo <= m * 10.0**k <= hi
    ]
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(lambda v, _pos: f"{v:g}")
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _radius(area: float) -> float:
    """A scatter marker's radius in points: ``s`` is the square of its diameter (points^2)."""
    return math.sqrt(area) / 2


def _size_values(c: Comparison) -> tuple[list[float], str, str]:
    """The quantity each circle's area shows, its unit and the legend's title."""
    if c.circle == "params":
        return [m.params / 1e6 for m in c.models], "M", "circle area: parameters (millions)"
    values = [m.memory[0] / MIB for m in c.models]
    kinds = {m.memory[1] for m in c.models}
    what = kinds.pop() if len(kinds) == 1 else "memory (measured where possible)"
    return values, "MiB", f"circle area: {what} (MiB)"


def _nice(x: float) -> float:
    """The largest of 1, 2, 5 x 10^k not above ``x``."""
    if x <= 0:
        return 0.0
    k = math.floor(math.log10(x))
    for m in (5, 2, 1):
        if m * 10**k <= x:
            return m * 10**k
    return 10**k


def accuracy_vs_ops(c: Comparison) -> Figure:
    """Top-1 (%) vs GMACs per image, circle area = memory or parameters, every circle labelled."""
    fig = Figure(figsize=(10.0, 6.2), layout="constrained")
    ax = fig.add_subplot()
    colors = dict(zip((m.label for m in c.models), _colors(len(c.models))))
    shown = [m for m in c.models if m.accuracy is not None and m.macs > 0]
    missing = [m.label for m in c.models if m not in shown]
    values, unit, size_title = _size_values(c)
    by_label = dict(zip((m.label for m in c.models), values))
    scale = _MAX_AREA / max(values) if values and max(values) > 0 else 1.0

    def area(v: float) -> float:
        return max(_MIN_AREA, v * scale)

    ax.set_xscale("log")
    ax.set_xlabel("operations: GMACs per image (multiply-adds / 1e9; FLOPs = 2 x MACs), log scale")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("Top-1 accuracy against operations per image (seed 004, section 2)")
    ax.grid(True, which="both", alpha=0.25)
    if shown:
        xs = [m.gmacs for m in shown]
        ys = [m.accuracy for m in shown]
        ax.scatter(
            xs,
            ys,
            s=[area(by_label[m.label]) for m in shown],
            c=[colors[m.label] for m in shown],
            alpha=0.55,
            edgecolors="black",
            linewidths=0.6,
            zorder=3,
        )
        ax.set_xlim(min(xs) / 1.8, max(xs) * 1.8)
        _ticks_125(ax.xaxis, min(xs) / 1.8, max(xs) * 1.8)
        lo, hi = min(ys), max(ys)
        pad = max(2.0, 0.12 * (hi - lo))
        ax.set_ylim(lo - pad, min(hi + pad, 100 + pad / 3))  # no accuracy above 100%
        _label_points(fig, ax, shown, [area(by_label[m.label]) for m in shown])
        _size_legend(ax, values, unit, size_title, scale)
    else:
        ax.text(
            0.5,
            0.5,
            "no model here has a known top-1 accuracy\n"
            "(zoo cards give the papers' numbers; a run folder gives this machine's)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    notes = [
        "top-1: the paper's or weights release's single-crop number; '(here)': a run's test top-1"
    ]
    if missing:
        notes.append("not plotted, no accuracy known: " + ", ".join(missing))
    _note(fig, "\n".join(notes))
    return fig


def _note(fig: Figure, text: str) -> None:
    """Small grey text under the axes; the layout makes room for it (fig.text would overlap)."""
    fig.supxlabel(text, x=0.01, ha="left", fontsize=8, color="#444444", linespacing=1.4)


def _label_points(fig: Figure, ax, models: list[ModelResult], areas: list[float]) -> None:
    """Put each model's name beside its circle where it overlaps no other label or circle.

    Tries eight positions around the circle (right first) at its radius plus a gap, in display
    coordinates, and keeps the first that hits nothing already placed and stays in the axes;
    failing all, the one with the least overlap.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(fig).get_renderer()  # text sizes need a real renderer
    fig.draw_without_rendering()  # settle the layout so display coordinates are final
    box = ax.get_window_extent(renderer)
    to_px = fig.dpi / 72.0
    centres = [ax.transData.transform((m.gmacs, m.accuracy)) for m in models]
    radii = [_radius(a) * to_px for a in areas]
    margin = 2 * to_px  # keep labels a little off other circles, not just outside them
    circles = [
        (x - r - margin, y - r - margin, x + r + margin, y + r + margin)
        for (x, y), r in zip(centres, radii)
    ]
    placed: list[tuple[float, float, float, float]] = []
    directions = [(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
    order = sorted(range(len(models)), key=lambda i: -radii[i])  # big circles choose first
    for i in order:
        m, r = models[i], radii[i]
        text = ax.annotate(
            f"{m.label}{' (here)' if m.top1 is None else ''}",
            (m.gmacs, m.accuracy),
            fontsize=8.5,
            zorder=4,
            annotation_clip=False,
        )
        best, best_cost = None, math.inf
        for dx, dy in directions:
            gap = r + 3 * to_px
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            norm = math.hypot(dx, dy)
            off = (dx * gap / norm / to_px, dy * gap / norm / to_px)  # points
            text.set(ha=ha, va=va)
            text.xyann = off
            text.set_anncoords("offset points")
            bb = text.get_window_extent(renderer)
            rect = (bb.x0, bb.y0, bb.x1, bb.y1)
            cost = sum(_overlap(rect, o) for o in placed)
            cost += sum(_overlap(rect, o) for j, o in enumerate(circles) if j != i)
            outside = max(0.0, box.x0 - bb.x0) + max(0.0, bb.x1 - box.x1)
            outside += max(0.0, box.y0 - bb.y0) + max(0.0, bb.y1 - box.y1)
            cost += outside * (bb.y1 - bb.y0) * 4
            if cost < best_cost:
                best, best_cost = (ha, va, off, rect), cost
            if cost == 0:
                break
        ha, va, off, rect = best
        text.set(ha=ha, va=va)
        text.xyann = off
        placed.append(rect)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """The area two (x0, y0, x1, y1) rectangles share."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _size_legend(ax, values: list[float], unit: str, title: str, scale: float) -> None:
    """Three reference circles, round sizes spanning the models' range, beside the axes.

    Drawn as offset boxes (a circle of the exact size, its label centred beside it) rather
    than a legend, whose rows are too short for circles this large.
    """
    from matplotlib.offsetbox import AnchoredOffsetbox, DrawingArea, HPacker, TextArea, VPacker
    from matplotlib.patches import Circle

    top = _nice(max(values))
    refs = sorted({v for v in (top, _nice(top / 4), _nice(top / 16)) if v > 0}, reverse=True)
    radii = [_radius(max(_MIN_AREA, v * scale)) for v in refs]
    width = 2 * max(radii)
    rows = []
    for v, r in zip(refs, radii):
        area = DrawingArea(width, 2 * r)
        area.add_artist(Circle((width / 2, r), r, fc="#bbbbbb", ec="black", lw=0.6))
        label = f"{v:,.0f} {unit}" if v >= 1 else f"{v:g} {unit}"
        rows.append(
            HPacker(
                children=[area, TextArea(label, textprops={"fontsize": 8})],
                align="center",
                pad=0,
                sep=6,
            )
        )
    heading = TextArea(title.replace(": ", ":\n", 1), textprops={"fontsize": 8})
    box = VPacker(children=[heading, *rows], align="left", pad=0, sep=8)
    anchored = AnchoredOffsetbox(
        loc="upper left",
        child=box,
        bbox_to_anchor=(1.02, 1.0),
        bbox_transform=ax.transAxes,
        frameon=False,
        borderpad=0,
    )
    ax.add_artist(anchored)


def time_vs_batch(c: Comparison) -> Figure | None:
    """Forward ms per image vs batch size per model; a power panel (W) where it was measured.

    None when no forward time was measured.
    """
    timed = [m for m in c.models if m.timings]
    if not timed:
        return None
    powered = [m for m in timed if any(t.watts is not None for t in m.timings)]
    panels = 2 if powered else 1
    fig = Figure(figsize=(6.0 * panels + 2.6, 5.0), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    colors = dict(zip((m.label for m in c.models), _colors(len(c.models))))
    markers = "osD^v<>ph*"
    batches = sorted({t.batch for m in timed for t in m.timings})
    ax = axes[0]
    for i, m in enumerate(timed):
        ax.plot(
            [t.batch for t in m.timings],
            [t.ms_per_image for t in m.timings],
            marker=markers[i % len(markers)],
            color=colors[m.label],
            label=m.label,
        )
    ys = [t.ms_per_image for m in timed for t in m.timings]
    if max(ys) / max(min(ys), 1e-9) > 20:
        ax.set_yscale("log")
        _ticks_125(ax.yaxis, min(ys) / 1.3, max(ys) * 1.3)
    ax.set_ylabel("forward time per image (ms)")
    ax.set_title(f"Forward time per image ({c.device_name}, {c.precision})", fontsize=10)
    if panels == 2:
        pax = axes[1]
        for m in powered:
            pts = [(t.batch, t.watts) for t in m.timings if t.watts is not None]
            pax.plot(
                *zip(*pts),
                marker=markers[timed.index(m) % len(markers)],
                color=colors[m.label],
                label=m.label,
            )
        pax.set_ylabel("mean power during the timed runs (W)")
        pax.set_title(c.power, fontsize=8)
    for a in axes:
        a.set_xscale("log", base=2)
        a.set_xticks(batches, [str(b) for b in batches])
        a.minorticks_off()
        a.set_xlabel("batch size (images)")
        a.grid(True, which="both", alpha=0.25)
    # legend entries in the order the lines end, slowest on top, so each is easy to find
    ranked = sorted(range(len(timed)), key=lambda i: -timed[i].timings[-1].ms_per_image)
    handles = [
        Line2D([], [], color=colors[timed[i].label], marker=markers[i % len(markers)])
        for i in ranked
    ]
    labels = [timed[i].label for i in ranked]
    fig.legend(handles, labels, loc="outside right upper", fontsize=8.5, title="model")
    if panels == 1 and "power" in c.measured:
        _note(fig, f"power: {c.power}")
    return fig


def save_png(fig: Figure, dpi: int = 130) -> bytes:
    """The figure as PNG bytes."""
    from ..viz import figure_bytes

    return figure_bytes(fig, "png", dpi=dpi)
