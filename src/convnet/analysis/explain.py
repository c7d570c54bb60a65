"""The notes' formulas worked step by step for one layer, as a learner would on paper.

Each function takes the input size as torch orders it, (C, H, W), and returns the lines of the
explanation; ``convnet explain`` prints them. The lines write volumes as the notes do, W x H x D,
and say so. Only :mod:`convnet.arith` and the standard library are used: no torch, so the
command starts at once.
"""

from __future__ import annotations

from .. import arith

WHD = "(W x H x D)"  # the label on every volume written in the notes' order


def _whd(c: int, h: int, w: int) -> str:
    return f"{w}x{h}x{c}"


def _unread(w: int, f: int, s: int, p: int, d: int) -> str:
    """Which pixels a floored output leaves unread: real pixels, or only bottom/right padding."""
    lost = arith.lost_pixels(w, f, s, p, d)
    unseen = lost - p
    if unseen > 0:
        return f"never look at the last {unseen} pixel(s)"
    return f"leave the last {lost} padding column(s) unread, so the windows sit off-centre"


def _size_lines(
    axis: str, w: int, f: int, s: int, p: int, d: int = 1
) -> tuple[list[str], int | None]:
    """W2 = (W1 - F + 2P)/S + 1 along one axis, with the fixes when it is not whole."""
    k = arith.effective_kernel(f, d)
    sym = "W" if axis == "width" else "H"
    f_txt = str(f) if d == 1 else f"{k} (F={f} dilated by {d}: d*(F-1)+1)"
    exact = arith.output_size_exact(w, f, s, p, d)
    span = w - k + 2 * p
    line = (
        f"output {axis}  {sym}2 = ({sym}1 - F + 2P)/S + 1 = ({w} - {f_txt} + 2*{p})/{s} + 1 "
        f"= {span}/{s} + 1"
    )
    if k > w + 2 * p:
        return [
            line + f": the {k}-pixel window is larger than the padded input ({w + 2 * p})"
        ], None
    if exact.denominator != 1:
        return [
            line + f" = {float(exact):.4g}",
            f"  -> not a whole number: the neurons do not fit neatly across the input (stride S={s} "
            f"is invalid here). Frameworks floor it to {int(exact)} and {_unread(w, f, s, p, d)}.",
            "  -> fits with " + arith.fixes(w, f, s, p, d).text(axis),
        ], None
    return [line + f" = {int(exact)}"], int(exact)


def _output_sizes(
    h1: int, w1: int, f: int, s: int, p: int, d: int = 1
) -> tuple[list[str], int | None, int | None]:
    lines, w2 = _size_lines("width", w1, f, s, p, d)
    h2 = w2
    if h1 != w1:
        more, h2 = _size_lines("height", h1, f, s, p, d)
        lines += more
    return lines, h2, w2


def explain_conv(
    input_size: tuple[int, int, int], f: int, s: int = 1, p: int = 0, k: int = 1, d: int = 1
) -> list[str]:
    """A conv layer of K FxF filters, stride S, padding P (dilation d) on a (C, H, W) input."""
    d1, h1, w1 = input_size
    lines = [
        f"CONV: input {_whd(d1, h1, w1)} {WHD}, K={k} filters of {f}x{f}x{d1}, stride S={s}, "
        f"zero padding P={p}" + (f", dilation {d}" if d != 1 else "")
    ]
    size_lines, h2, w2 = _output_sizes(h1, w1, f, s, p, d)
    lines += size_lines
    if w2 is None or h2 is None:
        return lines
    neurons = w2 * h2 * k
    weights, biases = arith.conv_params(f, f, d1, k)
    unshared = arith.conv_params_unshared(h2, w2, f, f, d1, k)
    cols = arith.im2col_shapes(f, f, d1, h2, w2, k)
    macs = arith.conv_macs(h2, w2, k, f, f, d1)
    lines += [
        f"output depth  D2 = K = {k}",
        f"output volume {_whd(k, h2, w2)} = {neurons:,} neurons {WHD}",
        f"parameters with sharing: (F*F*D1)*K = ({f}*{f}*{d1})*{k} = {weights:,} weights + "
        f"{biases} biases = {weights + biases:,}",
        f"without sharing (each neuron its own filter and bias): {neurons:,} x ({f}*{f}*{d1} + 1) "
        f"= {unshared:,}",
        f"im2col: X_col [F*F*D1 x W2*H2] = [{cols['X_col'][0]} x {cols['X_col'][1]}], W_row "
        f"[K x F*F*D1] = [{cols['W_row'][0]} x {cols['W_row'][1]}]; W_row @ X_col = "
        f"[{cols['product'][0]} x {cols['product'][1]}] -> reshaped to {_whd(k, h2, w2)}",
        f"  (X_col holds {cols['X_col'][0] * cols['X_col'][1]:,} values vs {w1 * h1 * d1:,} in "
        "the input: overlapping fields are copied)",
        f"multiply-adds: {neurons:,} outputs x {f}*{f}*{d1} = {macs:,} MACs ({2 * macs:,} FLOPs)",
    ]
    return lines


