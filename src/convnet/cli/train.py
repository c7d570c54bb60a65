"""``convnet train MODEL [--data D] [--recipe NAME] [--epochs] [--batch] [--lr] ... [--resume] [--nproc N]``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
from pathlib import Path

from ..errors import ConvnetError

# CLI flag -> TrainConfig field (flags whose names differ, or that need a type)
_FIELDS = {
    "epochs": int,
    "batch": ("batch_size", int),
    "lr": float,
    "optimizer": str,
    "schedule": str,
    "momentum": float,
    "weight_decay": float,
    "warmup_epochs": float,
    "step_size": float,
    "gamma": float,
    "patience": int,
    "min_lr": float,
    "label_smoothing": float,
    "aux_weight": float,
    "clip_grad": float,
    "ema": float,
    "crop_padding": int,
    "cutout": int,
    "precision": str,
    "device": str,
    "seed": int,
    "checkpoint_every": int,
    "eval_every": int,
    "nproc": int,
    "threads": ("num_threads", int),
    "dist_timeout": float,
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model on real data with the notes' recipes",
        description="Train MODEL (a zoo name, a pattern-language line, or file.py:Name). "
        "Writes runs/NAME/: config.json, metrics.jsonl/.csv, curves.png, last.pt, best.pt, "
        "confusion.json, result.json. Every recipe value can be overridden by a flag.",
    )
    p.add_argument("model", metavar="MODEL")
    p.add_argument(
        "--data",
        default=None,
        help="data set name or path (default: mnist-sample, or the resumed run's)",
    )
    p.add_argument("--data-dir", default=None, help="where named data sets live")
    p.add_argument(
        "--image-size",
        type=int,
        nargs="+",
        default=None,
        metavar="N",
        help="H [W]: resize and centre-crop an image folder's pictures to this size",
    )
    p.add_argument(
        "--recipe",
        default=None,
        help="alexnet, vgg, resnet, googlenet, cifar-resnet, lenet "
        "(default: the model family's, else the plain defaults)",
    )
    p.add_argument(
        "--out", default=None, help="run folder (default: runs/MODEL, numbered if it exists)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last.pt"
    )
    p.add_argument(
        "--engine",
        choices=("torch", "numpy"),
        default="torch",
        help="numpy: train with the from-scratch NumPy reference engine",
    )
    for flag, typ in _FIELDS.items():
        typ = typ[1] if isinstance(typ, tuple) else typ
        p.add_argument("--" + flag.replace("_", "-"), type=typ, default=None, dest=flag)
    p.add_argument(
        "--milestones", type=float, nargs="+", default=None, help="multistep: epochs of the drops"
    )
    for flag in ("nesterov", "hflip", "channels-last", "compile", "no-decay-bn-bias"):
        p.add_argument("--" + flag, action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    p.set_defaults(func=_run)


def _overrides(args: argparse.Namespace) -> dict:
    out = {}
    for flag, typ in _FIELDS.items():
        field = typ[0] if isinstance(typ, tuple) else flag
        if getattr(args, flag) is not None:
            out[field] = getattr(args, flag)
    for flag in ("nesterov", "hflip", "channels_last", "compile", "no_decay_bn_bias"):
        if getattr(args, flag) is not None:
            out[flag] = getattr(args, flag)
    if args.milestones is not None:
        out["milestones"] = tuple(args.milestones)
    if args.quiet:
        out["progress"] = False
    return out


def default_out(model: str, resume: bool) -> str:
    """runs/NAME for a zoo name (runs/model for a notation line or file), numbered when taken."""
    name = (
        model
        if re.fullmatch(r"[\w.-]+", model)
        else Path(model.split(":")[0]).stem
        if ".py:" in model
        else "model"
    )
    base = Path("runs") / name
    taken = (
        [base] + sorted(base.parent.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime)
        if base.parent.exists()
        else []
    )
    taken = [p for p in taken if (p / "last.pt").exists() or (p / "result.json").exists()]
    if resume:
        return str(taken[-1] if taken else base)
    if not taken:
        return str(base)
    n = 2
    while (base.parent / f"{name}-{n}").exists():
        n += 1
    return str(base.parent / f"{name}-{n}")


def _saved_config(out: Path) -> dict | None:
    """The resumed run's config.json, or None when there is none to read."""
    try:
        saved = json.loads((out / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


def _digits(name: str) -> bool:
    base = Path(name).name.lower()
    return "mnist" in base and "fashion" not in base


def _run(args: argparse.Namespace) -> int:
    from ..data import load
    from ..train import TrainConfig, recipe, recipe_for_model

    if args.engine == "numpy" and args.resume:
        raise ConvnetError(
            "--resume continues a PyTorch run from its checkpoint; --engine numpy keeps no "
            "checkpoints to resume from, so run it again without --resume"
        )
    overrides = _overrides(args)
    name = args.recipe if args.recipe else recipe_for_model(args.model, args.engine)
    overrides["out"] = args.out or default_out(args.model, args.resume)
    saved = _saved_config(Path(overrides["out"])) if args.resume and not args.recipe else None
    if saved is not None:
        # --resume continues the run as it was configured; only the flags given here change it
        cfg = TrainConfig.from_dict(saved).replace(**overrides)
    else:
        cfg = recipe(name, **overrides)
    data_arg = args.data or (saved or {}).get("data") or "mnist-sample"
    # a path is recorded absolute, so `convnet eval` finds the data from any folder
    spec = str(Path(data_arg).resolve()) if Path(data_arg).exists() else data_arg
    size = None
    if args.image_size:
        size = tuple(args.image_size) if len(args.image_size) == 2 else args.image_size[0]
    data = load(spec, args.data_dir, image_size=size)
    data.name = spec
    if cfg.hflip and "hflip" not in overrides and _digits(data.name):
        # the ImageNet recipes flip images; a mirrored digit is another digit (or none)
        cfg = dataclasses.replace(cfg, hflip=False)
        print("horizontal flips off for digits (pass --hflip to force them)")
    if args.engine == "numpy":
        from ..train.numpy_engine import train_with_numpy

        result = train_with_numpy(args.model, data, cfg)
    else:
        from ..train import fit

        result = fit(args.model, data, cfg, resume=args.resume)
    if result.get("status") == "terminated" or os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    print(
        f"result: {result['out']}/result.json  best top-1 {result['best_top1']:.2f}%  "
        f"final top-1 {result['final_top1']:.2f}%  {result['seconds']:.1f} s"
    )
    return 0
