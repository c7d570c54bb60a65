"""``convnet train MODEL [--data D] [--recipe NAME] [--epochs N] [--batch N] [--lr X] ... [--resume]``.

Every TrainConfig field is a flag, generated from the field's documentation (help, units, range,
choices; ``convnet.train.config``), so the help cannot fall behind the config. Ranges are checked
once, by ``TrainConfig.validate``; this module only restates a failure with the flag's name.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import typing
from pathlib import Path

from ..errors import ConfigError, ConvnetError
from ..limits import MAX_IMAGE_SIDE
from ..train.config import RECIPES, FieldDoc, TrainConfig, documented_fields

# where the CLI differs from TrainConfig (which writes no files unless given a folder)
_CLI_HELP = {"out": "run folder for config.json, metrics, checkpoints, curves and result.json"}
_CLI_DEFAULTS = {"out": "runs/MODEL, numbered if it exists (--resume: the latest such run)"}
_METAVARS = {
    "out": "DIR",
    "weights": "FILE",
    "freeze": "PREFIX",
    "val_split": "FRACTION",
    "lr_head": "LR",
    "lr_backbone": "LR",
    "lr_backbone_mult": "X",
}


def _shown(value: object) -> str:
    """A default as a user types it: on/off, 0.0005, '30 60 90'."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None or value == ():
        return "none"
    if isinstance(value, tuple):
        return " ".join(_shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _help(f: dataclasses.Field, doc: FieldDoc) -> str:
    """'passes over the training set. Units: epochs. Range: 1..100000. Default: the recipe's (plain: 10).'"""
    parts = [_CLI_HELP.get(f.name, doc.help) + "."]
    if doc.units:
        parts.append(f"Units: {doc.units}.")
    if doc.range is not None:
        each = " each" if isinstance(f.default, tuple) else ""
        parts.append(f"Range: {doc.range}{each}.")
    if f.name in _CLI_DEFAULTS:
        parts.append(f"Default: {_CLI_DEFAULTS[f.name]}.")
    elif any(f.name in r for r in RECIPES.values()):
        parts.append(f"Default: the recipe's (plain: {_shown(f.default)}).")
    else:
        parts.append(f"Default: {_shown(f.default)}.")
    return " ".join(parts).replace("%", "%%")


def _field_flags(f: dataclasses.Field, doc: FieldDoc) -> tuple[str, ...]:
    """The option strings of a TrainConfig field: its declared ones, else --FIELD-NAME."""
    return doc.flags or ("--" + f.name.replace("_", "-"),)


class _OnOff(argparse.Action):
    """A bool field as --x / --no-x. A field named no_x gets --no-x / --x: argparse's
    BooleanOptionalAction would offer --no-no-x, and read --no-x itself as False."""

    def __init__(self, option_strings: list[str], dest: str, **kw) -> None:
        self.on = tuple(option_strings)
        off = tuple("--" + s[5:] if s.startswith("--no-") else "--no-" + s[2:] for s in self.on)
        super().__init__([*self.on, *off], dest, nargs=0, **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, option_string in self.on)

    def format_usage(self) -> str:
        return " | ".join(self.option_strings)


def _add_field(p: argparse.ArgumentParser, f: dataclasses.Field, doc: FieldDoc, hint) -> None:
    """One TrainConfig field as an option whose default is None (= not given, keep the recipe's)."""
    kw: dict = dict(dest=f.name, default=None, help=_help(f, doc))
    if hint is bool:
        kw["action"] = _OnOff
    elif typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        kw.update(type=args[0], nargs="+" if args[-1] is Ellipsis else len(args))
        kw["metavar"] = doc.units.upper() or "X"
        if args[0] is str:  # names (--freeze a --freeze b): each use adds to the list
            kw["action"] = "extend"
    else:
        # str | None -> str; int, float, str as they are
        kw["type"] = next(a for a in typing.get_args(hint) or (hint,) if a is not type(None))
        if doc.choices:
            kw["choices"] = doc.choices
        elif doc.units:
            kw["metavar"] = doc.units.upper()
    if f.name in _METAVARS:
        kw["metavar"] = _METAVARS[f.name]
    p.add_argument(*_field_flags(f, doc), **kw)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model on real data with the notes' recipes",
        description="Train MODEL (a zoo name, a pattern-language line, or file.py:Name). "
        "Writes runs/NAME/: config.json, metrics.jsonl/.csv, curves.png, last.pt, best.pt, "
        "confusion.json, result.json. Every training setting has a flag below; a flag given "
        "overrides the recipe's value (with --resume, the run's saved one). A value out of its "
        "range is an error naming the flag and the range.",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="zoo name, pattern-language line or file.py:Name (with --weights FILE: fine-tune "
        "its pretrained weights)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="data set name or path (default: mnist-sample, or the resumed run's)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="where named data sets live (default: $CONVNET_DATA, else ~/.cache/convnet/data)",
    )
    p.add_argument(
        "--image-size",
        nargs="+",
        default=None,
        metavar="HxW",
        help="H x W in pixels (e.g. 224x224, or 224 for a square), each side "
        f"1..{MAX_IMAGE_SIDE}: resize "
        "and centre-crop an image folder's pictures to this size (default: the pictures' own "
        "size)",
    )
    p.add_argument(
        "--recipe",
        default=None,
        choices=tuple(RECIPES),
        help="the notes' training recipe (default: finetune with --weights, else the model "
        "family's, e.g. resnet for resnet50, else the plain TrainConfig defaults shown as "
        "'plain' below)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last.pt (default: start a new run)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="start a new run even in an --out that holds files: move them into "
        "OUT/replaced-YYYYmmdd-HHMMSS/ first (nothing is deleted; default: refuse such an --out)",
    )
    p.add_argument(
        "--engine",
        choices=("torch", "numpy"),
        default="torch",
        help="numpy: train with the from-scratch NumPy reference engine (default: torch)",
    )
    hints = typing.get_type_hints(TrainConfig)
    for f, doc in documented_fields():
        _add_field(p, f, doc, hints[f.name])
    p.add_argument(
        "--quiet", dest="progress", action="store_false", default=None, help="same as --no-progress"
    )
    p.set_defaults(func=_run, writes={"out": "folder"})


def _overrides(args: argparse.Namespace) -> dict:
    """The TrainConfig fields given on the command line (a field's dest is its name)."""
    out = {}
    for f, _ in documented_fields():
        value = getattr(args, f.name)
        if value is not None:
            out[f.name] = tuple(value) if isinstance(value, list) else value
    return out


def _flag_error(e: ConfigError) -> ConvnetError:
    """The config's range error, restated with the flag a user types: '--batch 0: must be >= 1'."""
    for f, doc in documented_fields():
        if f.name == e.field:
            flag = [s for s in _field_flags(f, doc) if s.startswith("--")][0]
            return ConvnetError(f"{flag} {_shown(e.value)}: {e.rule}")
    return e


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
    if resume:
        taken = [p for p in taken if (p / "last.pt").exists() or (p / "result.json").exists()]
        return str(taken[-1] if taken else base)
    from ..train.run_folder import held_files  # a folder holding anything belongs to a run

    if not held_files(base):
        return str(base)
    n = 2
    while held_files(base.parent / f"{name}-{n}"):
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
    from ..train import recipe, recipe_for_model

    if args.engine == "numpy" and args.resume:
        raise ConvnetError(
            "--resume continues a PyTorch run from its checkpoint; --engine numpy keeps no "
            "checkpoints to resume from, so run it again without --resume"
        )
    overrides = _overrides(args)
    # a pretrained start needs gentle rates: the from-scratch recipes would wash it out
    default = "finetune" if overrides.get("weights") else recipe_for_model(args.model, args.engine)
    name = args.recipe or default
    overrides["out"] = args.out or default_out(args.model, args.resume)
    saved = _saved_config(Path(overrides["out"])) if args.resume and not args.recipe else None
    try:
        if saved is not None:
            # --resume continues the run as it was configured; only the flags given here change it
            # (merged before checking, so a flag can mend a saved value this machine refuses,
            # e.g. --threads after moving to fewer cores)
            cfg = TrainConfig.from_dict({**saved, **overrides})
        else:
            cfg = recipe(name, **overrides)
    except ConfigError as e:
        raise _flag_error(e) from None
    data_arg = args.data or (saved or {}).get("data") or "mnist-sample"
    # a path is recorded absolute, so `convnet eval` finds the data from any folder
    spec = str(Path(data_arg).resolve()) if Path(data_arg).exists() else data_arg
    size = None
    if args.image_size:
        from ._args import parse_image_size

        size = parse_image_size(args.image_size)
    data = load(spec, args.data_dir, image_size=size)
    data.name = spec
    if cfg.hflip and "hflip" not in overrides and _digits(data.name):
        # the ImageNet recipes flip images; a mirrored digit is another digit (or none)
        cfg = dataclasses.replace(cfg, hflip=False)
        print("horizontal flips off for digits (pass --hflip to force them)")
    if args.engine == "numpy":
        from ..train.numpy_engine import train_with_numpy

        result = train_with_numpy(args.model, data, cfg, force=args.force)
    else:
        from ..train import fit

        result = fit(args.model, data, cfg, resume=args.resume, force=args.force)
    if result.get("status") == "terminated" or os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun only rank 0 reports
    from ..train.metrics import report_line

    print(f"result: {result['out']}/result.json  {report_line(result)}  {result['seconds']:.1f} s")
    return 0
