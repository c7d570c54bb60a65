"""Write docs/notes.md: every worked number of the notes, reproduced by a convnet command.

Each section quotes a claim of the notes (translated from the Chinese), runs the command that
checks it (a ``convnet ...`` line, run in-process, or a few lines of Python using only the public
API), pastes the tool's real output, and computes a verdict from that output: "reproduced", or
"differs" with the reason. Nothing in the document is typed by hand except the quotes, so a
regression in the tool flips a verdict and makes the checked-in document stale.

    python docs/make_notes.py            # rewrite docs/notes.md (atomically)
    python docs/make_notes.py --check    # exit 1 if docs/notes.md is stale
    python docs/make_notes.py --out F    # write somewhere else

Values that legitimately vary between machines (seconds, throughput, the training-memory
estimate, the accuracy of the short training runs) are masked by :func:`normalize` before the
comparison; everything else must match byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import os
import re
import shlex
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
# rich and the summary size their tables from the terminal: fix it while generating
TERMINAL = {"COLUMNS": "120", "LINES": "40"}

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "notes.md"

# Values that differ from machine to machine: masked before comparing, see the doc's header.
VARYING = [
    re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s?(?:s|ms|min)\b(?!/)"),  # durations: 12.3 s, 4s, 250 ms
    re.compile(r"[\d,.]+\s?(?:k\s)?(?:images|img|samples|it)/s"),  # throughput
    re.compile(r"ETA[^\n|]*"),
    re.compile(r"(?<=Training memory at batch )\d+: [^(\n]*"),  # fake-tensor estimate, per CPU
    re.compile(r"⟨[^⟩]*⟩"),  # values the generator itself marks as run-dependent
]


def normalize(text: str) -> str:
    for pattern in VARYING:
        text = pattern.sub("<varies>", text)
    return text


def num(text: str) -> int:
    """'105,705,600' -> 105705600."""
    return int(text.replace(",", ""))


def grab(pattern: str, text: str, group: int = 1) -> str:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"expected {pattern!r} in the output:\n{text}")
    return m.group(group)


class CommandFailed(RuntimeError):
    pass


_CLI_OUTPUT: dict[tuple[str, bool], str] = {}  # a command's stdout, for sections that reuse it


def run_cli(line: str, meta: bool = False) -> str:
    """The stdout of ``convnet ...`` run in-process (once per process: sections share it)."""
    if (line, meta) in _CLI_OUTPUT:
        return _CLI_OUTPUT[line, meta]
    from convnet.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if meta:  # no weights: shapes only
            import torch

            from convnet.analysis.trace import SkipInit

            stack.enter_context(torch.device("meta"))
            stack.enter_context(SkipInit())
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        code = main(shlex.split(line)[1:])
    if code != 0:
        raise CommandFailed(f"`{line}` exited {code}:\n{err.getvalue()}{out.getvalue()}")
    text = out.getvalue().rstrip("\n")
    if not line.startswith("convnet train"):  # a training run writes files: never reused
        _CLI_OUTPUT[line, meta] = text
    return text


class Doc:
    """The document being written, plus the verdict of every section."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.verdicts: list[tuple[str, str, str]] = []  # (anchor, title, verdict)
        self._title = ""

    def section(self, title: str, anchor: str) -> None:
        self._title, self._anchor = title, anchor
        self.parts.append(f'\n## <a id="{anchor}"></a>{title}\n')

    def text(self, md: str) -> None:
        self.parts.append(" ".join(md.split()) + "\n")

    def claim(self, seed: str, quote: str) -> None:
        self.parts.append(f"> **The notes ({seed}):** {' '.join(quote.split())}\n")

    def cli(
        self, line: str, show: str = "text", mask: str | None = None, meta: bool = False
    ) -> str:
        """Run ``convnet ...`` in-process; paste the command and its stdout.

        ``meta=True`` is for commands that print shapes only (``convnet surgery`` without
        ``--out``): they run with torch's default device set to meta, so the model's weights are
        neither allocated nor initialized; what they print is the same.
        """
        text = run_cli(line, meta)
        if mask:  # run-dependent values (accuracy of a short run): marked, masked by the check
            text = re.sub(mask, lambda m: f"⟨{m.group(0)}⟩", text)
        self.parts.append(f"```console\n$ {line}\n```\n")
        if show == "markdown":  # the summary's markdown format renders as a table here
            self.parts.append(text + "\n")
        else:
            self.parts.append(f"```text\n{text}\n```\n")
        return text

    def python(self, code: str) -> str:
        """Run a snippet that uses the public API; paste it and what it printed."""
        code = textwrap.dedent(code).strip("\n")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<notes>", "exec"), {"__name__": "__notes__"})
        text = out.getvalue().rstrip("\n")
        self.parts.append(f"```python\n{code}\n```\n\n```text\n{text}\n```\n")
        return text

    def verdict(self, checks: list[tuple[bool, str]]) -> None:
        """Each check is (held, what it says); the section is reproduced when all hold."""
        ok = all(held for held, _ in checks)
        word = "reproduced" if ok else "differs"
        lines = [f"**Verdict: {word}.**"]
        lines += [f"- {'✓' if held else '✗'} {why}" for held, why in checks]
        self.parts.append("\n".join(lines) + "\n")
        self.verdicts.append((self._anchor, self._title, word))

    def render(self) -> str:
        index = ["| section | verdict |", "|---|---|"]
        index += [f"| [{t}](#{a}) | {v} |" for a, t, v in self.verdicts]
        return HEADER + "\n".join(index) + "\n" + "\n".join(self.parts)


HEADER = """\
# The notes, reproduced

The five study notes this toolkit is built from (cs231n's ConvNet notes in three Chinese
versions, a textbook chapter on classic networks, and a lecture summary of CNN architectures)
work many numbers by hand. Every such number is checked below by one `convnet` command or a few
lines of Python using the public API. Each section quotes the claim (translated; "seed 000" to
"seed 004" are the five notes), shows the command and the tool's real output, and gives a
verdict computed from that output: **reproduced**, or **differs** with the reason. Where the
notes are wrong, it says so and by how much.

This file is generated: `python docs/make_notes.py` rewrites it and `tests/test_notes_doc.py`
fails when it is stale or any command fails. Timings, throughput, the training-memory estimate
and the accuracy of the short training runs vary by machine; the check masks them (they are
marked ⟨like this⟩ where the generator writes them).

"""


# --------------------------------------------------------------------------------------------
# Sections, in the order a learner meets them in the notes


