"""``convnet models [PATTERN]``: the zoo as a table (family, year, paper, parameters, MACs, result)."""

from __future__ import annotations

import argparse

from ._args import add_format

COLUMNS = ("name", "family", "year", "paper", "params", "macs", "input", "result")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the zoo: family, year, paper, parameters, MACs at the canonical input, quoted result",
        description="List the registered models matching PATTERN (a shell glob like 'resnet*' or a "
        "substring). MACs (multiply-adds, one image) are traced on the meta device at each "
        "model's canonical input; FLOPs are 2 x MACs.",
    )
    p.add_argument(
        "pattern",
        nargs="?",
        metavar="PATTERN",
        help="a shell glob like 'resnet*' or a substring (default: every model)",
    )
    add_format(p, "a table sized to the terminal")
    p.add_argument("--no-macs", action="store_true", help="skip the MAC count (instant)")
    p.set_defaults(func=run)


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def _rows(pattern: str | None, macs: bool) -> list[dict]:
    from rich.progress import Progress

    from .. import summary
    from ..errors import ModelNotFoundError
    from ..models import get_card, list_models
    from ..resolve import resolve_model

    names = list_models(pattern)
    if not names:
        raise ModelNotFoundError(f"no model matches {pattern!r}; `convnet models` lists them all")
    rows = []
    with Progress(transient=True, disable=not macs or len(names) < 4) as progress:
        task = progress.add_task("tracing MACs on the meta device", total=len(names))
        for name in names:
            card = get_card(name)
            count = None
            if macs:
                model = resolve_model(name, meta=True).model  # no memory, no initialization cost
                count = summary(model, input_size=card.input_size, training_memory=False).totals[
                    "macs"
                ]
            rows.append(
                {
                    "name": name,
                    "family": card.family,
                    "year": card.year,
                    "paper": card.paper,
                    "params": card.params,
                    "macs": count,
                    "input": "x".join(str(v) for v in card.input_size),
                    "result": card.result,
                }
            )
            progress.advance(task)
    return rows


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
            justify = "right" if col in ("year", "params", "macs") else "left"
            table.add_column(
                col, justify=justify, no_wrap=col not in wide, ratio=2 if col in wide else None
            )
        for r in rows:
            cells = {
                **r,
                "year": str(r["year"]),
                "params": f"{r['params']:,}",
                "macs": _human(r["macs"]),
            }
            table.add_row(*(cells[c] for c in columns))
        console.print(table)
        if columns != COLUMNS:
            print(
                "(paper and result need 140 columns: widen the terminal or use --format markdown)"
            )
    return 0
