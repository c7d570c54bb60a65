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
import statistics
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
versions, a textbook chapter on classic networks, and a lecture summary of CNN architectures;
"seed 000" to "seed 004" below) work many numbers by hand and make claims about networks. This
document checks, each by one `convnet` command or a few lines of Python using the public API:

- every worked number the toolkit can compute: output sizes, weight and parameter counts,
  activation memory, multiply-adds, receptive fields, depth in weight layers, model sizes;
- the claims it can test by running something: the FC -> CONV equivalence and the shifted
  passes, the training recipes (a short real run of each, which shows they train, not how well),
  LRN's effect on a small network (a separate script, `examples/lrn_ablation.py`, whose results
  are cited with the command);
- the errors it found in the notes, each computed from both sides (and tested in
  `tests/test_seed_errors.py`);
- the notes' layer sizing advice, applied to models as checks (`convnet summary --advice`);
- which of the architectures the notes study the zoo holds.

It does not re-measure accuracy on ImageNet or CIFAR: those numbers are the papers', quoted on
the zoo's model cards with their sources. Each section quotes the claim (translated), shows the
command and its real output, and gives a verdict computed from that output: **reproduced**, or
**differs** with the reason. Where the notes are wrong, it says so and by how much.

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


ALEXNET_CONV1 = "convnet explain conv --input 3x227x227 --filter 11 --stride 4 --filters 96"


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
    out = doc.cli(ALEXNET_CONV1)
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


# --------------------------------------------------------------------------------------------
# Issue 19: the worked numbers that were still unchecked, the seed errors, the sizing advice


def fc_on_images(doc: Doc) -> None:
    doc.section("A fully connected neuron on a 200x200x3 image", "fc-image")
    doc.claim(
        "seed 000 and seed 002",
        """Regular neural networks do not scale to full images: for an image of size 200x200x3,
        each fully connected neuron has 200x200x3 = 120,000 weights. Full connectivity is
        wasteful, and the huge number of parameters quickly leads to overfitting.""",
    )
    fc = doc.cli("convnet explain fc --input 3x200x200 --outputs 1")
    doc.text("A neuron of a convolutional layer on the same image, with a 5x5 receptive field:")
    conv = doc.cli("convnet explain conv --input 3x200x200 --filter 5 --filters 1")
    weights = num(grab(r"weights ([\d,]+) x 1 =", fc))
    local = num(grab(r"\(5\*5\*3\)\*1 = ([\d,]+) weights", conv))
    doc.verdict(
        [
            (weights == 120_000, f"{weights:,} weights per FC neuron (notes: 120,000)"),
            (local == 75, f"a 5x5x3 conv neuron has {local} weights, {weights // local:,}x fewer"),
        ]
    )


def conv_demo(doc: Doc) -> None:
    doc.section("The convolution demo: 5x5x3 input, two 3x3 filters, S=2, P=1", "conv-demo")
    doc.claim(
        "seed 002",
        """Convolution demo, the 3-D volumes laid out by depth slice: the input volume is
        W1 = 5, H1 = 5, D1 = 3; the conv layer has K = 2, F = 3, S = 2, P = 1, i.e. two 3x3
        filters applied with a stride of 2. The output activation map is therefore
        (5 - 3 + 2)/2 + 1 = 3 wide.""",
    )
    out = doc.cli("convnet explain conv --input 3x5x5 --filter 3 --stride 2 --pad 1 --filters 2")
    doc.text(
        """The demo itself, as the animation lays it out: each depth slice of the padded input,
        of both filters, and of the output, computed by the reference engine; one output value
        by hand; and the engine against torch:"""
    )
    py = doc.python(
        """
        import numpy as np, torch
        from convnet.reference import functional as F

        rng = np.random.default_rng(2)
        x = rng.integers(0, 3, (1, 3, 5, 5)).astype(float)   # input values 0..2, as in the demo
        w = rng.integers(-1, 2, (2, 3, 3, 3)).astype(float)  # filter weights -1..1
        b = np.array([1.0, 0.0])                             # the demo's biases: b0 = 1, b1 = 0
        out, _ = F.conv2d_forward(x, w, b, stride=2, padding=1)
        xp = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))          # P = 1: a border of zeros
        show = lambda a: "\\n".join(" ".join(f"{int(v):2d}" for v in row) for row in a)
        for d in range(3):
            print(f"x[:, :, {d}] (zero-padded)\\n{show(xp[d])}")
        for k in range(2):
            for d in range(3):
                print(f"w{k}[:, :, {d}]\\n{show(w[k, d])}")
            print(f"b{k} = {int(b[k])}")
        for k in range(2):
            print(f"o[:, :, {k}]\\n{show(out[0, k])}")
        # o[0, 0, 0]: filter w0 on the top-left 3x3 window of the padded input, plus b0
        by_hand = sum((xp[d, 0:3, 0:3] * w[0, d]).sum() for d in range(3)) + b[0]
        print("o[0, 0, 0] by hand:", int(by_hand), " engine:", int(out[0, 0, 0, 0]))
        ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                         torch.from_numpy(b), stride=2, padding=1)
        print("shape", out.shape[1:], "equals torch's conv2d:", np.array_equal(out, ref.numpy()))
        """
    )
    hand, engine = re.search(r"by hand: (-?\d+)  engine: (-?\d+)", py).groups()
    doc.verdict(
        [
            ("output volume 3x3x2" in out, "(5 - 3 + 2)/2 + 1 = 3: the output volume is 3x3x2"),
            (hand == engine, f"one output worked by hand ({hand}) equals the engine's ({engine})"),
            (
                "(2, 3, 3) equals torch's conv2d: True" in py,
                "the engine's 3x3x2 output equals torch's convolution",
            ),
        ]
    )


