"""``convnet viz patches|deconv|occlusion|hierarchy|codes``: what each layer's units respond to.

Registered by ``cli/viz.py`` under ``convnet viz``; each subcommand calls one public function
of :mod:`convnet.viz` and writes its figure as PNG and SVG (one per layer where it says so).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ._args import positive_number, whole_number

_MODEL_HELP = "a checkpoint or run folder, a zoo name or a pattern-language line (untrained)"
_IMAGE_HELP = "an image file, mnist:INDEX (a bundled test digit) or skimage:NAME"
_RULES = ("deconvnet", "guided", "backprop")


def bounded(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number in [lo, hi]; ``what`` says what it counts."""
    at_least = whole_number(lo, what)

    def parse(text: str) -> int:
        value = at_least(text)
        if value > hi:
            raise argparse.ArgumentTypeError(f"must be <= {hi} ({what}), got {value}")
        return value

    return parse


def _channel_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"channels are whole numbers, e.g. 3,17,42; got {text!r}"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"channels are whole numbers >= 0, got {text!r}")
    return values


def register_hierarchy(sub, common, model_file, input_flag) -> None:
    """Add the five subcommands to ``convnet viz``'s subparsers (``common``: -o/--format/--dpi,
    ``model_file``: --model, ``input_flag``: --input; shared with the other figures)."""
    for add, on_data in (
        (_add_patches, True),
        (_add_deconv, False),
        (_add_occlusion, False),
        (_add_hierarchy, True),
        (_add_codes, True),
    ):
        q = add(sub, model_file)
        if on_data:
            q.add_argument(
                "--input",
                metavar="CxHxW",
                help="the model's input size in pixels, C x H x W (or H x W, or one size); the "
                "data's images are zero-padded or centre-cropped to it, as in training (default: "
                "the model's or the checkpoint's)",
            )
        else:
            input_flag(q)
        common(q, q.prog.rsplit(" ", 1)[-1])


def _add_patches(sub, model_file):
    q = sub.add_parser(
        "patches", help="per channel, the data set's image patches that excite it most"
    )
    _model(q, model_file)
    _data(q)
    _layers(q, "all conv layers; one figure per layer")
    q.add_argument(
        "--top",
        type=bounded(1, 100, "patches per channel"),
        default=9,
        help="patches per channel, strongest first (default 9; 1..100)",
    )
    q.add_argument(
        "--channels",
        type=_channel_list,
        default=None,
        help="channel numbers, e.g. 0,5,12 (default: the --max-channels strongest)",
    )
    q.add_argument(
        "--max-channels",
        type=bounded(1, 256, "channels per figure"),
        default=16,
        metavar="N",
        help="without --channels, show the N channels with the strongest activation (default 16; 1..256)",
    )
    q.set_defaults(func=_patches)
    return q


def _add_deconv(sub, model_file):
    q = sub.add_parser(
        "deconv", help="the deconvnet projection of a channel's strongest unit back to pixels"
    )
    _model(q, model_file)
    q.add_argument("image", metavar="IMAGE", help=_IMAGE_HELP)
    _layers(q, "all conv layers; one figure per layer")
    q.add_argument(
        "--channel",
        type=_channel_list,
        default=None,
        help="channel numbers, e.g. 3 or 3,17 (default: the --count strongest on this image)",
    )
    q.add_argument(
        "--count",
        type=bounded(1, 64, "channels"),
        default=4,
        metavar="N",
        help="without --channel, project the N channels strongest on the image (default 4; 1..64)",
    )
    _rule(q)
    q.set_defaults(func=_deconv)
    return q


def _add_occlusion(sub, model_file):
    q = sub.add_parser(
        "occlusion", help="the class probability as a grey square slides over the image"
    )
    _model(q, model_file)
    q.add_argument("image", metavar="IMAGE", help=_IMAGE_HELP)
    q.add_argument(
        "--size",
        type=whole_number(1, "pixels"),
        default=8,
        help="side of the grey square in pixels of the model's input (default 8; at most the image side)",
    )
    q.add_argument(
        "--stride",
        type=whole_number(1, "pixels"),
        default=2,
        help="step between square positions in pixels (default 2)",
    )
    q.add_argument(
        "--class",
        dest="target",
        default=None,
        help="the class whose probability is mapped, by name or index (default: the top class of the unoccluded image)",
    )
    _batch(q, 64)
    q.set_defaults(func=_occlusion)
    return q