def conv_basics(doc: Doc) -> None:
    doc.section("A 5x5x3 filter on a 32x32x3 image", "filter")
    doc.claim(
        "seed 000",
        """The first layer's filter is 5x5x3 (5 pixels wide and high, depth 3 for the colour
        channels): its parameter vector w has 75 (5x5x3) entries, plus a bias b. Sliding it over
        the input gives a [28x28] activation map (32-5+1=28). With 6 filters we get a
        [6x28x28] output (stride 1).""",
    )
    out = doc.cli("convnet explain conv --input 3x32x32 --filter 5 --filters 6")
    doc.claim(
        "seed 000",
        """If the input volume is [16x16x20] and the receptive field 3x3, every neuron of the
        conv layer has 3x3x20=180 connections to the input volume.""",
    )
    out2 = doc.cli("convnet explain conv --input 20x16x16 --filter 3 --pad 1 --filters 1")
    width = num(grab(r"output width .*= (\d+)\n", out + "\n"))
    per_filter = num(grab(r"\(5\*5\*3\)\*6 = ([\d,]+) weights", out)) // 6
    conns = num(grab(r"\(3\*3\*20\)\*1 = ([\d,]+) weights", out2))
    doc.verdict(
        [
            (width == 28, f"output width {width} (notes: 32-5+1 = 28)"),
            (per_filter == 75, f"{per_filter} weights per filter + 1 bias (notes: 75 + 1)"),
            ("28x28x6" in out, "six filters give a 28x28x6 volume (notes: [6x28x28])"),
            (conns == 180, f"{conns} connections per neuron on 16x16x20 (notes: 180)"),
        ]
    )


def stride_rule(doc: Doc) -> None:
    doc.section("Output size (W - F + 2P)/S + 1, and a stride that does not fit", "stride")
    doc.claim(
        "seed 000 and seed 002",
        """A 3-wide filter [1, 0, -1] on an input of size W=5 with zero padding P=1. Stride 1:
        the output is (5-3+2)/1+1 = 5. Stride 2: (5-3+2)/2+1 = 3 (seed 002; seed 000 prints
        "(5-3+2)/2+1=5"). Stride S=3 cannot be used: (5-3+2) = 4 is not divisible by 3, the
        neurons would not fit neatly and symmetrically across the input.""",
    )
    sizes = {}
    for s in (1, 2, 3):
        out = doc.cli(
            f"convnet explain conv --input 1x5x5 --filter 3 --pad 1 --stride {s} --filters 1"
        )
        sizes[s] = (grab(r"output width .*= ([\d.]+)\n", out + "\n"), out)
    doc.verdict(
        [
            (sizes[1][0] == "5", f"S=1 gives {sizes[1][0]} (notes: 5)"),
            (
                sizes[2][0] == "3",
                f"S=2 gives {sizes[2][0]} (seed 002: 3; seed 000's '=5' is a typo)",
            ),
            (
                "not a whole number" in sizes[3][1] and "invalid" in sizes[3][1],
                f"S=3 gives {sizes[3][0]}, reported as not whole and invalid (notes: rejected)",
            ),
        ]
    )


def alexnet_conv1(doc: Doc) -> None:
    doc.section("AlexNet's first layer: 55x55x96, parameter sharing, im2col", "alexnet-conv1")
    doc.claim(
        "seed 000",
        """Input [227x227x3], F=11, S=4, P=0: the output size is (227 - 11)/4 + 1 = 55, with
        K=96 the output volume is [55x55x96]. Each of these 55x55x96 = 290400 neurons connects
        to an [11x11x3] region, with 11x11x3=364 parameters and 1 bias: 290400x364 = 105,705,600
        parameters. With parameter sharing, 96x11x11x3 = 34848 distinct weights, or 34944
        parameters (+96 biases).""",
    )
    doc.claim(
        "seed 002",
        """im2col[11x11x3, 55x55] = [363 x 3025]; the filters as [96, 11x11x3];
        `np.dot(W_row, X_col)` gives [96x3025], reshaped to the [55x55x96] output.""",
    )
    out = doc.cli("convnet explain conv --input 3x227x227 --filter 11 --stride 4 --filters 96")
    doc.text("The same product computed, with the reference engine's `im2col` against torch:")
    py = doc.python(
        """
        import numpy as np, torch
        from convnet.reference.im2col import im2col

        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 3, 227, 227)).astype(np.float32)
        w = rng.standard_normal((96, 3, 11, 11)).astype(np.float32)
        X_col = im2col(x, 11, stride=4).T         # one receptive field per column
        W_row = w.reshape(96, -1)                 # one filter per row
        out = (W_row @ X_col).reshape(96, 55, 55)
        ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=4)[0]
        print("X_col", X_col.shape, "W_row", W_row.shape, "product", (W_row @ X_col).shape)
        print("equals torch's conv2d:", np.allclose(out, ref.numpy(), rtol=1e-4, atol=1e-3))
        """
    )
    no_share = num(grab(r"without sharing.*= ([\d,]+)", out))
    shared = num(grab(r"biases = ([\d,]+)", out))
    doc.verdict(
        [
            ("= 55\n" in out and "55x55x96 = 290,400 neurons" in out, "55x55x96 = 290,400 neurons"),
            (
                no_share == 105_705_600,
                f"{no_share:,} parameters without sharing (notes: 105,705,600)",
            ),
            (
                "(11*11*3 + 1)" in out,
                "each neuron has 11x11x3 = 363 weights + 1 bias = 364 parameters; seed 000's "
                "'11x11x3=364' folds the bias into the product, seed 002's 363 + 1 is right",
            ),
            (shared == 34_944, f"{shared:,} parameters with sharing (notes: 34,848 + 96 = 34,944)"),
            ("[363 x 3025]" in out and "[96 x 363]" in out, "im2col [363 x 3025] and [96 x 363]"),
            (
                "product (96, 3025)" in py and "torch's conv2d: True" in py,
                "[96 x 3025] reshaped to 55x55x96 equals torch's convolution",
            ),
        ]
    )


def pooling(doc: Doc) -> None:
    doc.section("Pooling 224x224x64 with F=2, S=2", "pooling")
    doc.claim(
        "seed 000 and seed 001",
        """Input [224x224x64], F=2, S=2: output [112x112x64], (224-2)/2+1 = 112, depth unchanged.
        Max pooling with 2x2 filters at stride 2 discards 75% of the activations.""",
    )
    out = doc.cli("convnet explain pool --input 64x224x224 --filter 2 --stride 2")
    kept, total = (num(v) for v in re.search(r"kept ([\d,]+) of ([\d,]+)", out).groups())
    dropped = 100 * (1 - kept / total)
    doc.verdict(
        [
            ("112x112x64" in out, "output 112x112x64"),
            (dropped == 75.0, f"{dropped:g}% of the activations discarded (notes: 75%)"),
        ]
    )


