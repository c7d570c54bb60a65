"""``convnet predict CHECKPOINT IMAGE [--top K] [--dense [--scales S ...] [--heatmap PNG]]``."""

from __future__ import annotations

import argparse

from ..limits import MAX_CLASSES
from ._args import positive_number, whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify an image with a trained checkpoint (top-5 with probabilities)",
        description="Classify IMAGE (any format PIL reads) with CHECKPOINT (a .pt file or a run folder). "
        "The image is converted to the model's channels and resized like the training data. "
        "--dense converts the FC layers to convolutions and scores every window of the image at "
        "each of --scales, averaging the class probabilities (the notes' dense evaluation).",
    )
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a .pt checkpoint, or a run folder (its best.pt)"
    )
    p.add_argument("image", metavar="IMAGE", help="an image file in any format PIL reads")
    p.add_argument(
        "--top",
        type=whole_number(1, "classes to list", MAX_CLASSES, "no model has more classes"),
        default=5,
        metavar="K",
        help="how many classes to list (default 5)",
    )
    p.add_argument("--dense", action="store_true", help="dense evaluation of the whole image")
    p.add_argument(
        "--scales",
        type=positive_number("a scale factor", 16, "16 x the training size is past dense use"),
        nargs="+",
        default=[1.0],
        metavar="FACTOR",
        help="--dense: image scale factors, each a multiple of the training size, in (0, 16] "
        "(default: 1)",
    )
    p.add_argument(
        "--shifts",
        type=whole_number(1, "passes per axis", 16, "N x N passes per scale"),
        default=1,
        metavar="N",
        help="--dense: N x N passes per scale (1..16), offset by stride / N pixels, for a map N times as "
        "dense (default: 1)",
    )
    p.add_argument(
        "--heatmap",
        default=None,
        metavar="PNG",
        help="--dense: write the top class's score map to this PNG (default: none)",
    )
    p.add_argument(
        "--model",
        dest="model_file",
        metavar="FILE.py:NAME",
        default=None,
        help="the Python file the checkpoint's model was trained from, named again so that it may "
        "run: a checkpoint never imports code by itself, and the file's sha256 must match the "
        "one recorded (default: none; zoo and pattern-line checkpoints need none)",
    )
    p.set_defaults(func=_run, writes={"heatmap": "file"})


def _run(args: argparse.Namespace) -> int:
    from ..predict import predict

    result = predict(
        args.checkpoint,
        args.image,
        top=args.top,
        dense=args.dense,
        scales=args.scales,
        shifts=args.shifts,
        heatmap=args.heatmap,
        model=args.model_file,
    )
    for rank, (name, prob) in enumerate(result["top"], 1):
        print(f"{rank}. {name:<20} {100 * prob:6.2f}%")
    if result.get("heatmap"):
        print(f"heat map: {result['heatmap']}")
    return 0
