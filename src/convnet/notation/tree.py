"""The syntax tree of a line: layers, repetitions and the values of symbolic counts.

Nodes are frozen dataclasses, so trees compare with ``==`` and hash. Columns are kept for
error messages but do not take part in comparisons: ``parse(format(t)) == t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layer:
    """One layer as written: ``kind`` is the canonical name (``CONV``), ``args`` the parameters
    the text gave explicitly, in the vocabulary's order, e.g. ``(("F", 3), ("K", 64))``.
    ``optional`` marks ``POOL?``."""

    kind: str
    args: tuple[tuple[str, int | float], ...] = ()
    optional: bool = False
    col: int = field(default=0, compare=False)

    @property
    def params(self) -> dict[str, int | float]:
        return dict(self.args)


@dataclass(frozen=True)
class Repeat:
    """``[ body ]*count``; ``count`` is an int >= 0 or the name of a symbol (``N``) whose value
    the line's bindings or ``build(counts=...)`` give. ``[ body ]`` alone has count 1."""

    body: tuple[Node, ...]
    count: int | str = 1
    optional: bool = False
    col: int = field(default=0, compare=False)
    count_col: int = field(default=0, compare=False)


Node = Layer | Repeat


@dataclass(frozen=True)
class Net:
    """A whole line: the sequence, then the bindings written after ``;`` (``N=2, M=3``),
    sorted by name."""

    body: tuple[Node, ...]
    bindings: tuple[tuple[str, int], ...] = ()

    def symbols(self) -> list[str]:
        """The symbolic counts used in the line, in order of first appearance."""
        seen: list[str] = []

        def walk(nodes: tuple[Node, ...]) -> None:
            for node in nodes:
                if isinstance(node, Repeat):
                    if isinstance(node.count, str) and node.count not in seen:
                        seen.append(node.count)
                    walk(node.body)

        walk(self.body)
        return seen