def cifar_walkthrough(doc: Doc) -> None:
    doc.section("Seed 002's CIFAR-10 network: INPUT - CONV - RELU - POOL - FC", "cifar")
    doc.claim(
        "seed 002",
        """A simple CIFAR-10 ConvNet, [INPUT - CONV - RELU - POOL - FC]: input [32x32x3]; CONV with
        12 filters gives [32x32x12]; RELU max(0, x) keeps [32x32x12]; POOL downsamples to
        [16x16x12]; FC gives [1x1x10].""",
    )
    out = doc.cli(
        'convnet summary "INPUT[32x32x3] -> CONV(F=3,K=12) -> RELU -> POOL2 -> FC-10" --format markdown',
        "markdown",
    )
    got = [r["Output"] for r in table_rows(out) if r["Type"] != "Flatten"]
    want = ["32x32x12", "32x32x12", "16x16x12", "1x1x10"]
    doc.verdict(
        [(got == want, "volumes " + " -> ".join(got) + " (notes: " + " -> ".join(want) + ")")]
    )


def fc_to_conv(doc: Doc) -> None:
    doc.section("FC -> CONV: one pass over a larger image", "fc-conv")
    doc.claim(
        "seed 000 and seed 002",
        """AlexNet: the conv and pool layers turn the 224x224x3 image into a 7x7x512 volume,
        followed by two FC layers of 4096 and one of 1000. As convolutions: F=7 gives
        [1x1x4096], then F=1 gives [1x1x4096], then F=1 gives [1x1x1000]. A 384x384 image gives
        [12x12x512] (384/2/2/2/2/2 = 12), then [6x6x1000] since (12 - 7)/1 + 1 = 6: the scores
        of a 224x224 window sliding at stride 32 over its 6x6 positions, identical to
        evaluating the original network on the 36 crops, and far cheaper.""",
    )
    fc = doc.cli("convnet explain fc --input 512x7x7 --outputs 4096")
    vgg = doc.cli("convnet surgery vgg16 --input 224 --dense 384", meta=True)
    alex = doc.cli("convnet surgery alexnet --input 224 --dense 384", meta=True)
    doc.text(
        """The equivalence with the 36 crops, checked numerically on narrow networks with the same
        geometry (five 2x2 pools: 224 -> 7x7, 384 -> 12x12 -> a 6x6 map), once with unpadded
        1x1 convolutions and once with the notes' padded CONV3 (F=3, P=1):"""
    )
    py = doc.python(
        """
        import torch
        from convnet.notation import build
        from convnet.surgery import fc_to_conv

        image = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(0))
        for conv in ("CONV(F=1,P=0,K=8)", "CONV3-8"):
            torch.manual_seed(0)
            net = build(f"INPUT[224x224x3] -> [{conv} -> RELU -> POOL2]*5 -> FC-64 -> RELU -> FC-10").eval()
            dense = fc_to_conv(net, (3, 224, 224)).eval()
            with torch.no_grad():
                scores = dense(image)[0].permute(1, 2, 0)       # one pass: (6, 6, 10)
                crops = torch.cat([image[..., 32 * i:32 * i + 224, 32 * j:32 * j + 224]
                                   for i in range(6) for j in range(6)])  # the 36 windows
                crops = net(crops).view(6, 6, -1)                # the original net on each crop
            same = torch.allclose(scores, crops, rtol=1e-4, atol=1e-5)
            print(f"{conv:18} score map {tuple(scores.shape)}  identical to the 36 crops: {same}")
        """
    )
    doc.verdict(
        [
            ("F=7, S=1, P=0, K=4096" in fc and "1x1x4096" in fc, "7x7x512 -> F=7 conv -> 1x1x4096"),
            (
                "Conv2d(512->4096, F=7)" in vgg and vgg.count("F=1)") == 2,
                "VGG-16: F=7, then F=1 twice (4096, 1000)",
            ),
            ("6x6x1000 score map" in vgg, "384x384 gives a 6x6x1000 score map"),
            (
                "CONV(F=1,P=0,K=8)  score map (6, 6, 10)  identical to the 36 crops: True" in py,
                "without zero padding the 6x6 map is identical to the 36 crops at stride 32",
            ),
            (
                "CONV3-8            score map (6, 6, 10)  identical to the 36 crops: True" in py,
                "with padded convolutions (VGG's F=3, P=1) the map is identical to the crops: "
                + (
                    "yes"
                    if "CONV3-8 " in py and py.rstrip().endswith("True")
                    else "no, a crop sees zeros at its border where the single pass sees the neighbouring "
                    "pixels: for padded networks the notes' 'identical' is too strong (close, not equal)"
                ),
            ),
            (
                "Conv2d(512->4096, F=7)" in alex,
                "the 7x7x512 trunk is AlexNet's: "
                + (
                    "yes"
                    if "Conv2d(512->4096, F=7)" in alex
                    else "no, it is VGG-16's; AlexNet ends at 6x6x256, so its first FC becomes "
                    + grab(r"(Linear\(9216->4096\) -> Conv2d\([^)]*\))", alex)
                    + "; the 384 -> 6x6 arithmetic holds for both (both have a total stride of 32)"
                ),
            ),
        ]
    )


def small_filters(doc: Doc) -> None:
    doc.section("Three 3x3 convolutions instead of one 7x7", "stack")
    doc.claim(
        "seed 001, seed 003 and seed 004",
        """Stack three 3x3 conv layers: a neuron of the first sees 3x3 of the input, of the
        second 5x5, of the third 7x7. With C channels throughout, one 7x7 layer has
        C x (7 x 7 x C) = 49C² parameters, the three 3x3 layers 3 x [C x (3 x 3 x C)] = 27C².""",
    )
    out = doc.cli("convnet explain stack --filter 3 --depth 3 --channels C")
    doc.text("The same on real layers, C = 64:")
    s3 = doc.cli(
        'convnet summary "INPUT[32x32x64] -> [CONV(F=3,K=64)]*3" --format markdown', "markdown"
    )
    s7 = doc.cli(
        'convnet summary "INPUT[32x32x64] -> CONV(F=7,K=64)" --format markdown', "markdown"
    )
    w3 = num(grab(r"weights ([\d,]+) \+ biases", s3))
    w7 = num(grab(r"weights ([\d,]+) \+ biases", s7))
    rf = [int(v) for v in re.findall(r"\| (\d+) /1 @0 \|", s3)]
    doc.verdict(
        [
            ("sees 7x7" in out and rf == [3, 5, 7], f"receptive fields {rf} (notes: 3, 5, 7)"),
            (
                "27C^2" in out and w3 == 27 * 64**2,
                f"three 3x3: {w3:,} weights = 27 x 64² (notes: 27C²)",
            ),
            (
                "49C^2" in out and w7 == 49 * 64**2,
                f"one 7x7: {w7:,} weights = 49 x 64² (notes: 49C²)",
            ),
        ]
    )