def explain_pool(
    input_size: tuple[int, int, int], f: int = 2, s: int = 2, p: int = 0, kind: str = "max"
) -> list[str]:
    """A pooling layer, window F, stride S, padding P, on a (C, H, W) input."""
    d1, h1, w1 = input_size
    lines = [
        f"POOL ({kind}): input {_whd(d1, h1, w1)} {WHD}, window F={f}, stride S={s}, padding P={p}"
    ]
    size_lines, h2, w2 = _output_sizes(h1, w1, f, s, p)
    lines += size_lines
    if w2 is None or h2 is None:
        return lines
    kept = w2 * h2 * d1
    reads = arith.pool_reads(h2, w2, d1, f, f)
    lines += [
        f"output depth  D2 = D1 = {d1} (each depth slice is pooled on its own)",
        f"output volume {_whd(d1, h2, w2)} = {kept:,} values {WHD}; parameters: 0 "
        "(a fixed function)",
        f"each output reads F*F = {f * f} values: {reads:,} reads, no multiply-adds",
        f"activations kept {kept:,} of {w1 * h1 * d1:,}: "
        f"{100 * (1 - kept / (w1 * h1 * d1)):.0f}% discarded",
    ]
    return lines


def explain_fc(input_size: tuple[int, int, int], outputs: int) -> list[str]:
    """A fully connected layer of ``outputs`` neurons on a (C, H, W) volume, and its conv twin."""
    d1, h1, w1 = input_size
    n_in = w1 * h1 * d1
    weights, biases = arith.fc_params(n_in, outputs)
    return [
        f"FC: input {_whd(d1, h1, w1)} {WHD} = {n_in:,} values, {outputs:,} neurons each "
        "connected to all of them",
        f"weights {n_in:,} x {outputs:,} = {weights:,} + {biases:,} biases = {weights + biases:,}",
        f"multiply-adds: {arith.fc_macs(n_in, outputs):,} MACs",
        f"as a convolution: F={w1}"
        + (f"x{h1}" if h1 != w1 else "")
        + f", S=1, P=0, K={outputs} on the {_whd(d1, h1, w1)} volume gives 1x1x{outputs} with "
        "the same weights (FC -> CONV); on a larger input it slides and gives a map of scores",
    ]


def explain_stack(f: int = 3, depth: int = 3, channels: int | None = None) -> list[str]:
    """``depth`` stacked FxF convs of stride 1 against one layer with the same receptive field."""
    rfs = arith.stacked_rf(f, depth)
    big = rfs[-1]
    c = "C" if channels is None else str(channels)
    per = f * f * depth
    lines = [
        f"{depth} stacked {f}x{f} CONV layers (stride 1), each with {c} filters on a depth-{c} "
        "input:"
    ]
    lines += [f"  layer {i + 1} sees {r}x{r} of the input" for i, r in enumerate(rfs)]
    lines.append(
        f"parameters: {depth} x ({f}*{f}*{c})*{c} = {per}{c}^2 vs one {big}x{big} layer: "
        f"({big}*{big}*{c})*{c} = {big * big}{c}^2"
        if channels is None
        else f"parameters: {depth} x ({f}*{f}*{c})*{c} = {per * channels**2:,} vs one "
        f"{big}x{big} layer: {big * big * channels**2:,} ({per}C^2 vs {big * big}C^2)"
    )
    lines.append(
        f"the stack has {depth - 1} more non-linearities and {100 * (1 - per / (big * big)):.0f}% "
        "fewer weights; the price is more activation memory for backprop"
    )
    return lines
