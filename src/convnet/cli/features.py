"""``convnet features MODEL --layer NAME --data D -o codes.safetensors`` and
``convnet linear codes.safetensors [--loss softmax|svm]``: the notes' CNN codes, and a linear
classifier trained on them."""

from __future__ import annotations

import argparse
import json
import math

from ._args import add_format, whole_number


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (a share, 0 to 1)") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            f"must be in [0, 1) (a share of each class; the rest is for training), got {text}"
        )
    return value


def _strength(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (a penalty weight)") from None
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_features(subparsers)
    _register_linear(subparsers)


def _register_features(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "features",
        help="write a layer's activations (CNN codes) for every image of a data set",
        description="Run MODEL over every image of a data set, batched and without gradients, "
        "and write LAYER's output, flattened, one row per image, with its label and split "
        "(train / val / test) to a .safetensors file for `convnet linear`. The notes' transfer "
        "learning: a trained network's last hidden layer as a fixed feature extractor.",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="a checkpoint or run folder (its normalization, input size and validation split "
        "are reused), or a zoo name or pattern line (with --weights)",
    )
    p.add_argument(
        "--layer",
        default=None,
        metavar="NAME",
        help="a module path, whose output is kept (e.g. classifier.4, LeNet-5's 84-D layer), or "
        "PATH:input for a module's input (default: the input of the last Linear layer)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="data set: a name or a path (default: the one the checkpoint was trained on)",
    )
    p.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="FILE",
        help="where to write the codes, a .safetensors file (required; no default)",
    )
    p.add_argument(
        "--weights",
        default=None,
        metavar="FILE",
        help="a .safetensors or .pth state dict to load into MODEL, e.g. torchvision's "
        "(default: none)",
    )
    p.add_argument(
        "--val-split",
        type=_fraction,
        default=0.1,
        metavar="FRACTION",
        help="share of each training class written as validation rows, in [0, 1), when MODEL "
        "is not a checkpoint (a checkpoint's own split is reused) and the data has no val/ "
        "split of its own (default: 0.1)",
    )
    p.add_argument(
        "--batch",
        type=whole_number(1, "images per batch"),
        default=256,
        metavar="IMAGES",
        help="images per forward pass (default: 256)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="auto (cuda if available, else cpu), cpu, cuda or cuda:N (default: auto)",
    )
    p.add_argument(
        "--model",
        dest="model_file",
        metavar="FILE.py:NAME",
        default=None,
        help="the Python file the checkpoint's model was trained from, named again so that it "
        "may run (its sha256 must match the one recorded) (default: none)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: shown)")
    p.set_defaults(func=_run_features, writes={"out": "file"})


# convnet.features' LOSSES and REG_GRID, spelled here so that --help imports no torch
# (tests/test_features.py checks that they agree)
LOSSES = ("softmax", "svm")
REG_GRID = tuple(10.0**k for k in range(-6, 2))


def _register_linear(subparsers: argparse._SubParsersAction) -> None:
    grid = " ".join(f"{r:g}" for r in REG_GRID)
    p = subparsers.add_parser(
        "linear",
        help="train a linear classifier (softmax or SVM) on CNN codes; validation and test top-1",
        description="Fit scores = W x + b on the train rows of CODES (written by `convnet "
        "features`) with the softmax or the multiclass SVM loss plus reg * sum(W^2), for each "
        "--reg; keep the strength with the best validation top-1, then score the test rows "
        "once with it.",
    )
    p.add_argument("codes", metavar="CODES", help="a .safetensors file from convnet features")
    p.add_argument(
        "--loss",
        choices=LOSSES,
        default="softmax",
        help="softmax (cross-entropy) or svm (multiclass hinge, margin 1) (default: softmax)",
    )
    p.add_argument(
        "--reg",
        type=_strength,
        nargs="+",
        default=list(REG_GRID),
        metavar="R",
        help=f"L2 strengths to choose among on the validation rows, each >= 0 (default: {grid})",
    )
    p.add_argument(
        "--max-iter",
        type=whole_number(1, "L-BFGS iterations per strength"),
        default=300,
        metavar="N",
        help="L-BFGS iterations per strength, at least 1 (default: 300)",
    )
    p.add_argument(
        "-o",
        "--out",
        default=None,
        metavar="FILE",
        help="also write the chosen classifier as an nn.Linear state dict (weight, bias) that "
        "applies to raw codes, .safetensors or .pt (default: none)",
    )
    add_format(p, "validation and test top-1 and the strengths tried", ("text", "json"))
    p.set_defaults(func=_run_linear, writes={"out": "file"})


def _run_features(args: argparse.Namespace) -> int:
    from ..errors import ConvnetError
    from ..features import features

    if not str(args.out).endswith(".safetensors"):
        raise ConvnetError(f"-o {args.out}: codes are written as .safetensors; name the file so")
    codes = features(
        args.model,
        args.data,
        args.layer,
        weights=args.weights,
        model_file=args.model_file,
        batch_size=args.batch,
        device=args.device,
        val_split=args.val_split,
        progress=not args.quiet,
    )
    codes.save(args.out)
    n = codes.counts()
    print(
        f"{args.out}: {codes.codes.shape[0]:,} codes of {codes.codes.shape[1]:,} values "
        f"({codes.layer} of {codes.model}; {n['train']:,} train / {n['val']:,} val / "
        f"{n['test']:,} test)"
    )
    return 0


def _run_linear(args: argparse.Namespace) -> int:
    from ..features import train_linear

    r = train_linear(args.codes, loss=args.loss, regs=args.reg, max_iter=args.max_iter)
    if args.out:
        r.save(args.out)
    if args.format == "json":
        print(json.dumps(r.to_dict(), indent=1))
        return 0
    for g in r.grid:
        val = "-" if g["val_top1"] is None else f"{g['val_top1']:.2f}%"
        mark = "  <- chosen on validation" if g["reg"] == r.reg else ""
        print(f"reg {g['reg']:<8g} train top-1 {g['train_top1']:.2f}%  val top-1 {val}{mark}")
    val = "-" if r.val_top1 is None else f"{r.val_top1:.2f}%"
    test = "-" if r.test_top1 is None else f"{r.test_top1:.2f}%"
    n = r.counts
    print(
        f"linear {r.loss} on {r.weight.shape[1]:,}-D codes, reg {r.reg:g}: validation top-1 "
        f"{val} ({n.get('val', 0):,} images), test top-1 {test} ({n.get('test', 0):,} images)"
    )
    if args.out:
        print(f"classifier written to {args.out}")
    return 0