def _add_hierarchy(sub, model_file):
    q = sub.add_parser(
        "hierarchy",
        help="one page: every conv layer's top patches and deconv projections, with RF sizes",
    )
    _model(q, model_file)
    _data(q)
    _layers(q, "all conv layers, first to last")
    q.add_argument(
        "--channels",
        type=bounded(1, 16, "channels per layer"),
        default=4,
        metavar="N",
        help="channels shown per layer, the strongest (default 4; 1..16)",
    )
    q.add_argument(
        "--top",
        type=bounded(1, 25, "images per channel"),
        default=9,
        help="patches and projections per channel (default 9; 1..25)",
    )
    _rule(q)
    q.set_defaults(func=_hierarchy)
    return q


def _add_codes(sub, model_file):
    q = sub.add_parser("codes", help="t-SNE of a layer's codes, coloured by class (scikit-learn)")
    _model(q, model_file)
    _data(q, batch=128)
    q.add_argument(
        "--layer",
        default=None,
        help="module path whose output is the code, e.g. features.3 (default: the input of the "
        "last Linear layer, what the classifier reads)",
    )
    q.add_argument(
        "--perplexity",
        type=positive_number("t-SNE perplexity, below the number of images"),
        default=30.0,
        help="t-SNE perplexity, about the number of neighbours each point keeps (default 30; "
        "> 0 and below the number of images)",
    )
    q.add_argument(
        "--seed",
        type=bounded(0, 2**32 - 1, "random seed"),
        default=0,
        help="random seed of t-SNE and of the thumbnail choice (default 0; 0..4294967295)",
    )
    q.add_argument(
        "--thumbnails",
        type=whole_number(0, "thumbnails; 0 draws none"),
        default=150,
        metavar="N",
        help="draw up to N images at their places, for images of at most 64x64 px (default 150; 0 = none)",
    )
    q.set_defaults(func=_codes)
    return q


def _model(q, model_file) -> None:
    q.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    model_file(q)


def _data(q, batch: int = 64) -> None:
    q.add_argument(
        "--data",
        default=None,
        help="data set name or path, as convnet train takes it (default: the data a checkpoint "
        "was trained on; required for other models)",
    )
    q.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="which split's images to scan (default test)",
    )
    q.add_argument(
        "--images",
        type=whole_number(0, "images; 0 takes all"),
        default=1000,
        metavar="N",
        help="scan N images of the split, a seeded random choice (default 1000; 0 = all)",
    )
    _batch(q, batch)


def _batch(q, default: int) -> None:
    q.add_argument(
        "--batch",
        type=bounded(1, 4096, "images per forward pass"),
        default=default,
        metavar="IMAGES",
        help=f"images per forward pass (default {default}; 1..4096)",
    )


def _layers(q, default: str) -> None:
    q.add_argument(
        "--layer",
        action="append",
        default=None,
        metavar="PATH",
        help=f"module path of a layer with a spatial output, e.g. features.3; repeat for more "
        f"(default: {default})",
    )


def _rule(q) -> None:
    q.add_argument(
        "--rule",
        choices=_RULES,
        default="deconvnet",
        help="how a ReLU passes the signal down: deconvnet max(0, s), guided max(0, s)*[x>0] "
        "(guided backpropagation) or backprop s*[x>0] (the gradient) (default deconvnet)",
    )


