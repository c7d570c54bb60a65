"""``convnet data get NAME`` and ``convnet data info SPEC``: fetch and inspect data sets."""

from __future__ import annotations

import argparse

from ..limits import MAX_IMAGE_SIDE

_DIR_HELP = "where named data sets live (default: $CONVNET_DATA, else ~/.cache/convnet/data)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="download and inspect data sets")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    get = sub.add_parser(
        "get",
        help="download a data set's official files, verify their checksums",
        description="Download the official archives into DIR/NAME/, resuming a partial file "
        "and verifying its MD5. Set CONVNET_DATA_MIRROR to fetch from a mirror instead.",
    )
    get.add_argument("name", metavar="NAME", help="mnist, fashion-mnist, cifar10 or cifar100")
    get.add_argument("--dir", "--data-dir", dest="dir", default=None, metavar="DIR", help=_DIR_HELP)
    get.add_argument(
        "--mirror",
        default=None,
        metavar="URL",
        help="base URL serving the same file names (default: $CONVNET_DATA_MIRROR, else the "
        "official site)",
    )
    get.add_argument("--no-progress", action="store_true", help="no progress bar")
    get.set_defaults(func=_get)

    info = sub.add_parser("info", help="load a data set and show its size, classes and statistics")
    info.add_argument(
        "spec",
        nargs="?",
        default="mnist-sample",
        metavar="SPEC",
        help="a data set name or a path (default: mnist-sample)",
    )
    info.add_argument(
        "--dir", "--data-dir", dest="dir", default=None, metavar="DIR", help=_DIR_HELP
    )
    info.add_argument(
        "--image-size",
        nargs="+",
        default=None,
        metavar="HxW",
        help=f"H x W in pixels (e.g. 224x224, or 224 for a square), each side 1..{MAX_IMAGE_SIDE}: resize "
        "and centre-crop an image folder's pictures to this size (default: the pictures' own "
        "size)",
    )
    info.add_argument(
        "--strict",
        action="store_true",
        help="fail on a corrupt image instead of skipping it (default: skip it, with a warning)",
    )
    info.set_defaults(func=_info)


def _get(args: argparse.Namespace) -> int:
    from ..data.catalog import CATALOG, canonical
    from ..data.download import fetch_files

    files = fetch_files(args.name, args.dir, base_url=args.mirror, progress=not args.no_progress)
    entry = CATALOG[canonical(args.name)]
    total = sum(f.size for f in files)
    fetched = sum(f.downloaded for f in files)
    # every file in ``files`` was hashed in this call and matched its official MD5
    print(
        f"{entry.title}: {len(files)} file(s), {total / 1e6:.1f} MB, md5 verified "
        f"({fetched} downloaded, {len(files) - fetched} already there), in {files[0].path.parent}"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    import torch

    from ..data import load

    size = None
    if args.image_size:
        from ._args import parse_image_size

        size = parse_image_size(args.image_size)
    data = load(args.spec, args.dir, image_size=size, strict=args.strict)
    c, h, w = data.input_size
    print(
        f"{data.name}: {data.x_train.shape[0]:,} train / {data.x_test.shape[0]:,} test images, {c}x{h}x{w} uint8"
    )
    print(f"mean {_fmt(data.mean)}  std {_fmt(data.std)}  (train split, [0, 1] units)")
    train = torch.bincount(data.y_train, minlength=data.num_classes).tolist()
    test = torch.bincount(data.y_test, minlength=data.num_classes).tolist()
    width = max(5, *(len(n) for n in data.classes))
    print(f"{'class':<{width}}  {'train':>6}  {'test':>6}")
    shown = data.classes if len(data.classes) <= 20 else data.classes[:10]
    for k, name in enumerate(shown):
        print(f"{name:<{width}}  {train[k]:>6}  {test[k]:>6}")
    if len(shown) < len(data.classes):
        print(f"... {len(data.classes) - len(shown)} more classes")
    return 0


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"