PAPER_DEPTHS = {  # seed 004's numbers; VGG also seeds 000-002 ("16 CONV/FC layers")
    "vgg16": 16,
    "vgg19": 19,
    "googlenet": 22,
    "resnet34": 34,
    "resnet50": 50,
    "resnet101": 101,
    "resnet152": 152,
}


def weight_layer_depth(doc: Doc) -> None:
    doc.section("How deep: weight layers as the papers count them", "depth")
    doc.claim(
        "seed 004",
        """GoogLeNet has 22 layers. In its stem only the three convolutions have parameters;
        in the stack of Inception modules parallel layers count once, so a module has two
        layers, and nine modules 18; the output keeps a single FC for the classes: 3 + 18 + 1 =
        22 layers with parameters. VGG comes in 16 and 19 layers. ResNet's total depth is 34,
        50, 101 or 152.""",
    )
    doc.claim("seed 000, seed 001 and seed 002", "VGGNet's best network has 16 CONV/FC layers.")
    doc.text(
        """Every summary counts the weight layers on the longest path from the input to the
        output (`convnet summary` prints it under the parameters; BN, pooling and activations do
        not count, parallel branches count once, auxiliary heads do not run):"""
    )
    out = doc.python(
        """
        import convnet

        for name in ("vgg16", "vgg19", "googlenet", "resnet34", "resnet50", "resnet101", "resnet152"):
            t = convnet.summary(name).totals   # traced on the meta device
            kinds = " + ".join(f"{n} {k}" for k, n in t["weight_layer_kinds"].items())
            print(f"{name:10} {t['weight_layers']:4d} weight layers ({kinds})")
        """
    )
    doc.text("The same count is a column of `convnet models`:")
    zoo = doc.cli('convnet models "vgg1[69]" --format markdown', "markdown")
    doc.text("GoogLeNet's 22, the layers on its longest path grouped by top-level module:")
    goog = doc.python(
        """
        from convnet.analysis.depth import weight_layers
        from convnet.resolve import resolve_model

        path = weight_layers(resolve_model("googlenet", meta=True).model, (3, 224, 224)).path
        groups = {}
        for layer in path:
            groups.setdefault(layer.split(".")[0], []).append(layer)
        for module, layers in groups.items():
            print(f"{module:12} {len(layers)}  {', '.join(layers)}")
        """
    )
    got = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+) +(\d+) weight", out, re.M)}
    groups = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+) +(\d+)  ", goog, re.M)}
    stem = sum(n for g, n in groups.items() if g.startswith("conv"))
    modules = {g: n for g, n in groups.items() if g.startswith("inception")}
    columns = {r["name"]: r["layers"] for r in table_rows(zoo)}
    checks = [
        (got.get(name) == want, f"{name}: {got.get(name)} weight layers (notes: {want})")
        for name, want in PAPER_DEPTHS.items()
    ]
    checks.append(
        (
            columns == {"vgg16": "16", "vgg19": "19"},
            f"`convnet models` shows VGG-16 {columns.get('vgg16')}, VGG-19 {columns.get('vgg19')}",
        )
    )
    checks.append(
        (
            (stem, len(modules), sum(modules.values()), groups.get("fc")) == (3, 9, 18, 1),
            f"GoogLeNet = {stem} (stem convolutions) + {sum(modules.values())} ({len(modules)} "
            f"Inception modules of {' or '.join(map(str, sorted(set(modules.values()))))}) + "
            f"{groups.get('fc')} (FC) (notes: 3 + 18 + 1)",
        )
    )
    doc.verdict(checks)


