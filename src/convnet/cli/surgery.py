"""``convnet surgery MODEL_OR_CHECKPOINT --input 224 --out converted.safetensors``.

Converts the fully connected head to convolutions, prints each change with its shapes and the
score-map size a larger image gets, and saves the converted state dict.
"""

from __future__ import annotations

import argparse

from ._args import parse_size, whole_number


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "surgery",
        help="convert FC layers to convolutions (FC -> CONV) for dense evaluation",
        description=(
            "Turn each Linear after the conv trunk into a Conv2d (the first with F = the trunk's "
            "spatial output at --input, the rest 1x1) so the network slides over larger images."
        ),
        epilog=(
            "Reload a saved conversion with: fc_to_conv(model, input_size).load_state_dict("
            "convnet.io.load_tensors(PATH))"
        ),
    )
    p.add_argument(
        "model",
        metavar="MODEL_OR_CHECKPOINT",
        help="zoo name, pattern line, file.py:Name, or a checkpoint",
    )
    p.add_argument(
        "--input",
        metavar="CxHxW",
        help="training input size in pixels: C x H x W (e.g. 3x224x224), H x W, or one size like "
        "224 (default: the model's, or the checkpoint's)",
    )
    p.add_argument(
        "-o",
        "--out",
        "--output",
        dest="out",
        metavar="PATH",
        help="write the converted state dict to PATH, .safetensors or .pt (default: write nothing)",
    )
    p.add_argument(
        "--dense",
        metavar="SIZE",
        help="image size H x W (or one number) in pixels to report the score map for "
        "(default: the input + 5 strides)",
    )
    p.add_argument(
        "--weights",
        metavar="PATH",
        help="weights to load into a zoo or file model first (default: none, untrained)",
    )
    p.add_argument(
        "--num-classes",
        type=whole_number(1, "classes"),
        metavar="N",
        help="classes of the head, for zoo, pattern or file models (default: the model's)",
    )
    p.add_argument(
        "--in-chans",
        type=whole_number(1, "channels"),
        metavar="C",
        help="input channels, for zoo or file models (default: the model's)",
    )
    p.add_argument(
        "--model",
        dest="model_file",
        metavar="FILE.py:NAME",
        default=None,
        help="the Python file a checkpoint's model was trained from, named again so that it may "
        "run: a checkpoint never imports code by itself, and the file's sha256 must match the "
        "one recorded (default: none; zoo and pattern-line checkpoints need none)",
    )
    p.set_defaults(func=run, writes={"out": "file"})


def _load(args) -> tuple[object, str, tuple[int, ...] | None]:
    from ..resolve import resolve_model

    r = resolve_model(
        args.model,
        model=args.model_file,
        num_classes=args.num_classes,
        in_chans=args.in_chans,
        weights=args.weights,
    )
    return r.model, str((r.checkpoint or {}).get("model") or r.name), r.input_size


def run(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from ..io import save_tensors
    from ..surgery import fc_to_conv
    from ..surgery.graph import propagate

    size = parse_size(args.input) if args.input else None  # (H, W) or (C, H, W)
    dense = parse_size(args.dense, "--dense")[-2:] if args.dense else None  # before any building
    status = Console(stderr=True).status
    with status(f"building {args.model} and converting its FC layers"):
        model, name, ckpt_size = _load(args)
        converted = fc_to_conv(model, size or ckpt_size)
    conv = converted.conversion
    c, h, w = conv.input_size
    sy, sx = conv.stride
    print(f"{name} at {c}x{h}x{w}: {conv.num_classes} classes, total stride {sy}x{sx}")
    for step in conv.steps:
        print(f"  {step}")
    dh, dw = dense or (h + 5 * sy, w + 5 * sx)
    out = propagate(converted, (c, dh, dw), batch=1)
    print(
        f"a {dh}x{dw} image gives a {out[2]}x{out[3]}x{out[1]} score map: the {h}x{w} windows "
        f"every {sy} pixels, in one pass"
    )
    if args.out:
        meta = {
            "format": "convnet.surgery",
            "model": name,
            "input_size": f"{c}x{h}x{w}",
            "stride": f"{sy}x{sx}",
            "steps": json.dumps([str(s) for s in conv.steps]),
        }
        state = converted.state_dict()
        with status(f"writing {args.out}"):
            save_tensors(args.out, state, meta)
        print(f"saved {len(state)} tensors to {args.out}")
    return 0