# The notes' VGG-16 table (seed 001 and seed 002): layer, volume, memory as printed, weights.
VGG16_NOTES = [
    ("INPUT", "224x224x3", "150K", 0),
    *[("CONV3-64", "224x224x64", "3.2M", w) for w in (1_728, 36_864)],
    ("POOL2", "112x112x64", "800K", 0),
    *[("CONV3-128", "112x112x128", "1.6M", w) for w in (73_728, 147_456)],
    ("POOL2", "56x56x128", "400K", 0),
    *[("CONV3-256", "56x56x256", "800K", w) for w in (294_912, 589_824, 589_824)],
    ("POOL2", "28x28x256", "200K", 0),
    *[("CONV3-512", "28x28x512", "400K", w) for w in (1_179_648, 2_359_296, 2_359_296)],
    ("POOL2", "14x14x512", "100K", 0),
    *[("CONV3-512", "14x14x512", "100K", 2_359_296) for _ in range(3)],
    ("POOL2", "7x7x512", "25K", 0),
    ("FC", "1x1x4096", "4096", 102_760_448),
    ("FC", "1x1x4096", "4096", 16_777_216),
    ("FC", "1x1x1000", "1000", 4_096_000),
]


def table_rows(markdown: str) -> list[dict[str, str]]:
    """The summary's markdown table as dicts keyed by its header."""
    lines = [ln for ln in markdown.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in ln.strip("|").split("|")))) for ln in lines[2:]]


def approx(printed: str) -> float:
    """'3.2M' -> 3.2e6, '150K' -> 1.5e5, '4096' -> 4096."""
    scale = {"K": 1e3, "M": 1e6}.get(printed[-1], 1)
    return float(printed.rstrip("KM")) * scale


VGG16_SUMMARY = "convnet summary vgg16 --format markdown"


def vgg16(doc: Doc) -> None:
    doc.section("VGG-16 row by row, its parameters and its memory", "vgg16")
    doc.claim(
        "seed 001 and seed 002",
        """The VGG-16 table, from INPUT: [224x224x3] memory: 224*224*3=150K weights: 0 to
        FC: [1x1x1000] memory: 1000 weights: 4096*1000 = 4,096,000 (21 rows, reproduced in the
        check below). TOTAL memory: 24M * 4 bytes ~= 93MB / image (only forward! ~*2 for bwd).
        TOTAL params: 138M parameters. ... In this example the parameters total 140M, and the
        first FC layer alone holds 100M.""",
    )
    doc.claim(
        "seed 004", "Total memory: 24M * 4 bytes, about 96MB per image, x2 for the backward pass."
    )
    out = doc.cli(VGG16_SUMMARY, "markdown")
    rows = [r for r in table_rows(out) if r["Type"] in ("Conv2d", "MaxPool2d", "Linear")]
    input_values = 224 * 224 * 3
    tool = [("INPUT", "224x224x3", input_values, 0)] + [
        (r["Type"], r["Output"], num(r["Activations"]), num(r["Weights"] or "0")) for r in rows
    ]
    mismatches = [
        f"{n[0]} {n[1]} vs {t[1]}"
        for n, t in zip(VGG16_NOTES, tool)
        if n[1] != t[1] or n[3] != t[3] or abs(approx(n[2]) - t[2]) > 0.06 * t[2]
    ]
    rows_total = sum(t[2] for t in tool)
    params = num(grab(r"Parameters: ([\d,]+)", out))
    fc1 = tool[-3][3]
    claimed = 24_000_000
    extra = claimed - rows_total
    doc.text(
        f"""The notes' own rows, read from the table above (input plus every CONV, POOL and FC
        output): {rows_total:,} values = {rows_total * 4:,} bytes ({rows_total * 4 / 1e6:.1f} MB,
        {rows_total * 4 / 2**20:.1f} MiB) per image in float32, {2 * rows_total * 4 / 1e6:.0f} MB
        with the backward pass. The tool's total also counts torchvision's AdaptiveAvgPool2d
        (an identity at 224 that still allocates 25,088 values)."""
    )
    doc.verdict(
        [
            (
                len(tool) == len(VGG16_NOTES) and not mismatches,
                f"all {len(VGG16_NOTES)} rows: volume, memory and weights match"
                + (f"; mismatches: {', '.join(mismatches)}" if mismatches else ""),
            ),
            (
                params == 138_357_544,
                f"{params:,} parameters including biases (notes: 138M; '140M' in the text is rounded up)",
            ),
            (fc1 == 102_760_448, f"the first FC layer holds {fc1:,} weights (notes: 100M)"),
            (
                abs(rows_total - claimed) < 0.05 * claimed,
                f"the rows sum to {rows_total:,} values, not 24M: the notes' total is "
                f"{extra:,} values ({extra / rows_total:.0%}) too high, and 93 MB / 96 MB should be "
                f"{rows_total * 4 / 1e6:.0f} MB ({rows_total * 4 / 2**20:.0f} MiB) per image",
            ),
        ]
    )


def memory_example(doc: Doc) -> None:
    doc.section("Seed 001's memory example: ten million activations, 72MB", "memory")
    doc.claim(
        "seed 001",
        """Filtering a 224x224x3 image with 64 filters of 3x3 and zero padding 1 gives an
        activation volume of [224x224x64]. That is ten million activations, or 72MB of memory
        (per image, for the activations and their gradients).""",
    )
    out = doc.cli(
        'convnet summary "INPUT[224x224x3] -> [CONV3-64]*3" --format markdown', "markdown"
    )
    convs = [num(r["Activations"]) for r in table_rows(out) if r["Type"] == "Conv2d"]
    one, three = convs[0], sum(convs)
    mib = lambda n: n * 4 * 2 / 2**20  # noqa: E731 - float32 values and their gradients
    doc.verdict(
        [
            (
                abs(one - 10e6) < 1e6,
                f"one [224x224x64] volume holds {one:,} activations ({mib(one):.1f} MiB with "
                f"gradients), not ten million / 72MB: those are the numbers of three such layers, "
                f"{three:,} activations = {mib(three):.1f} MiB, as the English original says "
                "(the translation dropped 'three')",
            )
        ]
    )


