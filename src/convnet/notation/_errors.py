"""How the notation reports a mistake: the column, the token, what was expected, and a fix."""

from __future__ import annotations

import difflib

from ..errors import NotationError, ShapeError


class NotationShapeError(NotationError, ShapeError):
    """A layer of a line whose hyperparameters do not fit the volume that reaches it."""


def error(
    col: int,
    found: str,
    expected: str,
    hint: str = "",
    cls: type[NotationError] = NotationError,
) -> NotationError:
    """``col 17: expected a number after '*', found 'M'`` (+ ``; hint``), with the parts attached.

    ``found`` is the offending token as typed ('' at the end of the line). The returned error
    carries ``.col`` (1-based), ``.token`` and ``.expected`` for programs that want them.
    """
    shown = f"'{found}'" if found else "the end of the line"
    msg = f"col {col}: expected {expected}, found {shown}"
    if hint:
        msg += f"; {hint}"
    err = cls(msg)
    err.col, err.token, err.expected = col, found, expected
    return err


def problem(
    col: int, token: str, what: str, cls: type[NotationError] = NotationError
) -> NotationError:
    """``col 12: <what>`` for a token that is well formed but wrong (a bad value, a misfit)."""
    err = cls(f"col {col}: {what}")
    err.col, err.token, err.expected = col, token, what
    return err


def closest(name: str, known: list[str]) -> str | None:
    """The known name nearest to ``name`` (difflib's ratio), or None when nothing is close."""
    hits = difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.5)
    return hits[0] if hits else None
