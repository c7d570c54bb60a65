"""The ``convnet`` command line: thin subcommands, each calling one public function.

Each module in this package that defines ``register(subparsers)`` adds its subcommands; it
sets ``func`` on its parser to a function ``(args) -> int``. A ``ConvnetError`` (a user's
mistake) is printed as one line and exits 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys
import typing
import warnings

from ..errors import ConvnetError
from ._args import thaw


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistyped command line is one error line, not the whole usage first."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# Subcommands registered by a module of another name; every other subcommand lives in the
# module of its own name (tests/test_cli_help.py checks both against what ``register`` adds).
OWNER = {"linear": "features"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or, given the subcommand a command line names, only that one's.

    Registering one subcommand imports one module instead of all fifteen, which is most of what
    the CLI adds to torch's own start; ``--help``, a mistyped command or none at all get the
    whole parser, so they list every command.
    """
    from .. import __version__

    parser = _Parser(
        prog="convnet",
        description="The ConvNet of the cs231n notes: build, inspect, train, convert, see.",
    )
    parser.add_argument("--version", action="version", version=f"convnet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # subparsers are _Parser too
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    owner = OWNER.get(command or "", command)
    for name in [owner] if owner in names else names:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand a command line names: its first word, unless an option comes first."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def console() -> int:
    """The ``convnet`` program (and ``python -m convnet``): :func:`main` for a process that ends
    when it returns, so what the command froze stays frozen (see ``_args.freeze_imports``):
    Python's collection at exit would otherwise walk torch's objects, 0.7 s of every summary."""
    return main(thaw_after=False)


def main(argv: list[str] | None = None, *, thaw_after: bool = True) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) in this process; return the exit
    status (0 done, 2 bad input, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2

    def one_line(message, category, filename, lineno, file=None, line=None):
        print(f"convnet {args.command}: warning: {message}", file=sys.stderr)

    shown = warnings.showwarning
    warnings.showwarning = one_line  # warnings read as the CLI's own lines, not source excerpts
    try:
        _check_outputs(args)
        return int(args.func(args) or 0)
    except ConvnetError as e:
        print(f"convnet {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"convnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # an output or input the system refuses: unwritable, full, missing
        print(f"convnet {args.command}: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(
            f"convnet {args.command}: error: out of memory; use a smaller batch, input size or "
            "model",
            file=sys.stderr,
        )
        return 2
    except Exception as e:
        line = _user_code_line(e)
        if line is None:
            raise  # convnet's own bug: the traceback is what its report needs
        print(f"convnet {args.command}: error: your model code failed: {line}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = shown
        if thaw_after:
            thaw()


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse an unwritable output before the command works for minutes towards it.

    A subcommand names its outputs with ``set_defaults(writes={"dest": "file" | "folder"})``;
    each one given is checked by :func:`convnet.io.check_writable`.
    """
    writes = getattr(args, "writes", None) or {}
    if writes:
        from ..io import check_writable

        for dest, kind in writes.items():
            value = getattr(args, dest, None)
            if value:
                check_writable(value, folder=kind == "folder", flag=f"--{dest.replace('_', '-')}")


_OS_HINTS = {
    errno.EACCES: "choose a folder you may write to, or change its permissions",
    errno.EPERM: "choose a folder you may write to, or change its permissions",
    errno.EROFS: "the file system is read-only; write elsewhere",
    errno.ENOSPC: "the disk is full; free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is used up; free some space or write elsewhere",
    errno.EISDIR: "it is a folder; give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a part of the path is a file, not a folder",
    errno.ENOENT: "no such file or folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def os_error_line(e: OSError) -> str:
    """One line for a refused file operation: the path, the system's reason and what to do."""
    path = e.filename2 if isinstance(e, IsADirectoryError) and e.filename2 else e.filename
    reason = e.strerror or type(e).__name__
    hint = _OS_HINTS.get(e.errno or 0)
    where = f"{os.fsdecode(path)}: " if path is not None else ""
    return f"{where}{reason}" + (f" ({hint})" if hint else "")


def _user_code_line(e: Exception) -> str | None:
    """The one-line account of an exception raised inside a user's model file, else None."""
    resolve = sys.modules.get("convnet.resolve")
    if resolve is None or not resolve.user_modules():
        return None
    return resolve.user_code_error(e) if resolve.raised_in_user_code(e) else None