def vgg19_vs_vgg16(doc: Doc) -> None:
    doc.section("VGG-19 beside VGG-16: memory and operations", "vgg19")
    doc.claim(
        "seed 004",
        """VGG has 16 and 19 layers; 19 layers do slightly better but use more memory; 16
        layers are the more widely used.""",
    )
    out = doc.python(
        """
        import convnet

        s16, s19 = convnet.summary("vgg16").totals, convnet.summary("vgg19").totals
        print(f"{'':30} {'VGG-16':>16} {'VGG-19':>16}  19 / 16")
        for label, key in (("weight layers", "weight_layers"), ("parameters", "params"),
                           ("multiply-adds per image", "macs"),
                           ("activations per image", "activations"),
                           ("forward memory, bytes (fp32)", "forward_bytes")):
            print(f"{label:30} {s16[key]:>16,} {s19[key]:>16,}  {s19[key] / s16[key]:.3f}")
        """
    )
    ratio = {
        m.group(1).strip(): float(m.group(2))
        for m in re.finditer(r"^(.+?) +[\d,]+ +[\d,]+  ([\d.]+)$", out, re.M)
    }
    mem, ops = ratio["forward memory, bytes (fp32)"], ratio["multiply-adds per image"]
    doc.text(
        """The accuracy half of the claim is the papers' to make (the zoo's cards quote them);
        nothing here is trained on ImageNet."""
    )
    doc.verdict(
        [
            (
                mem > 1,
                f"VGG-19 needs {mem - 1:.1%} more activation memory per image than VGG-16 "
                "(three more 3x3 layers, at 56x56, 28x28 and 14x14)",
            ),
            (ops > 1, f"and {ops - 1:.1%} more multiply-adds"),
        ]
    )


def where_it_sits(doc: Doc) -> None:
    doc.section("VGG-16: where the memory sits and where the parameters sit", "where")
    doc.claim(
        "seed 001 and seed 002",
        """Most of the memory (and compute time) is used in the early CONV layers, and most of
        the parameters are in the last FC layers; this is common in ConvNets. Most activations
        are in the first CONV layer(s).""",
    )
    out = doc.python(
        """
        import convnet

        s = convnet.summary("vgg16")
        act, macs, params = (s.totals[k] for k in ("activations", "macs", "params"))
        share = {"input": [s.input[0] * s.input[1] * s.input[2], 0, 0]}
        block = 1
        for r in s.rows:
            group = f"conv block {block}" if r.path.startswith("features") else "classifier (FC)"
            if r.path == "avgpool":
                group = "avgpool"
            cell = share.setdefault(group, [0, 0, 0])
            cell[0] += r.activations if r.new_memory else 0
            cell[1] += r.macs
            cell[2] += r.params
            block += r.type == "MaxPool2d"
        for group, (a, m, p) in share.items():
            print(f"{group:16} activations {100 * a / act:5.1f}%  multiply-adds {100 * m / macs:5.1f}%"
                  f"  parameters {100 * p / params:5.1f}%")
        """
    )
    share = {
        m.group(1).strip(): tuple(float(v) for v in m.group(2, 3, 4))
        for m in re.finditer(
            r"^(.+?) +activations +([\d.]+)%  multiply-adds +([\d.]+)%  parameters +([\d.]+)%",
            out,
            re.M,
        )
    }
    early = share["conv block 1"][0] + share["conv block 2"][0]
    conv_macs = sum(v[1] for g, v in share.items() if g.startswith("conv"))
    early_macs = share["conv block 1"][1] + share["conv block 2"][1]
    fc_params = share["classifier (FC)"][2]
    doc.verdict(
        [
            (
                early > 50,
                f"the first two conv blocks (4 of 13 conv layers) hold {early:.1f}% of the "
                f"activations, the first block alone {share['conv block 1'][0]:.1f}%",
            ),
            (
                fc_params > 50,
                f"the three FC layers hold {fc_params:.1f}% of the parameters",
            ),
            (
                conv_macs > 50,
                f"the CONV layers do {conv_macs:.1f}% of the multiply-adds; spread over the "
                f"blocks, not bunched at the start (the first two blocks: {early_macs:.1f}%)",
            ),
        ]
    )


def first_layer_memory(doc: Doc) -> None:
    doc.section("The first layer's compromise for memory: 7x7/2 against 3x3/1", "first-layer")
    doc.claim(
        "seed 001 and seed 002",
        """Because of memory limits, early networks compromise at the first CONV layer: for
        example a first layer of 7x7 filters with stride 2 (as in ZFNet), or AlexNet's 11x11
        filters with stride 4, instead of keeping the size of the 224x224 image.""",
    )
    big = doc.cli(
        'convnet summary "INPUT[224x224x3] -> CONV(F=7,S=2,P=3,K=64)" --format markdown',
        "markdown",
    )
    small = doc.cli(
        'convnet summary "INPUT[224x224x3] -> CONV(F=3,K=64)" --format markdown', "markdown"
    )
    a = num(table_rows(big)[0]["Activations"])
    b = num(table_rows(small)[0]["Activations"])
    alex = num(grab(r"output volume \S+ = ([\d,]+) neurons", run_cli(ALEXNET_CONV1)))
    doc.text(
        f"""AlexNet's 11x11/4 first layer (the section on AlexNet's first layer above) outputs
        {alex:,} values from a 227x227x3 image."""
    )
    doc.verdict(
        [
            (
                b == 224 * 224 * 64 and a * 4 == b,
                f"7x7/2: {a:,} activations per image; 3x3/1 keeping the size: {b:,}; the "
                f"strided first layer needs {b / a:.0f}x less memory for its output and for "
                "everything after it",
            ),
            (
                alex * 10 < 227 * 227 * 96,
                f"AlexNet's 11x11/4: {alex:,}, {227 * 227 * 96 / alex:.0f}x fewer than a "
                "size-keeping 96-filter layer on 227x227",
            ),
        ]
    )