def seed003_tables(doc: Doc) -> None:
    doc.section("Seed 003's tables 3.1 (AlexNet) and 3.2 (VGG-16), with LRN", "tables-003")
    doc.claim(
        "seed 003, table 3.1",
        """AlexNet: conv f=11, s=4, d=96: 227x227x3 -> 55x55x96; ReLU; max pool f=3, s=2 ->
        27x27x96; LRN k=2, n=5, α=10⁻⁴, β=0.75; conv f=5, p=2, s=1, d=256 -> 27x27x256; ReLU;
        max pool f=3, s=2 -> 13x13x256; LRN (same settings); conv f=3, p=1, d=384 -> 13x13x384;
        conv f=3, p=1, d=384 -> 13x13x384; conv f=3, p=1, d=256 -> 13x13x256; max pool f=3,
        s=2 -> 6x6x256; FC f=6, d=4096 -> 1x1x4096; ReLU; dropout 0.5; FC 4096; ReLU; dropout
        0.5; FC -> 1x1xC; softmax loss.""",
    )
    out = doc.cli("convnet summary alexnet_original --format markdown", "markdown")
    doc.text(
        """torch's `LocalResponseNorm` divides α by n inside the sum, so the summary shows
        α = 5 x 10⁻⁴; whether the layer computes the paper's formula with α = 10⁻⁴ is checked
        directly:"""
    )
    lrn = doc.python(
        """
        import torch
        import convnet

        with torch.device("meta"):  # the LRN layers hold no weights: the rest need none
            model = convnet.create_model("alexnet_original")
        lrn = [m for m in model.modules() if isinstance(m, torch.nn.LocalResponseNorm)]
        a = torch.rand(1, 96, 27, 27, dtype=torch.float64) * 10
        k, n, alpha, beta = 2, 5, 1e-4, 0.75  # table 3.1
        sq = torch.nn.functional.pad(a**2, (0, 0, 0, 0, n // 2, n // 2))
        window = sum(sq[:, i:i + 96] for i in range(n))  # sum over max(0,d-n/2) .. min(N-1,d+n/2)
        paper = a / (k + alpha * window) ** beta
        print(len(lrn), "LRN layers; the paper's formula with k=2, n=5, alpha=1e-4, beta=0.75:",
              all(torch.allclose(m.double()(a), paper) for m in lrn))
        """
    )
    want = [
        "55x55x96",
        "27x27x96",
        "27x27x256",
        "13x13x256",
        "13x13x384",
        "13x13x384",
        "13x13x256",
        "6x6x256",
        "1x1x4096",
        "1x1x4096",
        "1x1x1000",
    ]
    rows = table_rows(out)
    got = [r["Output"] for r in rows if r["Type"] in ("Conv2d", "MaxPool2d", "Linear")]
    order = [r["Type"] for r in rows if r["Type"] in ("MaxPool2d", "LocalResponseNorm")]
    last_fc = [r["F S P"] for r in rows if r["Type"] == "Linear"][-1]
    doc.claim(
        "seed 003, table 3.2",
        """VGG-16: ... row 24: max pool f=2, s=2, 28x28x512 -> 14x14x512; rows 25-30: three conv
        f=3, p=1, d=512 with ReLU, 14x14x512; row 31: max pool f=7, s=1, 14x14x512 -> 7x7x512;
        row 32: FC f=7, d=4096, input 14x14x512 -> 1x1x4096; ... row 38: FC f=1, d=4096 ->
        1x1xC.""",
    )
    row31 = doc.cli("convnet explain pool --input 512x14x14 --filter 7 --stride 1")
    doc.text("VGG-16's rows 1-30 and the pools are in the VGG-16 table above; its pool5 is:")
    row31_fixed = doc.cli("convnet explain pool --input 512x14x14 --filter 2 --stride 2")
    doc.verdict(
        [
            (got == want, "table 3.1's output volumes, in order: " + ", ".join(got)),
            (
                order[:4] == ["MaxPool2d", "LocalResponseNorm"] * 2,
                "LRN after each of the first two pools, as in table 3.1",
            ),
            (
                "the paper's formula with k=2, n=5, alpha=1e-4, beta=0.75: True" in lrn,
                "LRN computes k=2, n=5, α=10⁻⁴, β=0.75",
            ),
            (
                "7x7x512" in row31,
                "table 3.2's row 31 (pool f=7, s=1) gives 7x7x512: it gives "
                + grab(r"output volume (\S+)", row31)
                + "; VGG-16's pool5 is f=2, s=2 ("
                + grab(r"output volume (\S+)", row31_fixed)
                + "), and row 32's FC input is 7x7x512, not 14x14x512",
            ),
            (
                last_fc.endswith("->4096"),
                "the last FC rows of both tables print d = 4096 with output "
                f"1x1xC: the layer is {last_fc}, so d is C (1000 on ImageNet), not 4096",
            ),
        ]
    )


