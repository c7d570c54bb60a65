"""Split a line into tokens, each with its 1-based column in the text as typed.

Accepted surface forms, so that lines copied from the notes work unchanged:
arrows ``->``, ``=>``, ``⇒``, ``→`` and LaTeX ``\\Rightarrow`` / ``\\rightarrow`` / ``\\to``;
a dash between layer names (``INPUT - CONV - RELU``); markdown escapes (``\\*``, ``\\[``);
``$`` math delimiters and a trailing ``\\`` (a markdown line break) are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._errors import problem

# Token kinds.
NAME, NUMBER, DIMS, ARROW, DASH = "name", "number", "dims", "arrow", "dash"
PUNCT = {"[": "[", "]": "]", "(": "(", ")": ")", "*": "*", "?": "?", ",": ",", "=": "=", ";": ";"}
END = "end"

_DIMS = re.compile(r"\d+(?:\s*[xX×]\s*\d+)+(?![\w.])", re.ASCII)
_NUMBER = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LATEX_ARROWS = {"rightarrow", "to", "longrightarrow", "implies", "mapsto"}
_DIGITS = set("0123456789")
_ESCAPABLE = set("*[]()_-?=,;")


@dataclass(frozen=True)
class Token:
    kind: str
    text: str  # as typed (for numbers and names) or the canonical symbol
    col: int  # 1-based column of its first character


def tokenize(text: str) -> list[Token]:
    """Tokens of ``text``, ending with an END token; raises NotationError on a stray character."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c.isspace() or c == "$":
            i += 1
        elif c == "\\":
            nxt = text[i + 1] if i + 1 < n else ""
            if nxt == "" or nxt.isspace():  # markdown hard line break
                i += 1
            elif nxt in _ESCAPABLE:  # markdown escape: \* is *
                tokens.append(_punct_or_dash(text, i + 1, col))
                i += 2
            else:
                m = _NAME.match(text, i + 1)
                word = m.group() if m else nxt
                if m and word.lower() in _LATEX_ARROWS:
                    tokens.append(Token(ARROW, "->", col))
                    i = m.end()
                else:
                    raise problem(
                        col,
                        "\\" + word,
                        f"unknown escape '\\{word}'; write arrows as '->' (or \\Rightarrow) "
                        "and repetitions as '*N'",
                    )
        elif text.startswith(("->", "=>"), i):
            tokens.append(Token(ARROW, "->", col))
            i += 2
        elif c in "⇒→⟶⟹":
            tokens.append(Token(ARROW, "->", col))
            i += 1
        elif c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            m = _DIMS.match(text, i)
            if m:
                tokens.append(Token(DIMS, m.group(), col))
            else:
                m = _NUMBER.match(text, i)
                tokens.append(Token(NUMBER, m.group(), col))
            i = m.end()
        elif c.isascii() and (c.isalpha() or c == "_"):
            m = _NAME.match(text, i)
            tokens.append(Token(NAME, m.group(), col))
            i = m.end()
        elif c in PUNCT or c == "-":
            tokens.append(_punct_or_dash(text, i, col))
            i += 1
        else:
            raise problem(
                col,
                c,
                f"unexpected character {c!r}; a line is made of layer names, '->', "
                "'[ ... ]*N', '?', and (KEY=VALUE) arguments",
            )
    tokens.append(Token(END, "", n + 1))
    return tokens


def _punct_or_dash(text: str, i: int, col: int) -> Token:
    c = text[i]
    return Token(DASH, "-", col) if c == "-" else Token(PUNCT[c], c, col)