def stride16(doc: Doc) -> None:
    doc.section("A stride of 16 from shifted passes", "stride16")
    doc.claim(
        "seed 002",
        """And if we want a stride below 32? Run the converted network several times: for a
        stride of 16, once on the original image and once on the image shifted by 16 pixels
        along both width and height.""",
    )
    doc.text(
        """Checked on a narrow network with the notes' geometry (five 2x2 pools: a 224 window,
        total stride 32) on a 384x384 image, with `convnet.surgery.dense_predict`:"""
    )
    py = doc.python(
        """
        import torch
        from convnet.notation import build
        from convnet.surgery import dense_predict

        torch.manual_seed(0)
        net = build("INPUT[224x224x3] -> [CONV(F=1,P=0,K=8) -> RELU -> POOL2]*5 -> FC-10").eval()
        image = torch.randn(3, 384, 384, generator=torch.Generator().manual_seed(0))
        once = dense_predict(net, image).maps[0]
        shifted = dense_predict(net, image, shifts=2).maps[0]    # shifts of 0 or 16 on each axis
        print("one pass:", tuple(once.scores.shape[1:]), "windows", once.stride, "pixels apart")
        print("shifted passes:", tuple(shifted.merged.shape[1:]), "windows",
              shifted.merged_stride, "pixels apart")
        with torch.no_grad():   # every 224x224 window 16 pixels apart, each through the net
            crops = image.unfold(1, 224, 16).unfold(2, 224, 16)
            n = crops.shape[1]
            want = net(crops.permute(1, 2, 0, 3, 4).reshape(-1, 3, 224, 224)).T.reshape(10, n, n)
        print(f"equal to the {n * n} windows scored one by one:", torch.allclose(shifted.merged, want, atol=1e-5))
        diagonal = dense_predict(net, image[:, 16:, 16:]).maps[0].scores   # the notes' second pass
        covered = once.scores[0].numel() + diagonal[0].numel()
        print(f"the notes' two passes (unshifted, shifted 16 along both axes) score {covered} of them")
        """
    )
    n = int(grab(r"equal to the (\d+) windows", py))
    covered = int(grab(r"score (\d+) of them", py))
    doc.verdict(
        [
            (
                "(11, 11) windows (16.0, 16.0)" in py and "one by one: True" in py,
                f"a 384 image gives an 11x11 map at stride 16, equal to the {n} windows scored "
                "one by one",
            ),
            (
                covered == n,
                f"two passes are not enough in 2-D: the unshifted pass and the one shifted along "
                f"both axes score {covered} of the {n} windows; the grid at stride 16 needs four "
                "passes (shifts of 0 or 16 on each axis independently), which is what "
                "`dense_predict(..., shifts=2)` runs",
            ),
        ]
    )


def squeezenet_size(doc: Doc) -> None:
    doc.section("SqueezeNet: 50x fewer parameters, and '510x smaller (0.5 MB)'", "squeezenet")
    doc.claim(
        "seed 004",
        """SqueezeNet: AlexNet-level accuracy on ImageNet with 50x fewer parameters; it can be
        compressed to 510x smaller than AlexNet (0.5 MB of parameters).""",
    )
    out = doc.python(
        """
        import convnet

        alex = convnet.summary("alexnet").totals["params"]
        squeeze = convnet.summary("squeezenet1_0").totals["params"]
        print(f"parameters: AlexNet {alex:,}, SqueezeNet 1.0 {squeeze:,}: {alex / squeeze:.1f}x fewer")
        for bits, label in ((32, "float32"), (8, "int8")):
            a, s = alex * bits / 8 / 1e6, squeeze * bits / 8 / 1e6
            print(f"{label:8} AlexNet {a:6.1f} MB  SqueezeNet {s:5.2f} MB"
                  f"  AlexNet in float32 / SqueezeNet = {alex * 4 / 1e6 / s:.0f}x")
        print(f"0.5 MB for {squeeze:,} parameters is {0.5e6 * 8 / squeeze:.1f} bits each")
        """
    )
    fewer = float(grab(r"([\d.]+)x fewer", out))
    int8 = int(grab(r"int8 .*= (\d+)x", out))
    bits = float(grab(r"is ([\d.]+) bits each", out))
    doc.verdict(
        [
            (round(fewer / 10) == 5, f"{fewer:.1f}x fewer parameters (notes: 50x)"),
            (
                int8 >= 510,
                f"510x is out of reach of storing the weights alone: float32 gives {fewer:.0f}x, "
                f"int8 {int8}x; 0.5 MB is {bits:.1f} bits per parameter. SqueezeNet's paper "
                "(table 2) gets 0.66 MB (363x) at 8 bits and 0.47 MB (510x) at 6 bits only with "
                "Deep Compression (Han et al.): pruning, quantization and Huffman coding of the "
                "weights, which this toolkit does not do",
            ),
        ]
    )


