"""``convnet report``: one self-contained HTML page for a training run."""

from __future__ import annotations

from ._args import whole_number


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a run's self-contained HTML report",
        description="Write one HTML file (figures inlined, no network fetches) with the run's config, "
        "model summary, curves, confusion matrix, first-layer filters, activation maps and the "
        "feature hierarchy (top patches and deconvnet projections of every conv layer).",
    )
    p.add_argument("run", metavar="RUN", help="run folder runs/NAME")
    p.add_argument(
        "-o",
        "--out",
        "--output",
        dest="output",
        default=None,
        help="the HTML file to write (default: RUN/report.html)",
    )
    p.add_argument(
        "--images",
        type=whole_number(1, "test images for the activation maps"),
        default=3,
        help="how many test images the activation maps show (default: 3)",
    )
    p.add_argument(
        "--model",
        dest="model_file",
        metavar="FILE.py:NAME",
        default=None,
        help="the Python file the run's model was trained from, named again so that it may "
        "run: a checkpoint never imports code by itself, and the file's sha256 must match the "
        "one recorded (default: none; zoo and pattern-line checkpoints need none)",
    )
    p.set_defaults(func=_report, writes={"output": "file"})


def _report(args) -> int:
    from ..viz import build_report

    print(build_report(args.run, args.output, images=args.images, model=args.model_file))
    return 0
