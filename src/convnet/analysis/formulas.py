"""The notes' arithmetic as pure functions: output sizes, parameter counts, MACs, receptive fields.

Seed 000: a conv layer takes a W1xH1xD1 volume and K filters of size F, stride S, zero padding P,
and gives W2 = (W1 - F + 2P)/S + 1 (likewise H2), D2 = K, with (F*F*D1)*K weights and K biases.
With dilation d the filter spans d*(F-1)+1 pixels. The division must be whole: otherwise the
neurons "don't fit" neatly across the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction


def effective_kernel(f: int, dilation: int = 1) -> int:
    """The span of a dilated filter: d*(F-1)+1."""
    return dilation * (f - 1) + 1


def output_size_exact(w: int, f: int, s: int = 1, p: int = 0, dilation: int = 1) -> Fraction:
    """(W - F_eff + 2P)/S + 1 as an exact fraction: whole when the hyperparameters fit."""
    return Fraction(w - effective_kernel(f, dilation) + 2 * p, s) + 1


def output_size(
    w: int, f: int, s: int = 1, p: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> int:
    """The size frameworks compute: floor (or ceil) of :func:`output_size_exact`."""
    exact = output_size_exact(w, f, s, p, dilation)
    return math.ceil(exact) if ceil_mode else math.floor(exact)


def fits(w: int, f: int, s: int = 1, p: int = 0, dilation: int = 1) -> bool:
    return output_size_exact(w, f, s, p, dilation).denominator == 1


def fitting_paddings(
    w: int, f: int, s: int, dilation: int = 1, limit: int | None = None
) -> list[int]:
    """Paddings P in [0, F_eff) for which (W - F_eff + 2P)/S + 1 is whole."""
    k = effective_kernel(f, dilation)
    top = limit if limit is not None else k
    return [p for p in range(top) if (w - k + 2 * p) >= 0 and (w - k + 2 * p) % s == 0]


def fitting_strides(
    w: int, f: int, p: int, dilation: int = 1, max_stride: int | None = None
) -> list[int]:
    """Strides S in [1, max_stride] for which the output size is whole."""
    span = w - effective_kernel(f, dilation) + 2 * p
    top = max_stride or max(1, span)
    return [s for s in range(1, top + 1) if span >= 0 and span % s == 0]


def nearest_fitting_inputs(w: int, f: int, s: int, p: int, dilation: int = 1) -> tuple[int, int]:
    """The nearest input sizes below and above ``w`` for which the layer fits."""
    lo, hi = w, w
    while lo > 0 and not fits(lo, f, s, p, dilation):
        lo -= 1
    while not fits(hi, f, s, p, dilation):
        hi += 1
    return lo, hi


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


def im2col_shapes(
    f_h: int, f_w: int, d_in: int, out_h: int, out_w: int, k: int
) -> dict[str, tuple[int, int]]:
    """Seed 002's im2col: X_col is [F*F*D1 x W2*H2], W_row is [K x F*F*D1], the product [K x W2*H2]."""
    rows = f_h * f_w * d_in
    cols = out_h * out_w
    return {"X_col": (rows, cols), "W_row": (k, rows), "product": (k, cols)}


@dataclass(frozen=True)
class RF:
    """Receptive field of one unit along one axis, in input pixels.

    ``size``: how many input pixels it sees; ``jump``: the distance in input pixels between two
    neighbouring units of this layer; ``start``: the input coordinate of the centre of the first
    unit's field (pixel centres are 0, 1, 2, ...; negative when padding reaches outside).
    """

    size: float = 1
    jump: float = 1
    start: float = 0.0

    def through(self, f: int, s: int = 1, p: int = 0, dilation: int = 1) -> RF:
        """The field after a sliding window (conv or pool) of size F, stride S, padding P."""
        k = effective_kernel(f, dilation)
        return RF(
            size=self.size + (k - 1) * self.jump,
            jump=self.jump * s,
            start=self.start + ((k - 1) / 2 - p) * self.jump,
        )


def stacked_rf(f: int, depth: int, s: int = 1) -> list[int]:
    """Receptive field after each of ``depth`` stacked FxF layers of stride S: 3, 5, 7 for 3x3."""
    rf, out = RF(), []
    for _ in range(depth):
        rf = rf.through(f, s)
        out.append(int(rf.size))
    return out
