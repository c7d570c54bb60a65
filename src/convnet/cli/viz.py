"""``convnet viz``: filters, activation maps, overlays, receptive fields and curves as PNG + SVG;
the feature-hierarchy figures (patches, deconv, occlusion, hierarchy, codes) are in
``viz_hierarchy.py``."""

from __future__ import annotations

import argparse

from ._args import parse_size, whole_number


def _channels(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"channels are whole numbers, e.g. 3,17,42; got {text!r}"
        ) from None


def _unit(text: str) -> tuple[int, int]:
    try:
        r, c = (int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"write the unit as ROW,COL, e.g. 7,7; got {text!r}"
        ) from None
    return r, c


_MODEL_HELP = "a checkpoint or run folder, a zoo name or a pattern-language line (untrained)"
_IMAGE_HELP = "an image file, mnist:INDEX (a bundled test digit) or skimage:NAME"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "viz",
        help="draw filters, activation maps, overlays, receptive fields, curves, top patches, "
        "deconvnet projections, occlusion maps, the feature hierarchy, t-SNE of codes",
        description="Draw what a network learned. MODEL is a checkpoint (runs/NAME/best.pt), a zoo name "
        "or a pattern-language line (untrained). IMAGE is a file, mnist:INDEX (a bundled test digit) "
        "or skimage:NAME (a scikit-image photo, e.g. skimage:chelsea). Writes OUTPUT as PNG and SVG.",
    )
    sub = p.add_subparsers(dest="viz_command", metavar="FIGURE", required=True)

    _add_filters(sub)
    _add_activations(sub)
    _add_overlay(sub)
    _add_rf(sub)
    _add_curves(sub)

    from .viz_hierarchy import register_hierarchy

    register_hierarchy(sub, _common, _model_file, _input)


def _common(q, default: str) -> None:
    """-o/--out, --format and --dpi, and the output checked before any work (cli.main)."""
    q.set_defaults(writes={"output": "file"})  # checked before any work (cli.main)
    q.add_argument(
        "-o",
        "--out",
        "--output",
        dest="output",
        default=None,
        help=f"output path, with or without the suffix (default {default}[-LAYER].png/.svg)",
    )
    q.add_argument(
        "--format",
        default="png,svg",
        help="the figure's file formats, comma-separated: png, svg, pdf (default png,svg)",
    )
    q.add_argument(
        "--dpi",
        type=whole_number(1, "dots per inch", 1200, "more makes a poster-sized bitmap"),
        default=120,
        help="PNG resolution in dots per inch, 1..1200 (default 120)",
    )


def _add_filters(sub) -> None:
    q = sub.add_parser(
        "filters", help="a conv layer's filters as a grid (default the first conv layer)"
    )
    q.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    _model_file(q)
    q.add_argument(
        "--layer",
        default=None,
        help="module path of a conv layer, e.g. features.0 (default: the first conv layer)",
    )
    q.add_argument(
        "--max-filters",
        type=whole_number(1, "filters"),
        default=None,
        metavar="N",
        help="draw at most N filters (default: all)",
    )
    _common(q, "filters")
    q.set_defaults(func=_filters)


def _add_activations(sub) -> None:
    q = sub.add_parser(
        "activations", help="a layer's 2D activation maps for one image, most active first"
    )
    q.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    _model_file(q)
    q.add_argument("image", metavar="IMAGE", help=_IMAGE_HELP)
    _input(q)
    q.add_argument("--layer", required=True, help="module path, e.g. features.1; required")
    q.add_argument(
        "--top",
        type=whole_number(0, "maps; 0 draws all"),
        default=16,
        metavar="N",
        help="how many maps (default 16; 0 = all)",
    )
    _common(q, "activations")
    q.set_defaults(func=_activations)


def _add_overlay(sub) -> None:
    q = sub.add_parser("overlay", help="chosen channels' maps over several images, side by side")
    q.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    _model_file(q)
    q.add_argument("images", metavar="IMAGE", nargs="+", help=_IMAGE_HELP + "; one or more")
    _input(q)
    q.add_argument("--layer", required=True, help="module path, e.g. features.28; required")
    q.add_argument(
        "--channels",
        type=_channels,
        default=None,
        help="channel numbers, e.g. 108,375,284 (default: the 4 most active)",
    )
    _common(q, "overlay")
    q.set_defaults(func=_overlay)


