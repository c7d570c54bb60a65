"""``convnet explain conv|pool|fc|stack``: the notes' formulas, step by step.

Plain arithmetic (:mod:`convnet.arith`): this command never imports torch.
"""

from __future__ import annotations

import argparse

from ..limits import MAX_IMAGE_SIDE
from ._args import whole_number


def _input(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument(
        "--input",
        required=True,
        metavar="CxHxW",
        help=f"input volume C x H x W in pixels, depth first as torch orders it, e.g. {example} "
        "(the output writes volumes in the notes' W x H x D order, labelled); required",
    )


# sizes in pixels and counts, capped where a larger number can only be a typo
_SIDE = whole_number(1, "pixels", MAX_IMAGE_SIDE, "no image the toolkit reads is wider")
_PAD = whole_number(0, "pixels", MAX_IMAGE_SIDE, "no image the toolkit reads is wider")
_COUNT = whole_number(1, "units", 10**7, "10 million filters or neurons is past any network")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="the notes' layer arithmetic worked step by step")
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    conv = kinds.add_parser(
        "conv", help="output size, parameters with and without sharing, im2col, MACs"
    )
    _input(conv, "3x227x227")
    conv.add_argument(
        "--filter", type=_SIDE, required=True, help="filter size F in pixels; required"
    )
    conv.add_argument("--stride", type=_SIDE, default=1, help="stride S in pixels (default 1)")
    conv.add_argument("--pad", type=_PAD, default=0, help="zero padding P in pixels (default 0)")
    conv.add_argument("--filters", type=_COUNT, required=True, help="number of filters K; required")
    conv.add_argument(
        "--dilation",
        type=_SIDE,
        default=1,
        help="dilation d: the filter spans d*(F-1)+1 (default 1)",
    )
    conv.set_defaults(func=_conv)

    pool = kinds.add_parser("pool", help="pooling output size and the share of activations dropped")
    _input(pool, "64x224x224")
    pool.add_argument("--filter", type=_SIDE, default=2, help="window size F in pixels (default 2)")
    pool.add_argument("--stride", type=_SIDE, default=2, help="stride S in pixels (default 2)")
    pool.add_argument("--pad", type=_PAD, default=0, help="padding P in pixels (default 0)")
    pool.add_argument(
        "--kind", choices=["max", "avg", "l2"], default="max", help="pooling function (default max)"
    )
    pool.set_defaults(func=_pool)

    fc = kinds.add_parser("fc", help="a fully connected layer, and the same layer as a convolution")
    _input(fc, "512x7x7")
    fc.add_argument("--outputs", type=_COUNT, required=True, help="number of neurons; required")
    fc.set_defaults(func=_fc)

    stack = kinds.add_parser(
        "stack", help="receptive field and parameters of stacked small filters"
    )
    stack.add_argument(
        "--filter", type=_SIDE, default=3, help="filter size F of each layer (default 3)"
    )
    stack.add_argument(
        "--depth",
        type=whole_number(1, "stacked layers", 1000, "the output has a line per layer"),
        default=3,
        help="number of stacked layers, 1..1000 (default 3)",
    )
    stack.add_argument(
        "--channels",
        default="C",
        help="channels per layer: a number, or C to keep it symbolic (default C)",
    )
    stack.set_defaults(func=_stack)


def _print(lines: list[str]) -> int:
    print("\n".join(lines))
    return 0


def _positive(**values: int) -> None:
    from ..errors import ShapeError

    for name, v in values.items():
        if v is not None and v < (0 if name == "pad" else 1):
            raise ShapeError(
                f"--{name} must be {'>= 0' if name == 'pad' else 'at least 1'}, got {v}"
            )


def _volume(text: str) -> tuple[int, int, int]:
    from ._args import parse_size

    return parse_size(text, volume=True)  # type: ignore[return-value]


def _conv(args: argparse.Namespace) -> int:
    from ..analysis.explain import explain_conv

    _positive(
        filter=args.filter,
        stride=args.stride,
        pad=args.pad,
        filters=args.filters,
        dilation=args.dilation,
    )
    lines = explain_conv(
        _volume(args.input), args.filter, args.stride, args.pad, args.filters, args.dilation
    )
    return _print(lines)


def _pool(args: argparse.Namespace) -> int:
    from ..analysis.explain import explain_pool

    _positive(filter=args.filter, stride=args.stride, pad=args.pad)
    return _print(explain_pool(_volume(args.input), args.filter, args.stride, args.pad, args.kind))


def _fc(args: argparse.Namespace) -> int:
    from ..analysis.explain import explain_fc

    _positive(outputs=args.outputs)
    return _print(explain_fc(_volume(args.input), args.outputs))


def _stack(args: argparse.Namespace) -> int:
    from ..analysis.explain import explain_stack
    from ..errors import ShapeError

    channels = None
    if args.channels.upper() != "C":
        if not args.channels.isdigit() or int(args.channels) < 1:
            raise ShapeError(f"--channels {args.channels!r}: give a positive number, or C")
        channels = int(args.channels)
    _positive(filter=args.filter, depth=args.depth)
    return _print(explain_stack(args.filter, args.depth, channels))
