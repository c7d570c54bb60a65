"""The notes' arithmetic as pure functions: output sizes, what fits, receptive fields, parameters.

Seed 000: a conv layer takes a W1xH1xD1 volume and K filters of size F, stride S, zero padding P,
and gives W2 = (W1 - F + 2P)/S + 1 (likewise H2), D2 = K, with (F*F*D1)*K weights and K biases.
With dilation d the filter spans d*(F-1)+1 pixels. The division must be whole: otherwise the
neurons "don't fit" neatly and symmetrically across the input.

This module is a leaf: it imports only the standard library, so ``convnet explain``, the pattern
language and the NumPy reference engine can use it without loading torch. Functions take one
spatial axis at a time; callers apply them to height and width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

# --- output size ------------------------------------------------------------------------------


def effective_kernel(f: int, dilation: int = 1) -> int:
    """The span of a dilated filter: d*(F-1)+1 pixels (F itself when d = 1)."""
    return dilation * (f - 1) + 1


def output_size_exact(w: int, f: int, s: int = 1, p: float = 0, dilation: int = 1) -> Fraction:
    """(W - F_eff + 2P)/S + 1 as an exact fraction: whole when the hyperparameters fit.

    ``p`` may be a half-integer (torch's ``padding='same'`` for an even span pads unevenly).

    >>> output_size_exact(227, 11, 4)  # AlexNet conv1: (227 - 11)/4 + 1
    Fraction(55, 1)
    >>> output_size_exact(5, 3, 3, 1)  # seed 000: S=3 does not fit
    Fraction(7, 3)
    """
    return (w - effective_kernel(f, dilation) + 2 * Fraction(p)) / s + 1


def output_size(
    w: int, f: int, s: int = 1, p: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """The size torch computes: floor of (W - F_eff + 2P)/S + 1, or ceil with ``ceil_mode``.

    With ``ceil_mode`` a last window that would start in the right padding is dropped (torch's
    pooling rule). A result below 1 means no window fits: torch refuses such a layer.

    >>> output_size(224, 11, 4, 2)  # 55.25 floors to 55
    55
    >>> output_size(112, 3, 2, 0, ceil_mode=True)  # GoogLeNet's pools round up
    56
    """
    span = w + 2 * p - effective_kernel(f, dilation)
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1  # floor division, as torch's div_rtn
    if ceil_mode and (out - 1) * s >= w + p:
        out -= 1
    return out


def fits(w: int, f: int, s: int = 1, p: float = 0, dilation: int = 1) -> bool:
    """Whether (W - F_eff + 2P)/S + 1 is whole and at least 1: the neurons fit the input."""
    exact = output_size_exact(w, f, s, p, dilation)
    return exact.denominator == 1 and exact >= 1


def lost_pixels(w: int, f: int, s: int = 1, p: int = 0, dilation: int = 1) -> int:
    """Input pixels (of the padded input) after the last window: (W - F_eff + 2P) mod S."""
    return (w - effective_kernel(f, dilation) + 2 * p) % s


# --- what fits --------------------------------------------------------------------------------


def fitting_paddings(
    w: int, f: int, s: int, dilation: int = 1, limit: int | None = None
) -> list[int]:
    """Paddings P in [0, limit) (default [0, F_eff)) for which the output size is whole."""
    k = effective_kernel(f, dilation)
    top = limit if limit is not None else k
    return [p for p in range(top) if fits(w, f, s, p, dilation)]


def fitting_strides(w: int, f: int, p: int, dilation: int = 1, max_stride: int = 4) -> list[int]:
    """Strides S in [1, max_stride] for which the output size is whole (S=1 always is)."""
    return [s for s in range(1, max_stride + 1) if fits(w, f, s, p, dilation)]


def nearest_fitting_inputs(
    w: int, f: int, s: int, p: int, dilation: int = 1
) -> tuple[int | None, int]:
    """The nearest input sizes below and above ``w`` at which the layer fits (None: none below).

    The fitting sizes repeat every S pixels from F_eff - 2P on, so each is within S of ``w``.
    """

    def ok(n: int) -> bool:
        return fits(n, f, s, p, dilation)

    lo = next((n for n in range(w - 1, max(0, w - s) - 1, -1) if ok(n)), None)
    smallest = max(1, effective_kernel(f, dilation) - 2 * p)  # the window must fit at all
    hi = next(n for n in range(w + 1, max(w, smallest) + s + 1) if ok(n))
    return lo, hi


@dataclass(frozen=True)
class Fixes:
    """What makes one misfitting layer fit, keeping its filter: other paddings, strides, inputs."""

    paddings: list[int]
    strides: list[int]
    inputs: tuple[int | None, int]

    def text(self, axis: str = "width", strides: bool = True) -> str:
        """'padding P=2, stride S=2 or 4, or an input width of 4 or 7' (the notes' wording)."""
        options = []
        if self.paddings:
            options.append("padding P=" + " or ".join(map(str, self.paddings[:3])))
        if strides and self.strides:
            options.append("stride S=" + " or ".join(map(str, self.strides[:3])))
        lo, hi = self.inputs
        options.append(f"an input {axis} of " + (f"{lo} or {hi}" if lo else f"{hi}"))
        return ", ".join(options[:-1]) + (", or " if len(options) > 1 else "") + options[-1]


def fixes(w: int, f: int, s: int, p: int, dilation: int = 1) -> Fixes:
    """Ways to make a layer that does not fit fit: paddings below F_eff, other strides that still
    downsample (S > 1, never S = 1 for a layer meant to downsample), and the nearest inputs."""
    strides = [
        x for x in fitting_strides(w, f, p, dilation, max_stride=max(2 * s, 4)) if x not in (1, s)
    ]
    return Fixes(
        fitting_paddings(w, f, s, dilation), strides, nearest_fitting_inputs(w, f, s, p, dilation)
    )


# --- receptive fields -------------------------------------------------------------------------


@dataclass(frozen=True)
class RF:
    """Receptive field of one unit along one axis, in input pixels.

    ``size``: how many input pixels it sees; ``jump``: the distance in input pixels between two
    neighbouring units of this layer; ``start``: the input coordinate of the centre of the first
    unit's field (pixel centres are 0, 1, 2, ...; negative when padding reaches outside).
    Through a window of span k = d*(F-1)+1, stride S, padding P:
    size' = size + (k-1)*jump, jump' = jump*S, start' = start + ((k-1)/2 - P)*jump.
    """

    size: float = 1
    jump: float = 1
    start: float = 0.0

    def through(self, f: int, s: int = 1, p: float = 0, dilation: int = 1) -> RF:
        """The field after a sliding window (conv or pool) of size F, stride S, padding P."""
        k = effective_kernel(f, dilation)
        return RF(
            size=self.size + (k - 1) * self.jump,
            jump=self.jump * s,
            start=self.start + ((k - 1) / 2 - p) * self.jump,
        )

    def units(self, n: int) -> Fraction:
        """(n - 1 - 2*start)/jump + 1: this layer's units across an n-pixel network input when
        every layer up to it fits (torch's size is this rounded down when some do not)."""
        return (Fraction(n - 1) - 2 * Fraction(self.start)) / Fraction(self.jump) + 1

    def tiles(self, n: int) -> bool:
        """Whether this layer's units tile an n-pixel network input exactly and symmetrically.

        When every layer up to this one fits, its units' centres run from ``start`` to
        ``n - 1 - start`` in steps of ``jump``, so (n - 1 - 2*start)/jump must be a whole number
        (>= 0): that many units plus one. Conversely, if it is whole for every sliding-window
        layer, each fits in turn: the condition on one layer's output reduces to
        (W_in - F + 2P)/S being whole for its input size W_in.
        """
        units = self.units(n)
        return units.denominator == 1 and units >= 1


def nearest_tiling_inputs(
    n: int, fields: list[RF], reach: int | None = None
) -> tuple[int | None, int | None]:
    """The nearest network input sizes below and above ``n`` at which every field in ``fields``
    (the output fields of a network's sliding-window layers) tiles the input: every layer fits.

    The sizes that fit repeat with the least common multiple of the jumps; ``reach`` bounds the
    search (default: that period, at most 4096 pixels). None where no size within reach fits.
    """
    if reach is None:
        period = 1
        for r in fields:
            j = Fraction(r.jump)
            period = math.lcm(period, j.numerator) if j.denominator == 1 else period
        reach = min(period, 4096)

    def ok(m: int) -> bool:
        return m >= 1 and all(r.tiles(m) for r in fields)

    lo = next((m for m in range(n - 1, max(0, n - reach) - 1, -1) if ok(m)), None)
    hi = next((m for m in range(n + 1, n + reach + 1) if ok(m)), None)
    return lo, hi


def stacked_rf(f: int, depth: int, s: int = 1) -> list[int]:
    """Receptive field after each of ``depth`` stacked FxF layers of stride S: 3, 5, 7 for 3x3."""
    rf, out = RF(), []
    for _ in range(depth):
        rf = rf.through(f, s)
        out.append(int(rf.size))
    return out


# --- parameters and multiply-adds -------------------------------------------------------------


def conv_params(
    f_h: int, f_w: int, d_in: int, k: int, groups: int = 1, bias: bool = True
) -> tuple[int, int]:
    """(weights, biases) of a conv layer with parameter sharing: (F*F*D1/groups)*K and K."""
    return f_h * f_w * (d_in // groups) * k, (k if bias else 0)


def conv_params_unshared(out_h: int, out_w: int, f_h: int, f_w: int, d_in: int, k: int) -> int:
    """Parameters without sharing (seed 000): every output neuron has its own filter and bias."""
    return out_h * out_w * k * (f_h * f_w * d_in + 1)


def conv_macs(
    out_h: int, out_w: int, k: int, f_h: int, f_w: int, d_in: int, groups: int = 1
) -> int:
    """Multiply-adds: each of the out_h*out_w*K outputs is a dot product of length F*F*D1/groups."""
    return out_h * out_w * k * f_h * f_w * (d_in // groups)


def fc_params(n_in: int, n_out: int, bias: bool = True) -> tuple[int, int]:
    """(weights, biases) of a fully connected layer: n_in*n_out and n_out."""
    return n_in * n_out, (n_out if bias else 0)


def fc_macs(n_in: int, n_out: int) -> int:
    """Multiply-adds of a fully connected layer: one dot product of length n_in per output."""
    return n_in * n_out


def pool_reads(out_h: int, out_w: int, depth: int, f_h: int, f_w: int) -> int:
    """Values a pooling layer reads (compares or adds): F*F per output. Pooling has no parameters
    and no multiply-adds; it is a fixed function of each depth slice."""
    return out_h * out_w * depth * f_h * f_w


def im2col_shapes(
    f_h: int, f_w: int, d_in: int, out_h: int, out_w: int, k: int
) -> dict[str, tuple[int, int]]:
    """Seed 002's im2col: X_col is [F*F*D1 x W2*H2], W_row is [K x F*F*D1], the product [K x W2*H2]."""
    rows = f_h * f_w * d_in
    cols = out_h * out_w
    return {"X_col": (rows, cols), "W_row": (k, rows), "product": (k, cols)}


__all__ = [
    "RF",
    "Fixes",
    "conv_macs",
    "conv_params",
    "conv_params_unshared",
    "effective_kernel",
    "fc_macs",
    "fc_params",
    "fitting_paddings",
    "fitting_strides",
    "fits",
    "fixes",
    "im2col_shapes",
    "lost_pixels",
    "nearest_fitting_inputs",
    "nearest_tiling_inputs",
    "output_size",
    "output_size_exact",
    "pool_reads",
    "stacked_rf",
]
