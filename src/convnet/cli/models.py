"""``convnet models [PATTERN]``: the zoo as a table (family, year, paper, parameters, depth, MACs,
result)."""

from __future__ import annotations

import argparse

from ._args import add_format, freeze_imports

COLUMNS = ("name", "family", "year", "paper", "params", "layers", "macs", "input", "result")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the zoo: family, year, paper, parameters, MACs at the canonical input, quoted result",
        description="List the registered models matching PATTERN (a shell glob like 'resnet*' or a "
        "substring). MACs (multiply-adds, one image) at each model's canonical input are the "
        "counts `convnet summary` traces on the meta device, stored for the zoo (a model "
        "registered since is traced); FLOPs are 2 x MACs. layers: the weight layers (conv, FC) "
        "on the longest path from input to output, as the papers count depth.",
    )
    p.add_argument(
        "pattern",
        nargs="?",
        metavar="PATTERN",
        help="a shell glob like 'resnet*' or a substring (default: every model)",
    )
    add_format(p, "a table sized to the terminal")
    p.add_argument(
        "--no-macs",
        action="store_true",
        help="trace nothing: leave the MAC and layer columns empty for a model registered since "
        "the counts were stored (default: trace it)",
    )
    p.set_defaults(func=run)


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _rows(pattern: str | None, macs: bool) -> list[dict]:
    from ..errors import ModelNotFoundError
    from ..models import get_card, list_models

    freeze_imports()  # torch is imported by now
    names = list_models(pattern)
    if not names:
        raise ModelNotFoundError(f"no model matches {pattern!r}; `convnet models` lists them all")
    cards = [get_card(name) for name in names]
    counts = _macs(cards, trace=macs)
    return [
        {
            "name": card.name,
            "family": card.family,
            "year": card.year,
            "paper": card.paper,
            "params": card.params,
            "layers": counts[card.name][1],
            "macs": counts[card.name][0] if macs else None,
            "input": "x".join(str(v) for v in card.input_size),
            "result": card.result,
        }
        for card in cards
    ]


def _macs(cards: list, trace: bool = True) -> dict[str, tuple[int | None, int | None]]:
    """(MACs per image, weight layers) at each card's input: stored for the zoo
    (``models/macs.py``); a model registered since, or changed, is traced on the meta device
    (or left empty when ``trace`` is False)."""
    from ..models.macs import stored_macs, stored_weight_layers

    counts = {card.name: (stored_macs(card), stored_weight_layers(card)) for card in cards}
    missing = [card for card in cards if counts[card.name][0] is None]
    if not missing or not trace:
        return counts
    from rich.progress import Progress

    from ..analysis import summary
    from ..resolve import resolve_model

    with Progress(transient=True, disable=len(missing) < 4) as progress:
        task = progress.add_task("tracing MACs on the meta device", total=len(missing))
        for card in missing:
            model = resolve_model(card.name, meta=True).model  # no memory, no initialization
            s = summary(model, input_size=card.input_size, training_memory=False)
            counts[card.name] = (s.totals["macs"], s.totals.get("weight_layers"))
            progress.advance(task)
    return counts


def run(args: argparse.Namespace) -> int:
    rows = _rows(args.pattern, not args.no_macs)
    if args.format == "json":
        import json

        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        import csv
        import sys

        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    elif args.format == "markdown":
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + "---|" * len(COLUMNS))
        for r in rows:
            cells = [
                r["name"],
                r["family"],
                str(r["year"]),
                r["paper"],
                f"{r['params']:,}",
                "-" if r["layers"] is None else str(r["layers"]),
                _human(r["macs"]),
                r["input"],
                r["result"],
            ]
            print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    else:
        import sys

        from rich.console import Console
        from rich.table import Table

        # piped output is not cut to 80 columns; a narrow terminal drops the two prose columns
        console = Console(width=None if sys.stdout.isatty() else 200)
        columns = (
            COLUMNS
            if console.width >= 140
            else tuple(c for c in COLUMNS if c not in ("paper", "result"))
        )
        table = Table(title=f"convnet zoo: {len(rows)} models (MACs per image at the input shown)")
        wide = {"paper", "result"}  # wrap these on words; keep the rest on one line
        for col in columns:
            justify = "right" if col in ("year", "params", "layers", "macs") else "left"
            table.add_column(
                col, justify=justify, no_wrap=col not in wide, ratio=2 if col in wide else None
            )
        for r in rows:
            cells = {
                **r,
                "year": str(r["year"]),
                "params": f"{r['params']:,}",
                "layers": "-" if r["layers"] is None else str(r["layers"]),
                "macs": _human(r["macs"]),
            }
            table.add_row(*(cells[c] for c in columns))
        console.print(table)
        if columns != COLUMNS:
            print(
                "(paper and result need 140 columns: widen the terminal or use --format markdown)"
            )
    return 0
