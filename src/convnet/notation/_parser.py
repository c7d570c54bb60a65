"""Recursive-descent parser: tokens -> ``Net``.

Grammar (case-insensitive; ``->`` stands for every arrow, and a dash between layers)::

    line     := seq [';' binding (',' binding)*]
    seq      := item ('->' item)*
    item     := atom ('?' | '*' count)*
    atom     := '[' seq ']' | layer
    layer    := NAME ['-' NUMBER] ['[' DIMS ']'] ['(' arg (',' arg)* ')']
    arg      := KEY '=' NUMBER | NUMBER
    count    := INTEGER | SYMBOL
    binding  := SYMBOL '=' INTEGER

A layer NAME may carry a number glued to it (CONV3, POOL2, FC4096), see ``_spec.LayerSpec``.
"""

from __future__ import annotations

import re

from . import _lexer as lx
from ._errors import closest, error, problem
from ._spec import ALIASES, KNOWN, MAX_INT, SPECS, LayerSpec
from .tree import Layer, Net, Node, Repeat

MAX_DEPTH = 50  # nesting of [ ]; deeper is a typo (and would exhaust the stack)
_INT = re.compile(r"[0-9]+")
_GLUED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*?)([0-9]+)")


def parse(text: str) -> Net:
    """Parse one line of the pattern language into a ``Net`` (see the module grammar)."""
    if not isinstance(text, str):
        raise TypeError(f"parse() takes a str, not {type(text).__name__}")
    return _Parser(lx.tokenize(text)).line()


class _Parser:
    def __init__(self, tokens: list[lx.Token]) -> None:
        self.toks = tokens
        self.i = 0
        self.depth = 0

    # -- token helpers ---------------------------------------------------------------------
    @property
    def tok(self) -> lx.Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> lx.Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> lx.Token:
        t = self.tok
        self.i += 1
        return t

    def expect(self, kind: str, expected: str, hint: str = "") -> lx.Token:
        if self.tok.kind != kind:
            raise error(self.tok.col, self.tok.text, expected, hint)
        return self.take()

    # -- grammar ---------------------------------------------------------------------------
    def line(self) -> Net:
        body = self.seq(closing=None)
        bindings: dict[str, int] = {}
        cols: dict[str, int] = {}
        if self.tok.kind == ";":
            self.take()
            while True:
                name = self.expect(lx.NAME, "a symbol such as 'N' after ';' or ','")
                self.expect("=", f"'=' after {name.text!r}")
                value = self.integer(f"a whole number for {name.text.upper()}")
                key = name.text.upper()
                if key in bindings:
                    raise problem(name.col, name.text, f"{key} is given twice after ';'")
                bindings[key] = value
                cols[key] = name.col
                if self.tok.kind != ",":
                    break
                self.take()
        if self.tok.kind != lx.END:
            raise error(self.tok.col, self.tok.text, "'->' or the end of the line")
        net = Net(body, tuple(sorted(bindings.items())))
        used = net.symbols()
        for key in bindings:
            if key not in used:
                raise problem(
                    cols[key],
                    key,
                    f"{key} is given a value after ';' but no '*{key}' uses it",
                )
        return net

    def seq(self, closing: str | None) -> tuple[Node, ...]:
        items = [self.item()]
        while self.tok.kind in (lx.ARROW, lx.DASH):
            arrow = self.take()
            if self.tok.kind in (lx.END, "]", ";"):
                raise error(self.tok.col, self.tok.text, f"a layer after {arrow.text!r}")
            items.append(self.item())
        if closing is not None and self.tok.kind != closing:
            raise error(self.tok.col, self.tok.text, f"'->' or {closing!r}")
        return tuple(items)

    def item(self) -> Node:
        node = self.atom()
        while self.tok.kind in ("?", "*"):
            op = self.take()
            if op.kind == "?":
                if node.optional:
                    raise problem(op.col, "?", "this is already optional: write a single '?'")
                node = _with_optional(node)
            else:
                cnt = self.tok
                if cnt.kind == lx.NAME:
                    self.take()
                    count: int | str = cnt.text.upper()
                else:
                    count = self.integer("a number after '*'")
                node = Repeat(_body(node), count, False, col=node.col, count_col=cnt.col)
        return node

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "[":
            self.take()
            if self.tok.kind == "]":
                raise error(self.tok.col, "]", "a layer inside '[ ]'")
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise problem(t.col, "[", f"brackets nest deeper than {MAX_DEPTH} levels")
            body = self.seq(closing="]")
            self.depth -= 1
            self.take()
            return Repeat(body, 1, False, col=t.col, count_col=t.col)
        if t.kind == lx.NAME:
            return self.layer()
        raise error(t.col, t.text, "a layer name (such as CONV, POOL, FC) or '['")

    def layer(self) -> Layer:
        t = self.take()
        spec, glued = _resolve_name(t)
        args: dict[str, int | float] = {}

        def put(key: str, value: int | float, col: int, token: str, key_col: int = 0) -> None:
            if key in args:
                raise problem(key_col or col, token, f"{spec.name}'s {key} is given twice")
            param = spec.param(key)
            args[key] = _check_value(spec, param, value, col, token)

        if glued is not None:
            put(spec.digits, int(glued), t.col, t.text)
        if self.tok.kind == lx.DASH and self.peek().kind == lx.NUMBER and spec.dash:
            self.take()
            num = self.take()
            put(spec.dash, _number(num), num.col, num.text)
        if self.tok.kind == "[" and self.peek().kind in (lx.DIMS, lx.NUMBER):
            if spec.name != "INPUT":
                raise problem(
                    self.tok.col,
                    "[",
                    f"only INPUT takes a size in brackets; put '->' between {t.text} and '['",
                )
            self.take()
            dims = self.expect(lx.DIMS, "the input size as WxHxD, e.g. 32x32x3")
            parts = re.split(r"\s*[xX×]\s*", dims.text)
            if len(parts) != 3:
                raise error(
                    dims.col, dims.text, "three sizes WxHxD (width x height x depth), e.g. 32x32x3"
                )
            for key, part in zip(("W", "H", "D"), parts):
                put(key, int(part), dims.col, dims.text)
            self.expect("]", "']' after the input size")
        if self.tok.kind == "(":
            self.arguments(spec, put)
        if spec.name == "INPUT" and 0 < len(args) < 3:
            raise problem(t.col, t.text, "INPUT needs all of W, H and D (or none): INPUT[32x32x3]")
        order = [p.name for p in spec.params]
        return Layer(
            spec.name, tuple(sorted(args.items(), key=lambda kv: order.index(kv[0]))), col=t.col
        )

    def arguments(self, spec: LayerSpec, put) -> None:
        open_tok = self.take()
        if not spec.params:
            raise problem(open_tok.col, "(", f"{spec.name} takes no arguments")
        while True:
            t = self.tok
            if t.kind == lx.NAME and self.peek().kind == "=":
                param = spec.param(t.text)
                if param is None:
                    names = ", ".join(p.name for p in spec.params)
                    raise problem(
                        t.col, t.text, f"{spec.name} has no parameter {t.text!r}; it takes {names}"
                    )
                self.take()
                self.take()
                num = self.expect(lx.NUMBER, f"a number for {param.name}")
                put(param.name, _number(num), num.col, num.text, key_col=t.col)
            elif t.kind == lx.NUMBER and spec.positional:
                self.take()
                put(spec.positional, _number(t), t.col, t.text)
            else:
                names = ", ".join(f"{p.name}=..." for p in spec.params)
                raise error(t.col, t.text, f"an argument of {spec.name} ({names})")
            if self.tok.kind == ")":
                self.take()
                return
            self.expect(",", "',' or ')'")

    def integer(self, expected: str) -> int:
        t = self.tok
        if t.kind != lx.NUMBER or not _INT.fullmatch(t.text):
            raise error(t.col, t.text, expected)
        self.take()
        value = int(t.text)
        if value > MAX_INT:
            raise problem(t.col, t.text, f"{t.text} is too large (at most {MAX_INT})")
        return value