def lrn_effect(doc: Doc) -> None:
    doc.section("LRN's effect, measured at small scale", "lrn-effect")
    doc.claim(
        "seed 003",
        """With LRN, AlexNet's top-1 and top-5 error on ImageNet fall by 1.4% and 1.2%; a
        four-layer CNN's error on CIFAR-10 falls from 13% to 11%.""",
    )
    doc.claim(
        "seed 000 and seed 002",
        """Many normalization layers have been proposed, but they have fallen out of favour:
        in practice their contribution, if any, is very limited.""",
    )
    record = json.loads(LRN_RESULTS.read_text(encoding="utf-8"))
    runs = record["runs"]
    diffs = [r["with LRN"] - r["without LRN"] for r in runs]
    mean = statistics.mean(diffs)
    sd = statistics.stdev(diffs) if len(diffs) > 1 else float("nan")
    sem = sd / len(diffs) ** 0.5
    split = record.get("split") or {}
    held_out = f", {split['val']:,} of them held out for validation" if split.get("val") else ""
    rows = ["| seed | test top-1 with LRN | without LRN | difference |", "|---|---|---|---|"]
    rows += [
        f"| {r['seed']} | {r['with LRN']:.2f}% | {r['without LRN']:.2f}% | "
        f"{r['with LRN'] - r['without LRN']:+.2f} |"
        for r in runs
    ]
    doc.text(
        f"""`{record["command"]}` trains one AlexNet-like line twice per seed, with the paper's
        LRN (k=2, n=5, α=10⁻⁴, β=0.75) after each of the first two pools as in seed 003's table
        3.1 and without it, on the bundled MNIST sample ({record["train_images"]:,} training
        digits{held_out}, {record["test_images"]:,} test digits), {record["epochs"]} epoch(s) at batch
        {record["batch_size"]} with the {record["recipe"]} recipe. Its results, kept in
        docs/lrn_ablation.json ({record["machine"]}):"""
    )
    doc.parts.append("\n".join(rows) + "\n")
    doc.text(
        f"""Mean difference {mean:+.2f} points of test top-1, standard deviation {sd:.2f} over
        {len(diffs)} seeds (standard error {sem:.2f}); the run with LRN is ahead in
        {sum(d > 0 for d in diffs)} of the {len(diffs)} seeds."""
    )
    band = f"{mean:+.2f} ± {2 * sem:.2f} points (two standard errors, {len(diffs)} seeds)"
    doc.text(
        """Seed 003's ImageNet and CIFAR-10 figures are the AlexNet paper's (its section 3.3);
        checking them needs those data sets and full training runs, which this document does
        not make. What the small runs can say:"""
    )
    doc.verdict(
        [
            (
                mean > 2 * sem,
                f"seed 003's direction, LRN lowering the error: at this scale the difference in "
                f"test top-1 with LRN is {band}",
            ),
            (
                abs(mean) <= 2 * sem,
                "seeds 000 and 002's 'very limited': "
                + (
                    "no difference the seeds can tell apart"
                    if abs(mean) <= 2 * sem
                    else f"LRN {'raises' if mean > 0 else 'lowers'} test top-1 by more than the "
                    "seeds' spread"
                )
                + f": {band}",
            ),
        ]
    )


LRN_RESULTS = ROOT / "docs" / "lrn_ablation.json"