def inception(doc: Doc) -> None:
    doc.section("The Inception module's arithmetic", "inception")
    doc.claim(
        "seed 004",
        """Naive module on a 28x28x256 input, output 28x28x672 (zero padding keeps the size).
        [1x1 conv, 128] 28x28x128x1x1x256 multiplies; [3x3 conv, 192] 28x28x192x3x3x256;
        [5x5 conv, 96] 28x28x96x5x5x256. Total: 854M multiplies. With 1x1 bottleneck layers
        the output is 28x28x480: [1x1 conv, 64] 28x28x64x1x1x256 (twice), [1x1 conv, 128]
        28x28x128x1x1x256, [3x3 conv, 192] 28x28x192x3x3x64, [5x5 conv, 96] 28x28x96x5x5x64,
        [1x1 conv, 64] 28x28x64x1x1x256. Total: 358M, less than half.""",
    )
    out = doc.python(
        """
        import torch
        from torch import nn
        import convnet

        class Inception(nn.Module):
            def __init__(self, bottleneck: bool):
                super().__init__()
                r = 64 if bottleneck else 256  # depth the 3x3 and 5x5 filters see
                self.b1 = nn.Conv2d(256, 128, 1)
                self.b3 = nn.Sequential(*([nn.Conv2d(256, 64, 1)] if bottleneck else []), nn.Conv2d(r, 192, 3, padding=1))
                self.b5 = nn.Sequential(*([nn.Conv2d(256, 64, 1)] if bottleneck else []), nn.Conv2d(r, 96, 5, padding=2))
                self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), *([nn.Conv2d(256, 64, 1)] if bottleneck else []))

            def forward(self, x):
                return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)

        for bottleneck in (False, True):
            s = convnet.summary(Inception(bottleneck), (256, 28, 28), training_memory=False)
            convs = [f"{r.path} {r.macs:,}" for r in s.rows if r.type == "Conv2d"]
            print("bottleneck" if bottleneck else "naive", "output", s.rows[-1].volume)
            print("  " + "\\n  ".join(convs))
            print(f"  total {s.totals['macs']:,} multiplies")
        """
    )
    naive, bottle = (num(v) for v in re.findall(r"total ([\d,]+) multiplies", out))
    doc.verdict(
        [
            ("naive output 28x28x672" in out, "naive output 28x28x672"),
            (round(naive / 1e6) == 854, f"naive: {naive:,} multiplies (notes: 854M)"),
            ("bottleneck output 28x28x480" in out, "bottleneck output 28x28x480"),
            (
                round(bottle / 1e6) == 358,
                f"bottleneck: the notes' own six rows sum to {bottle:,}, not 358M: the notes are "
                f"{358_000_000 - bottle:,} ({(358e6 - bottle) / bottle:.0%}) too high, and the saving "
                f"is {naive / bottle:.2f}x, not the notes' {854 / 358:.2f}x (854M / 358M)",
            ),
        ]
    )


def parameter_claims(doc: Doc) -> None:
    doc.section("Parameter counts: AlexNet, GoogLeNet, VGG, SqueezeNet", "params")
    doc.claim(
        "seed 000, seed 001 and seed 002",
        "GoogLeNet's Inception module greatly reduces the number of parameters: AlexNet has 60M, GoogLeNet only 4M.",
    )
    doc.claim(
        "seed 004",
        "GoogLeNet: only 5 million parameters, 12x fewer than AlexNet. SqueezeNet: AlexNet-level accuracy on ImageNet with 50x fewer parameters.",
    )
    doc.claim(
        "seed 001 and seed 002",
        "VGGNet uses many more parameters (140M); most of them are in the first FC layer.",
    )
    out = doc.python(
        """
        import torch
        import convnet

        def params(name, **options):
            with torch.device("meta"):  # shapes only: no memory, no initialization
                model = convnet.create_model(name, **options)
            return sum(p.numel() for p in model.parameters())

        counts = {
            "alexnet": params("alexnet"),
            "alexnet_original": params("alexnet_original"),
            "googlenet (no aux heads)": params("googlenet", aux_logits=False),
            "googlenet_paper (no aux heads)": params("googlenet_paper", aux_logits=False),
            "googlenet (with aux heads)": params("googlenet"),
            "vgg16": params("vgg16"),
            "squeezenet1_0": params("squeezenet1_0"),
        }
        for name, n in counts.items():
            print(f"{name:32} {n:>12,}  AlexNet / this = {counts['alexnet'] / n:5.1f}x")
        """
    )
    c = {
        m.group(1).strip(): num(m.group(2))
        for m in re.finditer(r"^(.+?)\s+([\d,]{7,})  ", out, re.M)
    }
    alex, goog, sq = c["alexnet"], c["googlenet (no aux heads)"], c["squeezenet1_0"]
    doc.verdict(
        [
            (round(alex / 1e6) in (60, 61), f"AlexNet {alex:,} (notes: 60M)"),
            (
                abs(goog - 4e6) < 0.5e6,
                f"GoogLeNet {goog:,} at inference, {c['googlenet_paper (no aux heads)']:,} with true 5x5 branches (seeds 000-002: 4M)",
            ),
            (abs(goog - 5e6) < 0.5e6, f"GoogLeNet about 5M (seed 004): {goog / 1e6:.1f}M"),
            (round(alex / goog) == 12, f"AlexNet / GoogLeNet = {alex / goog:.1f}x (seed 004: 12x)"),
            (abs(c["vgg16"] - 140e6) < 0.02 * 140e6, f"VGG-16 {c['vgg16']:,} (notes: 138M / 140M)"),
            (
                round(alex / sq / 10) == 5,
                f"AlexNet / SqueezeNet 1.0 = {alex / sq:.1f}x (notes: 50x)",
            ),
        ]
    )


def numpy_example(doc: Doc) -> None:
    doc.section("Seed 002's numpy example: 11x11x4, F=5, S=2", "numpy")
    doc.claim(
        "seed 002",
        """X.shape: (11, 11, 4), padding=0, filter_size=5, stride=2, so the activation map is
        (11 - 5) / 2 + 1 = 4 wide. V[0,0,0] = np.sum(X[:5,:5,:] * W0) + b0; V[1,0,0] =
        np.sum(X[2:7,:5,:] * W0) + b0; V[2,0,0] = np.sum(X[4:9,:5,:] * W0) + b0; V[3,0,0] =
        np.sum(X[6:11,:5,:] * W0) + b0; V[0,1,1] = np.sum(X[:5,2:7,:] * W1) + b1; W0.shape:
        (5, 5, 4).""",
    )
    out = doc.python(
        """
        import numpy as np
        from convnet.reference import functional as F

        rng = np.random.default_rng(0)
        X = rng.standard_normal((11, 11, 4))              # X[x, y, d], as the notes index it
        W0, W1 = rng.standard_normal((2, 5, 5, 4))
        b0, b1 = rng.standard_normal(2)
        V = {(0, 0, 0): np.sum(X[:5, :5, :] * W0) + b0,   # the notes' lines, verbatim
             (1, 0, 0): np.sum(X[2:7, :5, :] * W0) + b0,
             (2, 0, 0): np.sum(X[4:9, :5, :] * W0) + b0,
             (3, 0, 0): np.sum(X[6:11, :5, :] * W0) + b0,
             (0, 1, 1): np.sum(X[:5, 2:7, :] * W1) + b1}
        # the engine wants (N, C, H, W) and (K, C, F, F): x is the width axis, y the height axis
        out, _ = F.conv2d_forward(X.transpose(2, 1, 0)[None], np.stack([W0, W1]).transpose(0, 3, 2, 1),
                                  np.array([b0, b1]), stride=2, padding=0)
        print("output", out.shape[1:], "-> a", f"{out.shape[3]}x{out.shape[2]}x{out.shape[1]}", "volume")
        print("every V[x, y, d] of the notes equals the engine's:",
              all(np.isclose(v, out[0, d, y, x]) for (x, y, d), v in V.items()))
        """
    )
    doc.verdict(
        [
            (
                "a 4x4x2 volume" in out,
                "the activation map is 4x4 ((11 - 5)/2 + 1 = 4), two filters give 4x4x2",
            ),
            (
                "engine's: True" in out,
                "the five hand-written dot products equal the engine's convolution",
            ),
        ]
    )