def _with_optional(node: Node) -> Node:
    if isinstance(node, Layer):
        return Layer(node.kind, node.args, True, col=node.col)
    return Repeat(node.body, node.count, True, col=node.col, count_col=node.count_col)


def _body(node: Node) -> tuple[Node, ...]:
    # '[ X ]*N' and 'X*N' are the same tree; a plain '[ X ]' group is unwrapped once repeated.
    if isinstance(node, Repeat) and node.count == 1 and not node.optional:
        return node.body
    return (node,)


def _resolve_name(t: lx.Token) -> tuple[LayerSpec, str | None]:
    """The layer a NAME token means and the digits glued to it (CONV3 -> CONV, '3')."""
    up = t.text.upper()
    up = ALIASES.get(up, up)
    if up in SPECS:
        return SPECS[up], None
    m = _GLUED.fullmatch(up)
    if m:
        base = ALIASES.get(m.group(1), m.group(1))
        if base in SPECS and SPECS[base].digits:
            return SPECS[base], m.group(2)
        if base in SPECS:
            raise problem(t.col, t.text, f"{base} takes no number after its name")
    guess = closest(up, KNOWN)
    hint = f"did you mean {guess}?" if guess else f"known layers: {', '.join(SPECS)}"
    raise problem(t.col, t.text, f"unknown layer {t.text!r}; {hint}")


def _number(t: lx.Token) -> int | float:
    return int(t.text) if _INT.fullmatch(t.text) else float(t.text)


def _check_value(spec: LayerSpec, param, value: int | float, col: int, token: str) -> int | float:
    name = f"{spec.name}'s {param.name}"
    if param.kind is int:
        if isinstance(value, float):
            raise problem(col, token, f"{name} must be a whole number, not {token}")
        if value > MAX_INT:
            raise problem(col, token, f"{name}={token} is too large (at most {MAX_INT})")
    else:
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise problem(col, token, f"{name} must be a finite number")
    if value < param.minimum or (param.below is not None and value >= param.below):
        upper = f" and below {param.below}" if param.below is not None else ""
        raise problem(
            col, token, f"{name}={token} is out of range: it must be >= {param.minimum}{upper}"
        )
    return value
