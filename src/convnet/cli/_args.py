"""Argument parsing shared by the subcommands: one reading of an image or volume size, one
``--format`` flag, and number types that check their range (a one-line error naming the flag).

Sizes are C x H x W everywhere (``--input 3x227x227``), as torch orders a tensor. The notes
write volumes the other way round, W x H x D (``[227x227x3]``); a size that is clearly in that
order is refused with a one-line hint rather than read as a 227-channel image.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from ..errors import ConvnetError
from ..limits import MAX_IMAGE_SIDE

_SEPARATORS = re.compile(r"\s*[x×*,]\s*")


def _looks_whd(parts: list[int]) -> bool:
    """Whether three numbers read as W x H x D (the notes' order) rather than C x H x W.

    Either the last is a colour depth (1, 3 or 4) and the first two are at least twice it
    (227x227x3), or the first two are equal (a square W x H) and the last is larger, as a deep
    volume's depth is (7x7x512): read as C x H x W, both would be strips a few pixels wide.
    """
    a, b, c = parts
    return (c in (1, 3, 4) and min(a, b) >= 2 * c) or (a == b and c > a)


def parse_size(
    text: str, flag: str = "--input", channels: int | None = None, volume: bool = False
) -> tuple[int, ...]:
    """Read a size written C x H x W, H x W, or one number for a square H = W.

    Returns (C, H, W) when the text has three numbers or ``channels`` (the model's input depth)
    is given, else (H, W). With ``volume`` the depth is required: three numbers. Separators:
    ``x``, ``*`` or ``,``. A user's mistake raises :class:`ConvnetError` naming ``flag``; so does
    a size in the notes' W x H x D order, unless its first number is the model's depth.

    >>> parse_size("3x224x224")
    (3, 224, 224)
    >>> parse_size("224", channels=1)
    (1, 224, 224)
    >>> parse_size("384x256")
    (384, 256)
    """
    try:
        parts = [int(p) for p in _SEPARATORS.split(text.strip().lower())]
    except ValueError:
        parts = []
    example = "3x227x227" if volume else "3x224x224, 224x224 or 224"
    if not 1 <= len(parts) <= 3 or min(parts) < 1:
        raise ConvnetError(
            f"{flag} {text!r}: write C x H x W with positive whole numbers, e.g. {example}"
        )
    if len(parts) == 3 and parts[0] != channels and _looks_whd(parts):
        a, b, c = parts
        raise ConvnetError(f"{flag} takes C x H x W; did you mean {c}x{b}x{a}?")
    if len(parts) == 2 and parts[1] in (1, 3, 4) and parts[0] >= 4 * parts[1]:
        # the old explain form W x D ("227x3"), not a 227x3 image
        raise ConvnetError(
            f"{flag} takes C x H x W; did you mean {parts[1]}x{parts[0]}x{parts[0]}?"
        )
    if max(parts[-2:]) > MAX_IMAGE_SIDE:  # the sides H, W (or the one side)
        raise ConvnetError(
            f"{flag} {text!r}: each side must be 1..{MAX_IMAGE_SIDE} pixels (a longer side is a "
            f"typo: one {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} RGB image is 192 MiB as floats)"
        )
    if volume and len(parts) != 3:
        raise ConvnetError(f"{flag} {text!r}: give the depth too, C x H x W, e.g. {example}")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) == 2 and channels is not None:
        parts = [channels, *parts]
    return tuple(parts)


def parse_image_size(values: list[str], flag: str = "--image-size") -> tuple[int, int]:
    """``--image-size`` as H x W: ``224x160``, ``224`` (square), or the older ``224 160``.

    The depth comes from the pictures, so three numbers are refused with the order to use.
    """
    text = "x".join(values)
    try:
        parts = [int(p) for p in _SEPARATORS.split(text.strip().lower())]
    except ValueError:
        parts = []
    if len(parts) == 3 and min(parts) >= 1:
        h, w = (parts[1], parts[0]) if _looks_whd(parts) else (parts[1], parts[2])  # W x H x D
        raise ConvnetError(
            f"{flag} {text!r}: give H x W (e.g. {h}x{w}); the depth comes from the pictures"
        )
    if not 1 <= len(parts) <= 2 or min(parts) < 1:
        raise ConvnetError(f"{flag} {text!r}: give H x W in pixels, e.g. 224x224, or 224")
    if max(parts) > MAX_IMAGE_SIDE:
        raise ConvnetError(
            f"{flag} {text!r}: each side must be 1..{MAX_IMAGE_SIDE} pixels (a longer side is "
            f"a typo: {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} RGB is 48 MiB per image, 4x that as floats)"
        )
    return parts[0], parts[-1]


FORMATS = ("text", "markdown", "json", "csv")


def _format_name(text: str) -> str:
    # "table" was the text format's name before every command said "text"
    return "text" if text.lower() == "table" else text.lower()


def add_format(
    parser: argparse.ArgumentParser, text: str, formats: tuple[str, ...] = FORMATS
) -> None:
    """``--format``, with the same names in every command that prints a report; text by default.

    ``text`` says what the text format shows, e.g. "the table, sized to the terminal".
    """
    others = ", ".join(f for f in formats if f != "text")
    parser.add_argument(
        "--format",
        type=_format_name,
        choices=formats,
        default="text",
        help=f"text: {text}; or {others} for documents and other programs (default: text)",
    )


def whole_number(
    lo: int, what: str, most: int | None = None, why: str = ""
) -> Callable[[str], int]:
    """An argparse type: a whole number in ``lo..most``; ``what`` says what it counts and ``why``
    why the cap sits where it does, for the one-line error.

    >>> whole_number(1, "images per batch")("8")
    8
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number ({what})") from None
        if value < lo or (most is not None and value > most):
            rule = f"in {lo}..{most}" if most is not None else f">= {lo}"
            reason = f"; {why}" if why and most is not None and value > most else ""
            raise argparse.ArgumentTypeError(f"must be {rule} ({what}{reason}), got {value}")
        return value

    return parse


def positive_number(what: str, most: float | None = None, why: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number in (0, ``most``]; ``what`` says what it measures and
    ``why`` why the cap sits where it does, for the one-line error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number ({what})") from None
        if not value > 0:  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be > 0 ({what}), got {text}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number ({what}), got {text}")
        if most is not None and value > most:
            reason = f"; {why}" if why else ""
            raise argparse.ArgumentTypeError(
                f"must be in (0, {most:g}] ({what}{reason}), got {text}"
            )
        return value

    return parse


_froze = False


def freeze_imports() -> None:
    """Exempt every object alive now from garbage collection, for a short command that has just
    imported torch: Python's first full collection over torch's objects costs about 0.2 s on a
    2-core machine and frees nothing, since modules live until exit. Later objects are collected
    as usual; :func:`thaw` (called when the command ends) undoes it for an in-process caller.
    Nothing happens where the caller has frozen objects of its own."""
    import gc

    global _froze
    if gc.get_freeze_count() == 0:
        gc.freeze()
        _froze = True


def thaw() -> None:
    """Undo :func:`freeze_imports`, if it froze anything."""
    import gc

    global _froze
    if _froze:
        gc.unfreeze()
        _froze = False
