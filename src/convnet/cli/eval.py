"""``convnet eval CHECKPOINT [--data D] [--split test|val|train] [--tta flip|multicrop|10crop] [--ensemble CKPT ...]``."""

from __future__ import annotations

import argparse
import json

from ._args import add_format, whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a checkpoint (or an ensemble) on a data set's test (or validation) split",
        description="Top-1, top-5, loss, per-class accuracy and the confusion matrix of CHECKPOINT "
        "(a .pt file or a run folder). --ensemble averages the class probabilities of several "
        "checkpoints (the notes' 7-net AlexNet ensemble); --tta averages over test-time views.",
    )
    p.add_argument(
        "checkpoint", metavar="CHECKPOINT", help="a .pt checkpoint, or a run folder (its best.pt)"
    )
    p.add_argument(
        "--data", default=None, help="data set (default: the one the checkpoint was trained on)"
    )
    p.add_argument(
        "--split",
        choices=("test", "val", "train"),
        default="test",
        help="which split to score: test, or val / train as the checkpoint's run split its "
        "training data (the recorded --val-split) (default: test)",
    )
    p.add_argument(
        "--tta",
        choices=("flip", "multicrop", "10crop"),
        default=None,
        help="flip: image + mirror; multicrop: 4 corners + centre of a padded image, and mirrors; "
        "10crop: AlexNet's 4 corner + centre crops of the model's input from the image resized "
        "as in training (--resize 256), and mirrors (default: none, the image alone)",
    )
    p.add_argument(
        "--ensemble",
        nargs="+",
        default=[],
        metavar="CKPT",
        help="more checkpoints to average the class probabilities with (default: none)",
    )
    p.add_argument(
        "--batch",
        type=whole_number(1, "images per batch", 65536, "a larger batch only costs memory"),
        default=512,
        metavar="IMAGES",
        help="images per batch, 1..65536 (default: 512)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (cuda if available, else cpu), cpu, cuda or cuda:N (default: auto)",
    )
    add_format(p, "top-1, top-5, loss and per-class accuracy", ("text", "json"))
    p.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
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
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..train import evaluate

    r = evaluate(
        [args.checkpoint, *args.ensemble],
        args.data,
        split=args.split,
        tta=args.tta,
        batch_size=args.batch,
        device=args.device,
        model=args.model_file,
    )
    if args.format == "json":
        print(json.dumps(r, indent=1))
        return 0
    what = f"{len(r['models'])} models" if len(r["models"]) > 1 else r["models"][0]
    print(
        f"{what}  {r['split']} split  tta {r['tta']}  {r['n']} images  top-1 {r['top1']:.2f}%  "
        f"top-5 {r['top5']:.2f}%  loss {r['loss']:.4f}"
    )
    per_class = "  ".join(f"{c} {v:.1f}%" for c, v in r["per_class"].items() if v is not None)
    print(f"per class: {per_class}")
    return 0
