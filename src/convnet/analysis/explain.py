"""The notes' formulas worked step by step for one layer, as a learner would on paper.

Each function returns the lines of the explanation; ``convnet explain`` prints them.
"""

from __future__ import annotations

from ..errors import ShapeError
from . import formulas as fm


def parse_volume(text: str) -> tuple[int, int, int]:
    """'227x227x3' (W x H x D, as the notes write volumes) -> (W, H, D)."""
    try:
        parts = [int(p) for p in text.lower().replace("*", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 2:
        parts = [parts[0], parts[0], parts[1]]
    if len(parts) != 3 or any(p <= 0 for p in parts):
        raise ShapeError(f"--input {text!r}: write the volume as W x H x D, e.g. 227x227x3")
    return parts[0], parts[1], parts[2]


def _size_lines(
    axis: str, w: int, f: int, s: int, p: int, d: int = 1
) -> tuple[list[str], int | None]:
    k = fm.effective_kernel(f, d)
    sym = "W" if axis == "width" else "H"
    f_txt = str(f) if d == 1 else f"{k} (F={f} dilated by {d}: d*(F-1)+1)"
    exact = fm.output_size_exact(w, f, s, p, d)
    span = w - k + 2 * p
    line = f"output {axis}  {sym}2 = ({sym}1 - F + 2P)/S + 1 = ({w} - {f_txt} + 2*{p})/{s} + 1 = {span}/{s} + 1"
    if k > w + 2 * p:
        return [
            line + f": the {k}-pixel window is larger than the padded input ({w + 2 * p})"
        ], None
    if exact.denominator != 1:
        lo, hi = fm.nearest_fitting_inputs(w, f, s, p, d)
        fixes = []
        pads = fm.fitting_paddings(w, f, s, d)
        if pads:
            fixes.append("padding P=" + " or ".join(map(str, pads[:3])))
        strides = [x for x in fm.fitting_strides(w, f, p, d, max_stride=max(2 * s, 4)) if x != s]
        if strides:
            fixes.append("stride S=" + " or ".join(map(str, strides[:3])))
        fixes.append(f"an input {axis} of {lo} or {hi}" if lo > 0 else f"an input {axis} of {hi}")
        return [
            line + f" = {float(exact):.4g}",
            f"  -> not a whole number: the neurons do not fit neatly across the input (stride S={s} is invalid "
            f"here). Frameworks floor it to {int(exact)} and never look at the last {span % s} pixel(s).",
            "  -> fits with " + ", ".join(fixes),
        ], None
    return [line + f" = {int(exact)}"], int(exact)


def explain_conv(
    volume: tuple[int, int, int], f: int, s: int = 1, p: int = 0, k: int = 1, d: int = 1
) -> list[str]:
    w1, h1, d1 = volume
    lines = [
        f"CONV: input {w1}x{h1}x{d1}, K={k} filters of {f}x{f}x{d1}, stride S={s}, zero padding P={p}"
        + (f", dilation {d}" if d != 1 else "")
    ]
    wl, w2 = _size_lines("width", w1, f, s, p, d)
    lines += wl
    if h1 != w1:
        hl, h2 = _size_lines("height", h1, f, s, p, d)
        lines += hl
    else:
        h2 = w2
    if w2 is None or h2 is None:
        return lines
    neurons = w2 * h2 * k
    weights, biases = fm.conv_params(f, f, d1, k)
    unshared = fm.conv_params_unshared(h2, w2, f, f, d1, k)
    cols = fm.im2col_shapes(f, f, d1, h2, w2, k)
    macs = fm.conv_macs(h2, w2, k, f, f, d1)
    lines += [
        f"output depth  D2 = K = {k}",
        f"output volume {w2}x{h2}x{k} = {neurons:,} neurons",
        f"parameters with sharing: (F*F*D1)*K = ({f}*{f}*{d1})*{k} = {weights:,} weights + {biases} biases "
        f"= {weights + biases:,}",
        f"without sharing (each neuron its own filter and bias): {neurons:,} x ({f}*{f}*{d1} + 1) = {unshared:,}",
        f"im2col: X_col [F*F*D1 x W2*H2] = [{cols['X_col'][0]} x {cols['X_col'][1]}], W_row [K x F*F*D1] = "
        f"[{cols['W_row'][0]} x {cols['W_row'][1]}]; W_row @ X_col = [{cols['product'][0]} x {cols['product'][1]}] "
        f"-> reshaped to {w2}x{h2}x{k}",
        f"  (X_col holds {cols['X_col'][0] * cols['X_col'][1]:,} values vs {w1 * h1 * d1:,} in the input: "
        "overlapping fields are copied)",
        f"multiply-adds: {neurons:,} outputs x {f}*{f}*{d1} = {macs:,} MACs ({2 * macs:,} FLOPs)",
    ]
    return lines


def explain_pool(
    volume: tuple[int, int, int], f: int = 2, s: int = 2, p: int = 0, kind: str = "max"
) -> list[str]:
    w1, h1, d1 = volume
    lines = [f"POOL ({kind}): input {w1}x{h1}x{d1}, window F={f}, stride S={s}, padding P={p}"]
    wl, w2 = _size_lines("width", w1, f, s, p)
    lines += wl
    if h1 != w1:
        hl, h2 = _size_lines("height", h1, f, s, p)
        lines += hl
    else:
        h2 = w2
    if w2 is None or h2 is None:
        return lines
    kept = w2 * h2 * d1
    lines += [
        f"output depth  D2 = D1 = {d1} (each depth slice is pooled on its own)",
        f"output volume {w2}x{h2}x{d1} = {kept:,} values; parameters: 0 (a fixed function)",
        f"activations kept {kept:,} of {w1 * h1 * d1:,}: {100 * (1 - kept / (w1 * h1 * d1)):.0f}% discarded",
    ]
    return lines


def explain_fc(volume: tuple[int, int, int], outputs: int) -> list[str]:
    w1, h1, d1 = volume
    n_in = w1 * h1 * d1
    return [
        f"FC: input {w1}x{h1}x{d1} = {n_in:,} values, {outputs:,} neurons each connected to all of them",
        f"weights {n_in:,} x {outputs:,} = {n_in * outputs:,} + {outputs:,} biases = {n_in * outputs + outputs:,}",
        f"multiply-adds: {n_in * outputs:,} MACs",
        f"as a convolution: F={w1}"
        + (f"x{h1}" if h1 != w1 else "")
        + f", S=1, P=0, K={outputs} on the {w1}x{h1}x{d1} volume gives 1x1x{outputs} with the same weights "
        "(FC -> CONV); on a larger input it slides and gives a map of scores",
    ]


def explain_stack(f: int = 3, depth: int = 3, channels: int | None = None) -> list[str]:
    rfs = fm.stacked_rf(f, depth)
    big = rfs[-1]
    c = "C" if channels is None else str(channels)
    per = f * f * depth
    lines = [
        f"{depth} stacked {f}x{f} CONV layers (stride 1), each with {c} filters on a depth-{c} input:"
    ]
    lines += [f"  layer {i + 1} sees {r}x{r} of the input" for i, r in enumerate(rfs)]
    lines.append(
        f"parameters: {depth} x ({f}*{f}*{c})*{c} = {per}{c}^2 vs one {big}x{big} layer: "
        f"({big}*{big}*{c})*{c} = {big * big}{c}^2"
        if channels is None
        else f"parameters: {depth} x ({f}*{f}*{c})*{c} = {per * channels**2:,} vs one {big}x{big} layer: "
        f"{big * big * channels**2:,} ({per}C^2 vs {big * big}C^2)"
    )
    lines.append(
        f"the stack has {depth - 1} more non-linearities and {100 * (1 - per / (big * big)):.0f}% fewer "
        "weights; the price is more activation memory for backprop"
    )
    return lines
