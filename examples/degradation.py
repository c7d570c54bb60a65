"""The degradation problem (He et al. 2015, figure 6; the notes' seed 003, figure 3.8).

Trains plain-20, plain-56, resnet-20 and resnet-56 with one recipe and one budget (the CIFAR
ResNet recipe: SGD momentum 0.9, lr 0.1 after a linear warm-up of --warmup epochs, divided by 10
at 50% and 75% of the epochs, weight decay 1e-4, batch 128, random shifts), then draws training
and validation error per epoch for the four. The claim to look for: plain-56 trains *worse* than
plain-20 (higher training error, not only validation error), while resnet-56 is not worse than
resnet-20. Public API only.

    python examples/degradation.py --epochs 30                # the bundled MNIST sample, CPU
    python examples/degradation.py --epochs 1 --subset 512    # a quick check that it runs
    python examples/degradation.py --data cifar10 --epochs 60 # after `convnet data get cifar10`

Writes OUT/{plain20,plain56,resnet20,resnet56}/ (one training run each: metrics.jsonl, checkpoints)
and OUT/degradation.png (and .svg); prints the final errors and whether the claim held.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from convnet.data import Dataset, load
from convnet.errors import ConvnetError
from convnet.train import fit, recipe
from convnet.viz import read_metrics, save_figure

MODELS = ("plain20", "plain56", "resnet20", "resnet56")
STYLE = {  # plain nets dashed, residual solid; 20 layers light, 56 dark
    "plain20": ("#f4a261", "--"),
    "plain56": ("#c0392b", "--"),
    "resnet20": ("#5dade2", "-"),
    "resnet56": ("#1f4e79", "-"),
}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: must be >= 0 (0 = every training image)")
    return value


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="degradation.py", description=__doc__.split("\n\n")[0].strip())
    p.add_argument(
        "--epochs", type=_positive, default=30, help="epochs per model, >= 1 (default 30)"
    )
    p.add_argument(
        "--data",
        default="mnist-sample",
        help="a convnet.data.load spec: mnist-sample (bundled, the default), cifar10, a path",
    )
    p.add_argument(
        "--subset",
        type=_non_negative,
        default=0,
        help="train on this many training images drawn at random (0 = all; default 0)",
    )
    p.add_argument(
        "--batch-size", type=_positive, default=128, help="images per step (default 128)"
    )
    p.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="epochs of linear learning-rate warm-up from 0 to 0.1, the same for all four, >= 0 "
        "(default 1; He et al. warm up their 110-layer net at 0.01 for its first ~400 steps: "
        "without it, on the bundled sample's 28 steps an epoch, both 56-layer nets diverge)",
    )
    p.add_argument("--seed", type=int, default=0, help="weights and data order (default 0)")
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when present, else CPU), cpu or cuda"
    )
    p.add_argument(
        "--out", default="runs/degradation", help="output folder (default runs/degradation)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished runs in --out and reuse the finished ones (default: off)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="start over: move earlier runs in --out aside (to replaced-*/ in each; default off)",
    )
    args = p.parse_args(argv)
    if not 0 <= args.warmup <= args.epochs:
        p.error(f"--warmup {args.warmup}: give 0 to --epochs ({args.epochs}) epochs")
    if args.resume and args.force:
        p.error("--resume continues the runs in --out and --force starts them over; give one")
    return args


def _subset(data: Dataset, n: int, seed: int) -> Dataset:
    if n == 0 or n >= data.x_train.shape[0]:
        return data
    idx = torch.randperm(data.x_train.shape[0], generator=torch.Generator().manual_seed(seed))[:n]
    return Dataset(
        f"{data.name}[{n}]",
        data.x_train[idx],
        data.y_train[idx],
        data.x_test,
        data.y_test,
        data.classes,
        data.mean,
        data.std,
    )


def _errors(run: Path) -> tuple[list[int], list[float], list[float]]:
    """Epochs, training error and validation error (percent) from a run's metrics.jsonl."""
    records = read_metrics(run)
    epochs = [r["epoch"] for r in records]
    return epochs, [100 - r["train_top1"] for r in records], [100 - r["val_top1"] for r in records]


def _figure(curves: dict[str, tuple[list[int], list[float], list[float]]], title: str) -> Figure:
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_train, ax_val = fig.subplots(1, 2, sharey=True)
    for name, (epochs, train, val) in curves.items():
        color, style = STYLE[name]
        label = name.replace("plain", "plain-").replace("resnet", "ResNet-")
        for ax, y in ((ax_train, train), (ax_val, val)):
            ax.plot(epochs, y, style, color=color, label=label, marker="o", markersize=2.5)
    last = max(max(c[0]) for c in curves.values())
    for ax, what in ((ax_train, "training error (%)"), (ax_val, "validation error (%)")):
        ax.set_xlim(0, last + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    ax_train.legend()
    fig.suptitle(title)
    return fig


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    out = Path(args.out)
    data = _subset(load(args.data), args.subset, args.seed)
    digits = data.input_size[1] <= 28  # MNIST-like: no flips, smaller shifts on 28x28 digits
    config = recipe(
        "cifar-resnet",
        epochs=args.epochs,
        milestones=(args.epochs / 2, args.epochs * 3 / 4),
        warmup_epochs=args.warmup,
        batch_size=min(args.batch_size, data.x_train.shape[0]),
        hflip=not digits,
        crop_padding=2 if digits else 4,
        precision="auto",  # bf16 autocast on CUDA, fp32 on a CPU
        channels_last=False,
        device=args.device,
        seed=args.seed,
    )
    for name in MODELS:
        run = out / name
        if args.resume and (run / "last.pt").exists():
            if (run / "metrics.jsonl").exists() and len(read_metrics(run)) >= args.epochs:
                print(f"== {name}: finished in {run}, reused", flush=True)
                continue
            print(f"== {name} (resumed)", flush=True)
            fit(name, data, config.replace(out=str(run)), resume=True)
        else:
            print(f"== {name}", flush=True)
            fit(name, data, config.replace(out=str(run)), force=args.force)
    curves = {name: _errors(out / name) for name in MODELS}
    title = (
        f"{data.name}: {data.x_train.shape[0]:,} images ({1 - config.val_split:.0%} train, "
        f"{config.val_split:.0%} validation), {args.epochs} epoch(s) each, one recipe "
        "(dashed: plain, solid: residual)"
    )
    paths = save_figure(_figure(curves, title), out / "degradation.png")
    final = {name: (c[1][-1], c[2][-1]) for name, c in curves.items()}
    print(f"\n{'model':10s} {'train err %':>12s} {'val err %':>10s}")
    for name, (train, val) in final.items():
        print(f"{name:10s} {train:12.2f} {val:10.2f}")
    # training error of the last epoch, measured on the training batches as the paper's curves
    plain_gap = final["plain56"][0] - final["plain20"][0]
    residual_gap = final["resnet56"][0] - final["resnet20"][0]
    degraded, fixed = plain_gap > 0, residual_gap <= 0
    print(
        f"training error, 56 layers minus 20: plain {plain_gap:+.2f} points, residual "
        f"{residual_gap:+.2f} points: plain-56 trains {'worse' if degraded else 'no worse'} than "
        f"plain-20, resnet-56 {'no worse' if fixed else 'worse'} than resnet-20 "
        f"({'as in' if degraded and fixed else 'unlike'} the paper's figure 6)"
    )
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConvnetError as e:
        print(f"degradation.py: error: {e}", file=sys.stderr)
        sys.exit(2)