def receptive_fields(doc: Doc) -> None:
    doc.section("Receptive fields of AlexNet and VGG-16", "rf")
    doc.text(
        """Seed 003 (§3.1.1) and seed 001 (§3.2) explain how stacking grows the receptive field; for
        whole networks the rule is r_out = r_in + (F - 1) x jump, jump_out = jump_in x S. Worked
        by hand: AlexNet's last pool sees 195 pixels, VGG-16's pool5 212. The tool's RF column:"""
    )
    out = doc.cli("convnet summary alexnet --format markdown", "markdown")

    def by_hand(layers):  # (F, S) per layer, the formula above
        r, j = 1, 1
        for f, s in layers:
            r, j = r + (f - 1) * j, j * s
        return r

    alex = by_hand([(11, 4), (3, 2), (5, 1), (3, 2), (3, 1), (3, 1), (3, 1), (3, 2)])
    vgg = by_hand(([(3, 1)] * 2 + [(2, 2)]) * 2 + ([(3, 1)] * 3 + [(2, 2)]) * 3)
    alex_rf = [r["RF size /jump @start"] for r in table_rows(out) if r["Type"] == "MaxPool2d"][-1]
    vgg_rf = [
        r["RF size /jump @start"]
        for r in table_rows(run_cli(VGG16_SUMMARY))  # the VGG-16 section's table
        if r["Type"] == "MaxPool2d"
    ][-1]
    doc.text(f"VGG-16's pool5 row in the VGG-16 table above: `{vgg_rf}`.")
    doc.verdict(
        [
            (
                alex_rf.split()[0] == str(alex) == "195",
                f"AlexNet's last pool: {alex_rf} (by hand: {alex})",
            ),
            (vgg_rf.split()[0] == str(vgg) == "212", f"VGG-16's pool5: {vgg_rf} (by hand: {vgg})"),
        ]
    )


# The notes' recipes (seed 004), field by field as TrainConfig names them.
NOTES_RECIPES = {
    "alexnet": dict(
        optimizer="sgd",
        momentum=0.9,
        lr=1e-2,
        schedule="plateau",
        gamma=0.1,
        weight_decay=5e-4,
        batch_size=128,
    ),
    "resnet": dict(
        optimizer="sgd",
        momentum=0.9,
        lr=0.1,
        schedule="plateau",
        gamma=0.1,
        weight_decay=1e-5,
        batch_size=256,
    ),
}
ALEXNET_LINE = (
    "INPUT[28x28x1] -> CONV(F=5,P=2,K=16) -> RELU -> POOL(F=3,S=2) -> LRN(k=2,n=5,alpha=1e-4,beta=0.75)"
    " -> CONV(F=5,P=2,K=32) -> RELU -> POOL(F=3,S=2) -> LRN(k=2,n=5,alpha=1e-4,beta=0.75)"
    " -> FC-64 -> RELU -> DROPOUT(0.5) -> FC-10"
)


