"""``convnet summary MODEL``: the notes' layer table for any model."""

from __future__ import annotations

import argparse

from ..errors import ConvnetError
from ._args import add_format, freeze_imports, parse_size, whole_number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="per-layer volumes, memory, weights, MACs and receptive fields, as the notes tabulate them",
        description="Print the notes' layer table for MODEL: a zoo name, a pattern-language line, "
        "or path/to/file.py:Name.",
    )
    p.add_argument("model", metavar="MODEL", help="zoo name, pattern-language line or file.py:Name")
    p.add_argument(
        "--input",
        metavar="CxHxW",
        help="input size in pixels, C x H x W (e.g. 3x224x224), or H x W or one size like 224 "
        "with the model's depth; default: the model's own",
    )
    p.add_argument(
        "--batch",
        type=whole_number(1, "images per batch", 1 << 20, "past a million images is a typo"),
        metavar="IMAGES",
        help="images per batch (1..1048576) for the memory estimates, a simulated training step and a "
        "forward pass without gradients (inference), run only when --batch or --memory is given (default: no estimate; batch 1 for the "
        "notes' rule of thumb)",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "bfloat16"],
        default="float32",
        help="the type of weights and activations, for the byte counts (default: float32)",
    )
    p.add_argument(
        "--optimizer",
        choices=["sgd", "momentum", "adam"],
        default="momentum",
        help="optimizer state in the training memory: sgd none, momentum one value per weight, "
        "adam two (default: momentum)",
    )
    p.add_argument(
        "--memory",
        type=float,
        metavar="GB",
        help="report the largest training batch and the largest inference batch whose "
        "memory fits in GB gigabytes, (0, 1e6] (default: none)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="a stride or size that does not fit is an error (default: a warning)",
    )
    p.add_argument(
        "--advice",
        action="store_true",
        help="instead of the table, list where the model departs from the notes' layer sizing "
        "rules (an input divisible by 2 many times; 3x3, at most 5x5 convs with S=1 and "
        "P=(F-1)/2; 2x2/2 or 3x3/2 pools; larger filters only at the first layer) and what the "
        "notes say each costs; prints nothing for a model that follows them all (default: off)",
    )
    add_format(p, "the notes' layer table, sized to the terminal")
    p.add_argument(
        "--num-classes",
        type=whole_number(1, "classes"),
        metavar="N",
        help="classes of the classifier (default: the model's)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil

    from ..analysis import summary
    from ..resolve import resolve_model

    freeze_imports()  # torch is imported by now
    try:  # (C, H, W), or (H, W) with the model's depth
        given = parse_size(args.input) if args.input else None
    except ConvnetError:  # W x H x D at first sight: read again once the model's depth is known
        given = ()
    build_at = given if given and len(given) == 3 else None  # a line without INPUT
    model = resolve_model(
        args.model, num_classes=args.num_classes, input_size=build_at, meta=True
    ).model
    default = getattr(model, "default_input_size", None)
    if given == ():
        given = parse_size(args.input, channels=default[0] if default else None)
    if given is not None:
        size = given if len(given) == 3 else (default[0] if default else 3, *given)
    elif default is not None:
        size = tuple(default)
    else:
        raise ConvnetError(f"{args.model}: give --input C x H x W (e.g. --input 3x224x224)")
    if args.advice:
        from ..analysis.advice import advice_text

        text = advice_text(model, size, args.format)
        if text:
            print(text)
        return 0
    if args.batch is not None and args.batch < 1:
        raise ConvnetError(f"--batch must be at least 1, got {args.batch}")
    if args.memory is not None and not args.memory > 0:
        raise ConvnetError(f"--memory must be a positive number of GB, got {args.memory:g}")
    if args.memory is not None and not args.memory <= 1e6:  # also inf
        raise ConvnetError(
            f"--memory must be at most 1e6 GB (a petabyte: more than any machine has), "
            f"got {args.memory:g}"
        )
    s = summary(
        model,
        size,
        args.batch,
        dtype=args.dtype,
        optimizer=args.optimizer,
        memory_gb=args.memory,
        strict=args.strict,
    )
    s.model = args.model if len(args.model) < 60 else s.model
    width = max(120, shutil.get_terminal_size((160, 40)).columns)
    fmt = "table" if args.format == "text" else args.format  # Summary.render calls text "table"
    print(s.render(fmt, width=width), end="" if fmt in ("json", "csv") else "\n")
    return 0
