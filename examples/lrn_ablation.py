"""Local response normalization on and off: the same small net, several seeds (seed 003, 3.2.1).

The claims: the AlexNet paper's LRN lowers ImageNet top-1 / top-5 error by 1.4 / 1.2 points and
a four-layer CIFAR-10 net's error from 13% to 11% (seed 003); "its effect, if any, is very
limited" (seeds 000 and 002). This trains one AlexNet-like line twice per seed, once with the
paper's LRN (k=2, n=5, alpha=1e-4, beta=0.75) after each of the first two pools as in seed
003's table 3.1, once without, with the notes' AlexNet recipe (SGD momentum 0.9, lr 0.01, weight
decay 5e-4, dropout 0.5; plateau drops; no flips on digits, random shifts of 2 pixels), and
records every run's test top-1 (on the checkpoint with the best validation top-1, the trainer's
default). Public API only; CPU is enough.

    python examples/lrn_ablation.py                   # 5 seeds x 3 epochs on the MNIST sample
    python examples/lrn_ablation.py --seeds 1 --epochs 1 --out /tmp/lrn.json   # does it run

Writes --out (default docs/lrn_ablation.json, which docs/notes.md cites: rerun
``python docs/make_notes.py`` after changing it) with the settings, the machine and each seed's
accuracies; prints the paired differences.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from convnet.data import load
from convnet.errors import ConvnetError
from convnet.io import atomic_write_text
from convnet.train import fit, recipe

LRN = "LRN(k=2,n=5,alpha=1e-4,beta=0.75)"
STAGES = "CONV(F=5,P=2,K={k}) -> RELU -> POOL(F=3,S=2)"
HEAD = "FC-64 -> RELU -> DROPOUT(0.5) -> FC-10"
LINES = {
    "with LRN": f"INPUT[28x28x1] -> {STAGES.format(k=16)} -> {LRN} -> {STAGES.format(k=32)} -> "
    f"{LRN} -> {HEAD}",
    "without LRN": f"INPUT[28x28x1] -> {STAGES.format(k=16)} -> {STAGES.format(k=32)} -> {HEAD}",
}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "lrn_ablation.json"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lrn_ablation.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=_positive, default=5, help="seeds 0..N-1, >= 1 (default 5)")
    p.add_argument("--epochs", type=_positive, default=3, help="epochs per run, >= 1 (default 3)")
    p.add_argument(
        "--batch-size", type=_positive, default=64, help="images per step, >= 1 (default 64)"
    )
    p.add_argument(
        "--data", default="mnist-sample", help="a convnet.data.load spec (default mnist-sample)"
    )
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"results JSON (default {DEFAULT_OUT})"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    data = load(args.data)
    config = recipe(
        "alexnet",
        epochs=args.epochs,
        batch_size=args.batch_size,
        hflip=False,  # digits
        crop_padding=2,
        progress=False,
    )
    runs = []
    split = None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lrn-ablation-") as tmp:
        for seed in range(args.seeds):
            row: dict[str, object] = {"seed": seed}
            for label, line in LINES.items():
                out = Path(tmp) / f"{label.replace(' ', '-')}-{seed}"
                result = fit(line, data, config.replace(seed=seed, out=str(out)))
                row[label] = round(float(result["test_top1"]), 2)
                split = result.get("split")
            runs.append(row)
            diff = row["with LRN"] - row["without LRN"]  # type: ignore[operator]
            print(
                f"seed {seed}: test top-1 with LRN {row['with LRN']:.2f}%, without "
                f"{row['without LRN']:.2f}% ({diff:+.2f} points)",
                flush=True,
            )
    diffs = [r["with LRN"] - r["without LRN"] for r in runs]  # type: ignore[operator]
    spread = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
    print(
        f"mean difference {statistics.mean(diffs):+.2f} points (sd {spread:.2f}, {len(diffs)} seeds)"
    )
    record = {
        "command": "python examples/lrn_ablation.py"
        + (f" --seeds {args.seeds}" if args.seeds != 5 else "")
        + (f" --epochs {args.epochs}" if args.epochs != 3 else ""),
        "data": data.name,
        "train_images": int(data.x_train.shape[0]),
        "test_images": int(data.x_test.shape[0]),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "split": split,  # the trainer's train / validation / test sizes
        "recipe": "alexnet (hflip off, crop_padding 2)",
        "lines": LINES,
        "runs": runs,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}",
    }
    atomic_write_text(args.out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConvnetError as e:
        print(f"lrn_ablation.py: error: {e}", file=sys.stderr)
        sys.exit(2)
