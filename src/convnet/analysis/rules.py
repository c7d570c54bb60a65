"""The notes' hyperparameter rules, checked on every sliding window of a traced model.

Seed 000: the output size (W - F + 2P)/S + 1 must be a whole number, or the neurons do not
"fit" neatly and symmetrically across the input. Frameworks floor it (or round it up, for
pools in ``ceil_mode``), so the windows sit off-centre: the last rows and columns of the padded
input go unread. A window larger than its padded input is an error.

A misfit is rarely one layer's doing: in a stock ResNet every stride-2 layer misfits at 224
because the input is even, so the misfits are reported together, in one line naming the layers,
and the fix suggested is the one a designer would take: keep the architecture's downsampling and
use the input size at which every layer fits (:meth:`convnet.arith.RF.tiles` says which sizes do).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from .. import arith
from ..errors import ShapeError

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

    from ._ops import Call, Window

_NAMED = 12  # layers a grouped warning names before it says "and N more"


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


@dataclass(frozen=True)
class Misfit:
    """One layer whose output size along ``axis`` is not whole."""

    path: str
    where: str  # "conv1 (Conv2d)", with the pattern-language column where there is one
    kind: str  # "conv" or "pool"
    axis: str  # "height", "width" or "height and width"
    n: int
    f: int
    s: int
    p: float
    d: int
    ceil_mode: bool

    @property
    def exact(self) -> Fraction:
        return arith.output_size_exact(self.n, self.f, self.s, self.p, self.d)

    def formula(self) -> str:
        """'(224 - 7 + 2*3)/2 + 1 = 112.5'."""
        k = arith.effective_kernel(self.f, self.d)
        f_txt = f"{self.f}" if self.d == 1 else f"{self.f} (dilated to {k})"
        return f"({self.n} - {f_txt} + 2*{_num(self.p)})/{self.s} + 1 = {float(self.exact):.4g}"

    def rounding(self) -> str:
        """What torch does with the fraction, and which pixels go unread."""
        exact = self.exact
        if self.ceil_mode:
            return (
                f"torch rounds it up to {math.ceil(exact)}, so the last window hangs over the edge"
            )
        lost = int(self.n - arith.effective_kernel(self.f, self.d) + 2 * self.p) % self.s
        unseen = lost - int(self.p)  # unread columns beyond the right/bottom padding
        tail = (
            f"never sees the last {unseen} pixel(s)"
            if unseen > 0
            else "reads the top/left padding but not the bottom/right: its windows sit off-centre"
        )
        return f"torch floors it to {math.floor(exact)} and {tail}"


class Rules:
    """Called by the trace before every sliding window (conv, pool) with its input.

    Raises :class:`ShapeError` for a window larger than its padded input; records misfits, which
    :meth:`report` turns into warnings (or, with ``strict``, one error) after the trace.
    """

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.misfits: list[Misfit] = []
        self._seen: set[tuple] = set()

    def __call__(self, name: str, x: torch.Tensor, w: Window, path: str, module: nn.Module) -> None:
        kind = "conv" if name == "conv2d" else "pool"
        where = f"{path or 'input'} ({type(module).__name__ if path else name})"
        src = getattr(module, "notation_source", None)
        if src:
            where += f" at {src}"
        square = (x.shape[2], w.f[0], w.s[0], w.p[0], w.d[0]) == (
            x.shape[3],
            w.f[1],
            w.s[1],
            w.p[1],
            w.d[1],
        )
        for i, axis in enumerate(("height", "width")):
            if i == 1 and square:
                break  # one check covers both axes
            n, f, s, p, d = int(x.shape[2 + i]), w.f[i], w.s[i], w.p[i], w.d[i]
            k = arith.effective_kernel(f, d)
            if k > n + 2 * p:
                raise ShapeError(
                    f"{where}: the {k}x{k} {kind} window is larger than its padded input "
                    f"({n} + 2*{_num(p)} = {_num(n + 2 * p)} pixels of {axis}); use a smaller "
                    "filter, more padding, or a larger input"
                )
            if not float(2 * p).is_integer() or arith.fits(n, f, s, p, d):
                continue
            key = (path, name, n, f, s, p, d)
            if key not in self._seen:
                self._seen.add(key)
                axis_txt = "height and width" if square else axis
                self.misfits.append(Misfit(path, where, kind, axis_txt, n, f, s, p, d, w.ceil_mode))

    def report(self, model: nn.Module, input_size: tuple[int, ...], calls: list[Call]) -> list[str]:
        """One warning for all the misfits of a traced model (none when every layer fits).

        ``calls`` are the trace's; their sliding windows' receptive fields say at which input
        sizes every layer fits (see :func:`_fitting_input`). Where no input size is known to fit,
        the fix is the misfitting layer's own: a padding, or the layer input it needs.
        """
        if not self.misfits:
            return []
        layers: dict[str, list[Misfit]] = {}
        for m in self.misfits:
            layers.setdefault(m.path or m.where, []).append(m)
        fit = _fitting_input(model, input_size, calls)
        if len(layers) == 1:
            message = _one(self.misfits, fit)
        else:
            message = _many(layers, input_size, fit)
        if self.strict:
            raise ShapeError(message)
        return [message]


def _size(hw: tuple[int, ...]) -> str:
    return f"{hw[0]}x{hw[1]}"


def _one(axes: list[Misfit], fit: tuple[int, int] | None) -> str:
    """The notes' worked formula for one layer's misfit (per axis), and fixes keeping its stride."""
    m = axes[0]
    said = "; and ".join(
        f"{a.formula()} is not whole, so the {a.kind} does not fit the {a.n}-pixel {a.axis}; "
        + a.rounding()
        for a in axes
    )
    pads = sorted(
        set.intersection(*(set(arith.fitting_paddings(a.n, a.f, a.s, a.d)) for a in axes))
    )
    pad_txt = "padding P=" + " or ".join(map(str, pads[:3])) if pads else ""
    if fit is not None:
        fix = (
            f"Fits with {pad_txt} (this layer) or a {_size(fit)} input (every layer)."
            if pads
            else f"A {_size(fit)} input fits every layer."
        )
    else:
        lo, hi = arith.nearest_fitting_inputs(m.n, m.f, m.s, int(m.p), m.d)
        inputs = f"a layer input of {lo} or {hi}" if lo else f"a layer input of {hi}"
        fix = f"Fits with {pad_txt} or {inputs}." if pads else f"Fits with {inputs}."
    return f"{m.where}: {said}. {fix}"


def _many(
    layers: dict[str, list[Misfit]], input_size: tuple[int, ...], fit: tuple[int, int] | None
) -> str:
    """One line for many misfits: the layers named with their sizes, one worked example, a fix."""
    named = [
        f"{path} ("
        + ", ".join(
            f"{float(a.exact):.4g}" + ("" if a.axis == "height and width" else f" {a.axis}")
            for a in axes
        )
        + ")"
        for path, axes in list(layers.items())[:_NAMED]
    ]
    more = len(layers) - len(named)
    first = next(iter(layers.values()))[0]
    text = (
        f"the strides of {len(layers)} layers do not fit a {_size(input_size[-2:])} input: "
        "(W - F + 2P)/S + 1 is not whole at "
        + ", ".join(named)
        + (f" and {more} more" if more else "")
        + f" (e.g. {first.path or first.where}: {first.formula()}); torch floors each (pools in "
        "ceil_mode round up), so their windows sit off-centre on their inputs."
    )
    if fit is not None:
        return text + f" A {_size(fit)} input fits every layer."
    per_layer = []
    for path, axes in list(layers.items())[:_NAMED]:
        a = axes[0]
        pads = arith.fitting_paddings(a.n, a.f, a.s, a.d)
        if pads:
            per_layer.append(f"{path} P={pads[0]}")
    return text + (
        " No nearby input size fits every layer; padding that fits: " + ", ".join(per_layer) + "."
        if per_layer
        else " No nearby input size fits every layer."
    )


def _fitting_input(
    model: nn.Module, input_size: tuple[int, ...], calls: list[Call]
) -> tuple[int, int] | None:
    """The nearest (H, W) at which every sliding window fits (the larger one on a tie).

    Each window layer's output field must tile the input (:meth:`arith.RF.tiles`). That holds
    when the fields follow every change of size in the model, which the trace at hand confirms
    (:func:`_fields_follow`); otherwise (an interpolation, an op the trace does not know) the
    candidate is traced once to make sure. None when no size within one period fits.
    """
    windows = [c for c in calls if c.window is not None]
    if not windows:
        return None
    h, w = (int(v) for v in input_size[-2:])
    near = []
    for axis, n in enumerate((h, w)):
        fields = list(
            {(c.rf[axis].start, c.rf[axis].jump): c.rf[axis] for c in windows if c.rf}.values()
        )
        if all(r.tiles(n) for r in fields):
            near.append(n)
            continue
        found = [x for x in arith.nearest_tiling_inputs(n, fields) if x is not None]
        if not found:
            return None
        near.append(min(found, key=lambda x: (abs(x - n), -x)))
    if not _fields_follow(windows, (h, w)) and not _fits_everywhere(
        model, (*input_size[:-2], *near)
    ):
        return None
    return near[0], near[1]


def _fields_follow(windows: list[Call], hw: tuple[int, int]) -> bool:
    """Whether every window layer's traced output size is what its field predicts.

    A field predicts (n - 1 - 2*start)/jump + 1 units when every layer before fits; when some do
    not, torch's floors nest (floor(floor(x)/S) = floor(x/S)), so the traced size is that value
    rounded down (or up, in ceil_mode). A size that is neither means an op the fields do not
    follow changed the geometry.
    """
    for c in windows:
        if c.rf is None or c.output is None or len(c.output) != 3:
            return False
        for axis in (0, 1):
            units = c.rf[axis].units(hw[axis])
            if not math.floor(units) <= c.output[1 + axis] <= math.ceil(units):
                return False
    return True


def _fits_everywhere(model: nn.Module, input_size: tuple[int, ...]) -> bool:
    from .trace import trace

    rules = Rules()
    try:
        trace(model, input_size, check=rules)
    except (ShapeError, RuntimeError):
        return False
    return not rules.misfits


__all__ = ["Misfit", "Rules"]
