"""The ``convnet`` command line: thin subcommands, each calling one public function.

Each module in this package that defines ``register(subparsers)`` adds its subcommands; it
sets ``func`` on its parser to a function ``(args) -> int``. A ``ConvnetError`` (a user's
mistake) is printed as one line and exits 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import typing
import warnings

from ..errors import ConvnetError


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistyped command line is one error line, not the whole usage first."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="convnet",
        description="The ConvNet of the cs231n notes: build, inspect, train, convert, see.",
    )
    parser.add_argument("--version", action="version", version=f"convnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # subparsers are _Parser too
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2

    def one_line(message, category, filename, lineno, file=None, line=None):
        print(f"convnet {args.command}: warning: {message}", file=sys.stderr)

    shown = warnings.showwarning
    warnings.showwarning = one_line  # warnings read as the CLI's own lines, not source excerpts
    try:
        return int(args.func(args) or 0)
    except ConvnetError as e:
        print(f"convnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"convnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        warnings.showwarning = shown
