"""``convnet compare [MODELS...] [--family F]``: the notes' comparison of architectures, measured."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from ._args import add_format, parse_size

MAX_BATCH = 4096  # the same bound as convnet.compare.run.MAX_BATCH (kept torch-free here)
MAX_SIZES = 64
MEASURES = ("time", "memory", "power")


def parse_batches(text: str) -> tuple[int, ...]:
    """Batch sizes, smallest first: ``1,2,4,8``, or with ``...`` continuing a sequence.

    ``...`` goes on from the two sizes before it: by their ratio when the second is a whole
    multiple (at least 2x) of the first (``1,2,4,...,64`` doubles), else by their difference
    (``16,24,...,64`` adds 8); the size after it must lie on the sequence.

    >>> parse_batches("1,2,4,...,32")
    (1, 2, 4, 8, 16, 32)
    """
    words = [w.strip() for w in text.replace("…", "...").split(",")]
    if "..." in words:
        i = words.index("...")
        if words.count("...") > 1 or i < 2 or i != len(words) - 2:
            raise argparse.ArgumentTypeError(
                f"{text!r}: write '...' once, after two sizes and before the last, e.g. 1,2,4,...,64"
            )
        head, last = [_size(w, text) for w in words[:i]], _size(words[-1], text)
        sizes = _continue(head, last, text)
    else:
        sizes = [_size(w, text) for w in words]
    if any(b >= c for b, c in zip(sizes, sizes[1:])):
        raise argparse.ArgumentTypeError(f"{text!r}: give each batch size once, smallest first")
    if len(sizes) > MAX_SIZES:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {MAX_SIZES} batch sizes")
    return tuple(sizes)


def _size(word: str, text: str) -> int:
    if not re.fullmatch(r"\d+", word) or not 1 <= int(word) <= MAX_BATCH:
        raise argparse.ArgumentTypeError(
            f"{text!r}: {word!r} is not a batch size in 1..{MAX_BATCH} images"
        )
    return int(word)


def _continue(head: list[int], last: int, text: str) -> list[int]:
    a, b = head[-2], head[-1]
    if b <= a:
        raise argparse.ArgumentTypeError(f"{text!r}: the sizes before '...' must grow")
    step: Callable[[int], int] = (
        (lambda v: v * (b // a)) if b % a == 0 and b >= 2 * a else (lambda v: v + (b - a))
    )
    sizes = list(head)
    while sizes[-1] < last and len(sizes) <= MAX_SIZES:
        sizes.append(step(sizes[-1]))
    if sizes[-1] != last:
        raise argparse.ArgumentTypeError(
            f"{text!r}: {last} is not on the sequence {', '.join(map(str, sizes[:6]))}, ..."
        )
    return sizes


def parse_measure(text: str) -> tuple[str, ...]:
    """``time,memory,power`` or any of them; power needs time (it is sampled while timing)."""
    words = tuple(w.strip().lower() for w in text.split(",") if w.strip())
    bad = [w for w in words if w not in MEASURES]
    if bad or not words:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose from {', '.join(MEASURES)}, separated by commas"
        )
    if "power" in words and "time" not in words:
        raise argparse.ArgumentTypeError(
            f"{text!r}: power is measured during the timed runs; add time"
        )
    return tuple(m for m in MEASURES if m in words)


def _whole(lo: int, hi: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({what})") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi} ({what}), got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be in (0, 3600] seconds, got {text}")
    return value


def _device(text: str) -> str:
    if not re.fullmatch(r"cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: use cpu, cuda or cuda:N")
    return text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare architectures as the notes do: accuracy vs operations and memory, time "
        "and power vs batch size",
        description="Measure each MODEL (a zoo name, a run folder, a checkpoint, a pattern line) "
        "or a --family: parameters and MACs, the reported top-1/top-5 (a run folder: its own test "
        "accuracy), inference and training memory (estimated and measured), forward time per "
        "image at each batch size, and energy per image where a power meter is present. Prints "
        "a table and the notes' conclusions (most accurate, most memory, most operations, most "
        "efficient) checked against the data; writes compare.json, compare.csv, "
        "accuracy_vs_ops.png and time_vs_batch.png. With the defaults (batches 1,2,4 on a CPU, "
        "the median of up to 3 runs within 2 s after 1 warm-up run), --family classic's eleven "
        "models take about 3 minutes on 2 idle CPU cores.",
    )
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="zoo names, run folders (runs/NAME), checkpoints or pattern lines (default: none; "
        "give MODELS or --family)",
    )
    p.add_argument(
        "--family",
        metavar="F",
        help="add a family: classic (the notes' figure: AlexNet, VGG-16/19, GoogLeNet, "
        "ResNet-18/34/50/101/152, Inception-v3/v4, each at 224 or 299) or a zoo family such as "
        "resnet, vgg, densenet (default: none)",
    )
    p.add_argument(
        "--input",
        metavar="SIZE",
        help="input size in pixels for every model, C x H x W (3x224x224), H x W or one size "
        "like 224 (default: each model's own)",
    )
    p.add_argument(
        "--batches",
        type=parse_batches,
        metavar="LIST",
        help="batch sizes timed, in images, smallest first; '...' continues a sequence, as in "
        "1,2,4,...,64 (default: 1,2,4 on a CPU, 1,2,4,...,64 on CUDA)",
    )
    p.add_argument(
        "--device",
        type=_device,
        metavar="{cpu,cuda}",
        help="where to run: cpu, cuda or cuda:N (default: cuda when present, else cpu)",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="weights and activations of the timed and inference passes; training memory "
        "keeps fp32 weights under autocast (default: fp32)",
    )
    p.add_argument(
        "--measure",
        type=parse_measure,
        default="time,memory,power",
        metavar="LIST",
        help="what to measure, comma-separated: time, memory, power; power is sampled during "
        "the timed runs (default: time,memory,power)",
    )
    p.add_argument(
        "-o",
        "--out",
        "--output",
        dest="output",
        metavar="DIR",
        help="folder for compare.json, compare.csv and the figures (default: RUN/compare when a "
        "MODEL is a run folder, so `convnet report RUN` shows it; else ./compare)",
    )
    _add_timing(p)
    p.add_argument(
        "--circle",
        choices=("memory", "params"),
        default="memory",
        help="what the circle areas of accuracy_vs_ops.png show: the inference memory (as the "
        "notes' figure) or the parameters (default: memory)",
    )
    add_format(p, "the table and the conclusions")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: show it)")
    p.set_defaults(func=run, writes={"output": "folder"})


def _add_timing(p: argparse.ArgumentParser) -> None:
    """How long to time and at which batches memory is measured."""
    p.add_argument(
        "--repeats",
        type=_whole(1, 1000, "timed runs per batch size"),
        default=3,
        metavar="N",
        help="timed runs per batch size, whose median is reported; range 1..1000 (default: 3)",
    )
    p.add_argument(
        "--warmup",
        type=_whole(0, 100, "untimed runs per batch size"),
        default=1,
        metavar="N",
        help="untimed runs before timing each batch size; range 0..100 (default: 1)",
    )
    p.add_argument(
        "--max-seconds",
        type=_seconds,
        default=2.0,
        metavar="S",
        help="stop repeating a batch size once its timed runs add up to S seconds (at least one "
        "run); range (0, 3600] (default: 2)",
    )
    p.add_argument(
        "--memory-batch",
        type=_whole(1, MAX_BATCH, "images per inference pass"),
        metavar="N",
        help="images per batch of the inference-memory estimate and measurement; range "
        f"1..{MAX_BATCH} (default: the largest of --batches)",
    )
    p.add_argument(
        "--train-batch",
        type=_whole(1, MAX_BATCH, "images per training step"),
        default=2,
        metavar="N",
        help="images per batch of the training-memory estimate and measurement (one SGD "
        f"momentum step; batch norm needs 2); range 1..{MAX_BATCH} (default: 2)",
    )


def _default_out(models: list[str]) -> Path:
    for m in models:
        path = Path(m)
        if path.is_dir() and ((path / "best.pt").is_file() or (path / "last.pt").is_file()):
            return path / "compare"
    return Path("compare")


def run(args: argparse.Namespace) -> int:
    from ..compare import compare

    size = parse_size(args.input) if args.input else None
    out = Path(args.output) if args.output else _default_out(args.models)
    result = compare(
        args.models,
        family=args.family,
        input_size=size,
        batches=args.batches,
        device=args.device,
        precision=args.precision,
        measure=args.measure,
        out=out,
        repeats=args.repeats,
        warmup=args.warmup,
        max_seconds=args.max_seconds,
        memory_batch=args.memory_batch,
        train_batch=args.train_batch,
        circle=args.circle,
        progress=not args.quiet,
    )
    print(result.render(args.format), end="")
    written = ", ".join(p.name for p in sorted(out.iterdir()) if not p.name.startswith("."))
    print(f"wrote {out}/: {written}", file=sys.stderr if args.format != "text" else sys.stdout)
    return 0