def recipes(doc: Doc) -> None:
    doc.section(
        "The training recipes of AlexNet and ResNet, and a short real run of each", "recipes"
    )
    doc.claim(
        "seed 004",
        """AlexNet: dropout 0.5; batch size 128; SGD momentum 0.9; learning rate 1e-2, reduced by
        10 by hand when the validation accuracy plateaus; L2 weight decay 5e-4; a 7-CNN ensemble
        takes the error from 18.2% to 15.4%.""",
    )
    doc.claim(
        "seed 004",
        """ResNet: batch normalization after every CONV layer; He initialization; SGD + momentum
        (0.9); learning rate 0.1, divided by 10 when the validation error plateaus; mini-batch
        size 256; weight decay 1e-5; no dropout.""",
    )
    out = doc.python(
        """
        import torch
        from torch import nn
        import convnet
        from convnet.train import recipe

        for name in ("alexnet", "resnet"):
            c = recipe(name)
            print(f"{name:8} optimizer={c.optimizer} momentum={c.momentum} lr={c.lr} schedule={c.schedule} "
                  f"gamma={c.gamma} weight_decay={c.weight_decay} batch_size={c.batch_size}")
        # the layers in the order they run, traced on the meta device (no weights)
        alexnet = convnet.summary("alexnet", training_memory=False).rows
        resnet = convnet.summary("resnet50", training_memory=False).rows
        print("alexnet dropout:", [r.hyper for r in alexnet if r.type == "Dropout"])
        after = [resnet[i + 1].type for i, r in enumerate(resnet) if r.type == "Conv2d"]
        print("resnet50 convs:", len(after), "followed by a batch norm:", after.count("BatchNorm2d"),
              "dropouts:", sum(r.type == "Dropout" for r in resnet))
        torch.manual_seed(0)
        he = [m.weight.std().item() / (2 / (m.out_channels * m.weight[0, 0].numel())) ** 0.5
              for m in convnet.create_model("resnet18").modules() if isinstance(m, nn.Conv2d)]
        print(f"resnet18 conv weight std / sqrt(2 / fan_out): {min(he):.1f} .. {max(he):.1f} (He init)")
        """
    )
    got = {
        m.group(1): dict(kv.split("=") for kv in m.group(2).split())
        for m in re.finditer(r"^(alexnet|resnet) +(optimizer=.*)$", out, re.M)
    }
    checks = []
    for name, want in NOTES_RECIPES.items():
        bad = [
            k
            for k, v in want.items()
            if str(got[name][k]) != str(v) and float_or(got[name][k]) != v
        ]
        checks.append(
            (
                not bad,
                f"the {name} recipe: "
                + ", ".join(f"{k}={got[name][k]}" for k in want)
                + (f" (differs from the notes in {', '.join(bad)})" if bad else ""),
            )
        )
    convs, bns, drops = (
        int(v)
        for v in re.search(
            r"convs: (\d+) followed by a batch norm: (\d+) dropouts: (\d+)", out
        ).groups()
    )
    checks.append(
        ("dropout: ['p=0.5', 'p=0.5']" in out, "AlexNet's two dropout layers have p = 0.5")
    )
    checks.append(("fan_out): 1.0 .. 1.0 (He" in out, "ResNet's convolutions are He-initialized"))
    checks.append(
        (
            convs == bns and drops == 0,
            f"ResNet-50: each of its {convs} convolutions is followed by a batch norm "
            f"({bns} of {convs}); {drops} dropout layers",
        )
    )
    doc.text(
        """A short real run of each family at small scale, on the bundled MNIST sample: the AlexNet
        recipe on a narrow AlexNet-like line (two CONV -> RELU -> POOL(F=3,S=2) -> LRN stages with
        the paper's LRN, then FC -> DROPOUT(0.5) -> FC), and the ResNet recipe on the zoo's
        20-layer CIFAR ResNet. Only the scale changes: every 80th training digit and every 40th
        test digit (50 training, 25 test images), batch 16 instead of 128 / 256, and two epochs.
        The runs show that each recipe trains end to end (its optimizer, schedule and weight decay
        are read back from the run's config.json); a few steps say nothing about accuracy, which
        varies by machine and is masked by the check, and the notes' learning-rate drops on a
        plateau need many epochs to happen. As in every run, a tenth of each class of the
        training digits (5 of the 50) is held out for validation, which picks best.pt; the 25
        test digits are scored once, at the end."""
    )
    with _scratch_dir():
        doc.python(
            """
            import numpy as np
            from convnet.data import load

            d = load("mnist-sample")  # the bundled real MNIST sample: 4,000 training and 1,000 test digits
            np.savez("mnist-50.npz", x_train=d.x_train[::80, 0].numpy(), y_train=d.y_train[::80].numpy(),
                     x_test=d.x_test[::40, 0].numpy(), y_test=d.y_test[::40].numpy())
            print("training digits per class:", np.bincount(d.y_train[::80].numpy()).tolist())
            print("test digits per class:", np.bincount(d.y_test[::40].numpy()).tolist())
            """
        )
        runs = {}
        for name, model, epochs in (("alexnet", ALEXNET_LINE, 2), ("resnet", "resnet20", 2)):
            doc.cli(
                f'convnet train "{model}" --data mnist-50.npz --recipe {name} --epochs {epochs} '
                f"--batch 16 --threads 1 --quiet --out runs/notes-{name}",
                mask=r"top-\d [\d.]+%|epoch \d+, best\.pt",
            )
            runs[name] = (
                json.loads(Path(f"runs/notes-{name}/config.json").read_text()),
                [
                    json.loads(ln)
                    for ln in Path(f"runs/notes-{name}/metrics.jsonl").read_text().splitlines()
                ],
            )
    for name, (cfg, metrics) in runs.items():
        want = dict(NOTES_RECIPES[name], batch_size=16)
        used = all(cfg[k] == v for k, v in want.items())
        last = metrics[-1]
        doc.text(
            f"""`runs/notes-{name}`: {len(metrics)} epoch(s), {last["step"]} steps at lr {last["lr"]:g};
            training loss ⟨{last["train_loss"]:.3f}⟩, validation top-1 ⟨{last["val_top1"]:.1f}%⟩
            (chance: 10%)."""
        )
        checks.append(
            (
                used and last["epoch"] == cfg["epochs"],
                f"the {name} run trained {cfg['epochs']} epoch(s) with the recipe's optimizer, "
                "momentum, learning rate, schedule and weight decay (read back from its config.json)",
            )
        )
    doc.verdict(checks)


def float_or(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


@contextlib.contextmanager
def _scratch_dir():
    """Run the training commands in a temporary folder: their files never land in the repo."""
    import tempfile

    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="convnet-notes-") as tmp:
        os.chdir(tmp)
        try:
            yield
        finally:
            os.chdir(old)


SECTIONS: list[Callable[[Doc], None]] = [
    conv_basics,
    stride_rule,
    alexnet_conv1,
    pooling,
    cifar_walkthrough,
    fc_to_conv,
    small_filters,
    vgg16,
    memory_example,
    seed003_tables,
    inception,
    parameter_claims,
    numpy_example,
    receptive_fields,
    recipes,
]


def generate(sections: list[Callable[[Doc], None]] | None = None) -> Doc:
    """Run ``sections`` (default: all, in order) into a new Doc; ``.render()`` gives the text."""
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    doc = Doc()
    saved = {k: os.environ.get(k) for k in TERMINAL}
    os.environ.update(TERMINAL)
    try:
        for section in SECTIONS if sections is None else sections:
            _run_section(doc, section)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return doc


_ANCHOR = re.compile(r'^## <a id="([^"]+)"></a>', re.M)
_INDEX_ROW = re.compile(r"^\| \[(.+)\]\(#([^)]+)\) \| (\w+) \|$", re.M)


def section_text(document: str, anchor: str) -> str:
    """One section of a rendered document: from its heading to the next heading."""
    starts = [(m.group(1), m.start()) for m in _ANCHOR.finditer(document)]
    for i, (name, start) in enumerate(starts):
        if name == anchor:
            end = starts[i + 1][1] if i + 1 < len(starts) else len(document)
            return document[start:end].rstrip() + "\n"
    raise KeyError(f"no section {anchor!r} in the document")


def index_rows(document: str) -> list[tuple[str, str, str]]:
    """The verdict table at the top of a rendered document: (anchor, title, verdict) rows."""
    return [(m.group(2), m.group(1), m.group(3)) for m in _INDEX_ROW.finditer(document)]


def anchors(document: str) -> list[str]:
    """The anchors of the document's sections, in order."""
    return _ANCHOR.findall(document)


def _run_section(doc: Doc, section: Callable[[Doc], None]) -> None:
    start, cpu = time.perf_counter(), time.process_time()
    section(doc)
    print(  # to stderr, so a slow section is easy to find; not part of the document
        f"{section.__name__:18} {time.perf_counter() - start:6.1f} s wall "
        f"{time.process_time() - cpu:6.1f} s CPU",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    text = generate().render()
    if args.check:
        old = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if normalize(old) == normalize(text):
            print(f"{args.out} is up to date")
            return 0
        diff = difflib.unified_diff(
            normalize(old).splitlines(),
            normalize(text).splitlines(),
            "checked in",
            "generated",
            lineterm="",
            n=1,
        )
        print(f"{args.out} is stale; run python docs/make_notes.py\n" + "\n".join(diff))
        return 1
    from convnet.io import atomic_write_text

    atomic_write_text(args.out, text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