def accuracy_claims(doc: Doc) -> None:
    doc.section("AlexNet's ensemble and ZFNet's error: what the papers report", "accuracy")
    doc.claim(
        "seed 004",
        """AlexNet: a 7-CNN ensemble takes the error from 18.2% to 15.4%. ZFNet, ILSVRC 2013's
        winner, keeps AlexNet's architecture with tuned hyperparameters (CONV1 7x7 stride 2;
        CONV3-5 with 512, 1024, 512 filters) and lowers the error from 16.4% to 11.7%.""",
    )
    doc.text("The zoo's model cards quote the papers, with where each number comes from:")
    alex = doc.cli("convnet models alexnet_original --no-macs --format markdown", "markdown")
    zf = doc.cli("convnet models zfnet --no-macs --format markdown", "markdown")
    doc.verdict(
        [
            (
                all(v in alex for v in ("18.2%", "16.4%", "15.4%")),
                "18.2% -> 15.4% is the AlexNet paper's table 2: one CNN 18.2%, seven (two of "
                "them pre-trained on ImageNet Fall 2011) 15.4% top-5 error on the validation set "
                "(15.3% on the test set)",
            ),
            (
                "16.4%" in alex and "11.7%" in zf and "14.8%" in zf,
                "16.4% -> 11.7% compares two competition entries: 16.4% is AlexNet's five-CNN "
                "entry of 2012 (its paper's table 2); 11.7% is the 2013 winner, Clarifai's "
                "(Zeiler's) entry. The ZFNet paper's own best, a six-net ensemble, is 14.8% "
                "(its table 2)",
            ),
        ]
    )


def lrn_as_l2(doc: Doc) -> None:
    doc.section("Seed 003's eq. 3.2: LRN as L2 normalization", "lrn-l2")
    doc.claim(
        "seed 003",
        """LRN is now standard in every deep learning toolbox; changing its hyperparameters
        gives other classic normalizations: with k = 0, n = N, α = 1, β = 0.5 it is the classic
        L2 normalization across channels (eq. 3.2).""",
    )
    doc.text(
        """Eq. 3.1 sums over the channels max(0, d - n/2) .. min(N - 1, d + n/2), a window
        centred on channel d. With n = N that window misses channels at both ends; it reaches
        every channel from every channel only when n/2 >= N - 1, i.e. n >= 2N - 1 for an odd n.
        Both sides, with the toolkit's LRN (the paper's constants; tested in
        `tests/test_seed_errors.py`):"""
    )
    py = doc.python(
        """
        import torch
        from convnet.layers import local_response_norm

        N = 8
        a = torch.rand(1, N, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        l2 = a / a.pow(2).sum(1, keepdim=True).sqrt()       # L2 normalization across channels
        for n in (N, 2 * N - 3, 2 * N - 1):
            b = local_response_norm(n=n, alpha=1.0, beta=0.5, k=0.0)(a)
            print(f"n = {n:2d}: largest difference from L2 normalization {(b - l2).abs().max():.2e}")
        """
    )
    diffs = {
        int(m.group(1)): float(m.group(2))
        for m in re.finditer(r"n = +(\d+): .* ([\d.e+-]+)$", py, re.M)
    }
    doc.verdict(
        [
            (
                diffs[8] < 1e-12,
                f"with n = N = 8 the output differs from L2 normalization by up to {diffs[8]:.2g}: "
                f"eq. 3.2 needs n >= 2N - 1 = 15 (n = 15: {diffs[15]:.1g}; n = 13: "
                f"{diffs[13]:.2g})",
            )
        ]
    )


def inception_v4(doc: Doc) -> None:
    doc.section("Inception-v4 is not 'ResNet + Inception'", "inception-v4")
    doc.claim(
        "seed 004",
        """(On the comparison of networks' accuracy and complexity) Inception-v4 is ResNet +
        Inception.""",
    )
    doc.text(
        """Szegedy et al. 2016 present two families: Inception-v4, a pure Inception network,
        and Inception-ResNet, whose Inception modules add their output back to their input.
        Counted on the zoo's models, with the additions of two equal volumes that shortcut
        connections make (`tests/test_seed_errors.py`):"""
    )
    py = doc.python(
        """
        from convnet.analysis.depth import weight_layers
        from convnet.resolve import resolve_model

        for name in ("inception_v4", "inception_resnet_v2", "resnet50"):
            model = resolve_model(name, meta=True).model
            w = weight_layers(model, (3, 299, 299))
            print(f"{name:20} {w.count:4d} weight layers, {w.sum_merges:3d} shortcut additions")
        """
    )
    adds = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+) .* (\d+) shortcut", py, re.M)}
    doc.verdict(
        [
            (
                adds["inception_v4"] > 0,
                f"Inception-v4 has {adds['inception_v4']} shortcut additions; Inception-ResNet-v2 "
                f"has {adds['inception_resnet_v2']} (ResNet-50: {adds['resnet50']}): 'ResNet + "
                "Inception' is Inception-ResNet",
            )
        ]
    )