def _images(args, loaded):
    from ..errors import ConvnetError
    from ..viz import load_images
    from .viz import _inputs

    spec = args.data or ((loaded.checkpoint or {}).get("config") or {}).get("data")
    if not spec:
        raise ConvnetError(
            f"{loaded.name}: no data set to scan; give --data NAME or PATH (e.g. mnist-sample)"
        )
    kw = _inputs(loaded, args)
    limit = args.images or None
    images = load_images(spec, kw["input_size"], split=args.split, limit=limit)
    return images, {"mean": kw["mean"], "std": kw["std"]}


def _layer_list(args, model) -> list[str]:
    from ..viz import conv_layer_paths

    layers = args.layer or conv_layer_paths(model)
    if not layers:
        from ..errors import ConvnetError

        raise ConvnetError(f"{type(model).__name__} has no conv layer; name one with --layer")
    return layers


def _save_layer(args, fig, kind: str, layer: str, many: bool) -> None:
    """Save one layer's figure: KIND-LAYER by default; with -o OUT and several layers, OUT-LAYER."""
    from pathlib import Path

    from .viz import _save

    if args.output and many:
        out = Path(args.output)
        out = out.with_suffix("") if out.suffix.lower() in (".png", ".svg", ".pdf") else out
        args = argparse.Namespace(**{**vars(args), "output": f"{out}-{layer}"})
    _save(args, fig, kind, layer)


def _patches(args) -> int:
    from ..viz import patches, top_units
    from .viz import _load

    m = _load(args)
    images, norm = _images(args, m)
    layers = _layer_list(args, m.model)
    found = top_units(
        m.model, images, layers, top=args.top, batch_size=args.batch, progress=True, **norm
    )
    for layer in layers:
        fig = patches(
            m.model, images, layer, channels=args.channels, max_channels=args.max_channels,
            found=found[layer], **norm,
        )  # fmt: skip
        _save_layer(args, fig, "patches", layer, len(layers) > 1)
    return 0


def _deconv(args) -> int:
    from ..viz import deconv, projection_rules
    from .viz import _inputs, _load

    m = _load(args)
    kw = _inputs(m, args)
    layers = _layer_list(args, m.model)
    for layer in layers:
        print(f"{layer}: the signal goes down through")
        for where, what, how in reversed(
            projection_rules(m.model, layer, kw["input_size"], args.rule)
        ):
            print(f"  {where} ({what}): {how}")
        fig = deconv(
            m.model,
            args.image,
            layer,
            channels=args.channel,
            count=args.count,
            rule=args.rule,
            **kw,
        )
        _save_layer(args, fig, "deconv", layer, len(layers) > 1)
    return 0


def _occlusion(args) -> int:
    from ..viz import occlusion
    from .viz import _inputs, _load, _save

    m = _load(args)
    fig = occlusion(
        m.model, args.image, target=args.target, size=args.size, stride=args.stride,
        classes=m.classes, batch_size=args.batch, **_inputs(m, args),
    )  # fmt: skip
    return _save(args, fig, "occlusion")


def _hierarchy(args) -> int:
    from ..viz import hierarchy
    from .viz import _load, _save

    m = _load(args)
    images, norm = _images(args, m)
    fig = hierarchy(
        m.model, images, layers=args.layer, channels=args.channels, top=args.top,
        rule=args.rule, batch_size=args.batch, progress=True, name=_short(m), **norm,
    )  # fmt: skip
    return _save(args, fig, "hierarchy")


def _short(loaded) -> str:
    """A title's name for the model: a run folder's or checkpoint's name, else the class name."""
    from pathlib import Path

    if loaded.checkpoint:
        path = Path(loaded.name)
        return path.parent.name if path.suffix in (".pt", ".pth", ".ckpt") else path.name
    return loaded.name if len(loaded.name) <= 30 else type(loaded.model).__name__


def _codes(args) -> int:
    from ..viz import codes
    from .viz import _load, _save

    m = _load(args)
    images, norm = _images(args, m)
    fig = codes(
        m.model, images, args.layer, perplexity=args.perplexity, seed=args.seed,
        thumbnails=args.thumbnails, batch_size=args.batch, progress=True, **norm,
    )  # fmt: skip
    return _save(args, fig, "codes", args.layer)