def _add_rf(sub) -> None:
    q = sub.add_parser(
        "rf", help="the input region one unit sees, and receptive-field size by depth"
    )
    q.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    _model_file(q)
    _input(q)
    q.add_argument(
        "--layer", required=True, help="module path of the layer, e.g. features.3; required"
    )
    q.add_argument(
        "--image",
        default=None,
        help=_IMAGE_HELP
        + ": draw on it and show the unit's gradient (default: none, a blank canvas)",
    )
    q.add_argument(
        "--unit",
        type=_unit,
        default=None,
        help="ROW,COL of the unit in the layer's map (default: the centre)",
    )
    q.add_argument(
        "--channel",
        type=whole_number(0, "a channel number"),
        default=None,
        help="channel for the gradient (default: the most active)",
    )
    _common(q, "rf")
    q.set_defaults(func=_rf)


def _add_curves(sub) -> None:
    q = sub.add_parser("curves", help="loss, accuracy and learning-rate curves of a run")
    q.add_argument("run", metavar="RUN", help="run folder runs/NAME (or its metrics.jsonl)")
    _common(q, "curves")
    q.set_defaults(func=_curves)


def _model_file(q) -> None:
    q.add_argument(
        "--model",
        dest="model_file",
        metavar="FILE.py:NAME",
        default=None,
        help="the Python file a checkpoint's model was trained from, named again so that it may "
        "run: a checkpoint never imports code by itself, and the file's sha256 must match the "
        "one recorded (default: none; zoo and pattern-line checkpoints need none)",
    )


def _load(args):
    from ..errors import ConvnetError
    from ..resolve import resolve_model

    try:
        given = parse_size(args.input) if getattr(args, "input", None) else None
    except ConvnetError:  # W x H x D at first sight: _inputs reads it with the model's depth
        given = None
    build_at = given if given is not None and len(given) == 3 else None  # a line without INPUT
    return resolve_model(args.model, model=args.model_file, input_size=build_at)


def _save(args, fig, kind: str, layer: str | None = None) -> int:
    from ..viz import save_figure

    default = f"{kind}-{layer}" if layer else kind
    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad or not formats:
        from ..errors import ConvnetError

        raise ConvnetError(f"--format takes png, svg, pdf; got {args.format!r}")
    for path in save_figure(fig, args.output or default, formats=formats, dpi=args.dpi):
        print(path)
    return 0


def _input(q) -> None:
    q.add_argument(
        "--input",
        metavar="CxHxW",
        help="the size images are resized to, in pixels: C x H x W (e.g. 3x224x224), or H x W "
        "or one size with the model's depth (default: the model's or the checkpoint's)",
    )


def _inputs(loaded, args) -> dict:
    from ..errors import ConvnetError

    size = loaded.input_size
    if args.input:
        size = parse_size(args.input, channels=size[0] if size else None)
        if len(size) != 3:
            raise ConvnetError(f"{loaded.name}: input depth unknown; give --input C x H x W")
    if size is None:
        raise ConvnetError(
            f"{loaded.name}: input size unknown; give --input C x H x W (e.g. 3x224x224)"
        )
    return {"input_size": tuple(size), "mean": loaded.mean, "std": loaded.std}


def _filters(args) -> int:
    from ..viz import conv_layer_paths, filters

    m = _load(args)
    layer = args.layer or (conv_layer_paths(m.model) or [None])[0]
    return _save(args, filters(m.model, layer, max_filters=args.max_filters), "filters", layer)


def _activations(args) -> int:
    from ..viz import activations

    m = _load(args)
    fig = activations(m.model, args.image, args.layer, top=args.top or None, **_inputs(m, args))
    return _save(args, fig, "activations", args.layer)


def _overlay(args) -> int:
    from ..viz import overlay

    m = _load(args)
    fig = overlay(
        m.model, args.images, args.layer, args.channels, labels=args.images, **_inputs(m, args)
    )
    return _save(args, fig, "overlay", args.layer)


def _rf(args) -> int:
    from ..viz import receptive_field

    m = _load(args)
    fig = receptive_field(
        m.model, args.layer, args.image, unit=args.unit, channel=args.channel, **_inputs(m, args)
    )
    return _save(args, fig, "rf", args.layer)


def _curves(args) -> int:
    from pathlib import Path

    from ..viz import curves

    run = Path(args.run)
    return _save(args, curves(run, title=(run if run.is_dir() else run.parent).name), "curves")