def pool_f2_p2(doc: Doc) -> None:
    doc.section("Seed 001's pooling 'F=2, P=2' is F=2, S=2", "pool-f2p2")
    doc.claim(
        "seed 001",
        """The two settings shown above (conv F=3, P=1; pool F=2, P=2) are good: every conv
        layer keeps the spatial size of its input and the pools alone downsample.""",
    )
    halved = doc.cli("convnet explain pool --input 64x224x224 --filter 2 --stride 2")
    padded = doc.cli("convnet explain pool --input 64x224x224 --filter 2 --stride 2 --pad 2")
    py = doc.python(
        """
        import torch
        try:
            torch.nn.functional.max_pool2d(torch.zeros(1, 1, 224, 224), 2, 2, padding=2)
        except RuntimeError as e:
            print("torch:", str(e).splitlines()[0])
        """
    )
    with_pad = grab(r"output volume (\S+)", padded)
    doc.verdict(
        [
            (
                with_pad == "112x112x64",
                "F=2, S=2 halves 224 to "
                + grab(r"output volume (\S+)", halved)
                + f"; with P=2 it gives {with_pad}, no halving, and torch refuses it "
                f"({py.removeprefix('torch: ')}): the notes mean S=2, as seeds 000 and 002 "
                "write the same setting",
            )
        ]
    )


def dilation(doc: Doc) -> None:
    doc.section("Dilation: counted from 0 in the seeds, from 1 here", "dilation")
    doc.claim(
        "seed 000 and seed 002",
        """Dilated convolutions: with a filter w of size 3, the input x is read as w[0]*x[0] +
        w[1]*x[1] + w[2]*x[2], a dilation of 0; with a dilation of 1 it is w[0]*x[0] +
        w[1]*x[2] + w[2]*x[4].""",
    )
    out = doc.cli("convnet explain conv --input 1x7x7 --filter 3 --dilation 2 --filters 1")
    py = doc.python(
        """
        import torch
        x = torch.arange(1.0, 8.0).view(1, 1, 7)     # x[0..6] = 1..7
        w = torch.tensor([[[2.0, 3.0, 5.0]]])
        for d in (1, 2):
            print(f"torch dilation={d}: first output {torch.nn.functional.conv1d(x, w, dilation=d)[0, 0, 0]:.0f}")
        print("w[0]*x[0] + w[1]*x[1] + w[2]*x[2] =", 2 * 1 + 3 * 2 + 5 * 3)
        print("w[0]*x[0] + w[1]*x[2] + w[2]*x[4] =", 2 * 1 + 3 * 3 + 5 * 5)
        """
    )
    d1 = int(grab(r"dilation=1: first output (\d+)", py))
    d2 = int(grab(r"dilation=2: first output (\d+)", py))
    dense = int(grab(r"x\[2\] = (\d+)", py))
    gapped = int(grab(r"x\[4\] = (\d+)", py))
    span = grab(r"= \(7 - (\d+) \(F=3 dilated by 2", out)
    doc.verdict(
        [
            (
                d1 == gapped,
                f"the toolkit counts dilation as torch does, from 1: dilation 1 is the ordinary "
                f"convolution ({d1} = {dense}); the seeds' 'dilation 1', x[0], x[2], x[4], is "
                f"dilation 2 here ({d2} = {gapped}), a 3-filter spanning {span} pixels",
            )
        ]
    )


def advice_section(doc: Doc) -> None:
    doc.section("The layer sizing patterns as checks", "advice")
    doc.claim(
        "seed 000, seed 001 and seed 002",
        """The input should be divisible by 2 many times (32, 64, 96, 224, 384, 512). Conv
        layers should use small filters (3x3, at most 5x5), stride S = 1, and zero padding
        P = (F - 1)/2 so that the size is kept. Pooling is most often F = 2, S = 2, less often
        F = 3, S = 2; hardly ever above 3. A larger filter (7x7 and up) is usually only used at
        the first layer, the one that looks at the image.""",
    )
    doc.text(
        """`convnet summary MODEL --advice` lists where a model departs from each rule, with
        what the notes say it costs, and prints nothing for a model that follows them all. A
        line in the notes' own pattern, and VGG-16, which the notes give as the example:"""
    )
    good = doc.cli(
        'convnet summary "INPUT[32x32x3] -> [CONV3-16 -> RELU -> CONV3-16 -> RELU -> POOL2]*2 '
        '-> FC-10" --advice'
    )
    vgg = doc.cli("convnet summary vgg16 --advice")
    doc.text(
        ("Neither prints anything. " if good == vgg == "" else "")
        + "AlexNet and ResNet-18, whose first layers are the notes' own exceptions:"
    )
    alex = doc.cli("convnet summary alexnet --advice")
    res = doc.cli("convnet summary resnet18 --advice")
    doc.verdict(
        [
            (good == "" and vgg == "", "the notes' pattern and VGG-16 follow every rule"),
            (
                alex.startswith("- exception, features.0 (F=11 S=4") and "departs" not in alex,
                "AlexNet's 11x11/4 first layer is named as the notes' exception, and nothing "
                "else departs",
            ),
            (
                res.startswith("- exception, conv1 (F=7 S=2 P=3)")
                and "departs from 'conv stride S=1': 6 layers" in res,
                "ResNet-18's 7x7/2 stem is the exception; its six strided convs (a 3x3/2 and a "
                "1x1/2 projection in stages 2-4) depart from S=1: ResNet downsamples with "
                "strided convs, not pools",
            ),
        ]
    )


# The architectures the notes name, which seeds name them, and the zoo entries for each.
NOTES_ARCHITECTURES = [
    ("LeNet-5", "000-002, 004", ["lenet5", "lenet5_1998"]),
    ("AlexNet", "000-004", ["alexnet", "alexnet_original"]),
    ("ZFNet", "000-002, 004", ["zfnet"]),
    ("VGG-16 / VGG-19", "000-004", ["vgg16", "vgg19"]),
    ("GoogLeNet", "000-004", ["googlenet", "googlenet_paper"]),
    ("Inception-v4", "000, 001, 004", ["inception_v4"]),
    ("Inception-ResNet", "004", ["inception_resnet_v2"]),
    ("ResNet (18 to 152; 1202 on CIFAR)", "000-004", ["resnet18", "resnet152", "resnet1202"]),
    ("plain nets (20, 34, 56 layers)", "003, 004", ["plain20", "plain34", "plain56"]),
    ("Network in Network", "003, 004", ["nin_cifar"]),
    ("Highway networks", "003", ["highway"]),
    ("pre-activation ResNet (identity mappings)", "000, 001, 004", ["preact_resnet164"]),
    ("Wide ResNet", "004", ["wrn28_10", "wide_resnet50_2"]),
    ("ResNeXt", "004", ["resnext50_32x4d"]),
    ("stochastic depth", "004", ["resnet110 (stochastic_depth=0.5)"]),
    ("FractalNet", "004", ["fractalnet_cifar"]),
    ("DenseNet", "004", ["densenet121"]),
    ("SqueezeNet", "004", ["squeezenet1_0"]),
    ("SENet", "004", ["seresnet50"]),
    ("NASNet", "004", ["nasnet_a_mobile", "nasnet_a_large"]),
    ("All-convolutional net", "000", ["allconv"]),
]


def zoo_coverage(doc: Doc) -> None:
    doc.section("The architectures the notes study, in the zoo", "zoo")
    doc.text(
        """The notes name these networks as ones they study (VAEs and GANs, named in passing
        in seed 000, and MobileNet / ShuffleNet, a link title in seed 004, are not studied).
        Which the zoo has, checked against the registry, and built for the option:"""
    )
    rows = ["| architecture | named in seeds | zoo | present |", "|---|---|---|---|"]
    missing = []
    for arch, seeds, names in NOTES_ARCHITECTURES:
        present = all(_zoo_has(n) for n in names)
        missing += [] if present else [arch]
        shown = ", ".join(f"`{n}`" for n in names)
        rows.append(f"| {arch} | {seeds} | {shown} | {'yes' if present else 'no'} |")
    doc.parts.append("\n".join(rows) + "\n")
    doc.verdict(
        [
            (
                not missing,
                "the zoo holds every architecture the notes study"
                + (f", except {', '.join(missing)}" if missing else ""),
            )
        ]
    )


def _zoo_has(entry: str) -> bool:
    """A registered name, or 'name (option=value)' that builds (on the meta device)."""
    from convnet.models import is_model
    from convnet.resolve import resolve_model

    name, _, option = entry.partition(" (")
    if not is_model(name):
        return False
    if option:
        key, value = option.rstrip(")").split("=")
        resolve_model(name, meta=True, **{key: float(value)})  # raises if the option is unknown
    return True


SECTIONS: list[Callable[[Doc], None]] = [
    fc_on_images,
    conv_basics,
    stride_rule,
    conv_demo,
    alexnet_conv1,
    numpy_example,
    dilation,
    pooling,
    pool_f2_p2,
    cifar_walkthrough,
    fc_to_conv,
    stride16,
    small_filters,
    advice_section,
    first_layer_memory,
    vgg16,
    where_it_sits,
    vgg19_vs_vgg16,
    memory_example,
    seed003_tables,
    lrn_as_l2,
    lrn_effect,
    inception,
    inception_v4,
    weight_layer_depth,
    parameter_claims,
    squeezenet_size,
    receptive_fields,
    recipes,
    accuracy_claims,
    zoo_coverage,
]


def generate(sections: list[Callable[[Doc], None]] | None = None) -> Doc:
    """Run ``sections`` (default: all, in order) into a new Doc; ``.render()`` gives the text."""
    import torch

    # one thread: the check runs beside other tests (pytest -n 2), where two threads a process
    # oversubscribe the cores and spin
    torch.set_num_threads(1)
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
