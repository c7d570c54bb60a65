"""Start-up: what a summary, FC -> CONV, `convnet models` and `convnet explain` must not import.

``torch._dynamo`` (about a second) and sympy (about half a second) come in through torch's
Python meta kernels and decompositions, which the meta-device trace avoids; `convnet models`
reads stored MAC counts instead of tracing. Each check runs in a fresh interpreter, since the
test process itself may have imported anything.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convnet
from convnet.errors import ShapeError

SCRIPT = textwrap.dedent(
    """
    import contextlib, io, sys
    from convnet.cli import main

    def quiet(*argv):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(list(argv)) == 0, argv
        return out.getvalue()

    # `convnet summary vgg16` registers one subcommand and imports one zoo family
    quiet("summary", "vgg16")
    families = sorted(m for m in sys.modules if m.startswith("convnet.models.") and m[15] != "_")
    assert families == ["convnet.models.macs", "convnet.models.outputs", "convnet.models.vgg"], families
    commands = sorted(m for m in sys.modules if m.startswith("convnet.cli.") and m[12] != "_")
    assert commands == ["convnet.cli.summary"], commands

    # (test_zoo_macs checks that every model's count is stored; here, that none is traced)
    import convnet.analysis as analysis
    def traced(*args, **kwargs):
        raise AssertionError("models traced")
    analysis.summary, kept = traced, analysis.summary
    csv = quiet("models", "vgg", "--format", "csv")
    analysis.summary = kept
    assert "vgg16," in csv
    quiet("explain", "stack", "--filter", "3", "--depth", "3")

    from convnet.analysis import summary
    for name in ("vgg16", "resnet50", "densenet121"):
        macs = summary(name).totals["macs"]
        assert f'"macs": {macs}' in quiet("summary", name, "--format", "json")
    # FC -> CONV's shape pass on a meta model (the notes' VGG/AlexNet conversions)
    import torch
    from convnet.analysis.trace import SkipInit
    from convnet.models import create_model
    from convnet.surgery import fc_to_conv
    with torch.device("meta"), SkipInit():
        fc_to_conv(create_model("alexnet"), (3, 224, 224))
    # a pattern-language line with real weights (what eval, predict and viz of a line's run build)
    from convnet.notation import build
    build("INPUT[28x28x1] -> CONV3-8 -> RELU -> POOL -> FC-10")
    loaded = [m for m in ("torch._dynamo", "sympy") if m in sys.modules]
    assert not loaded, f"imported {loaded}"
    """
)


@pytest.mark.slow  # a long multi-process or end-to-end test: run first
def test_summary_models_and_explain_import_neither_dynamo_nor_sympy() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_training_memory_only_when_asked(cli) -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    plain = convnet.summary(net, (3, 8, 8))
    assert plain.totals["training_bytes"] is None and plain.totals["max_batch"] is None
    # the notes' rule of thumb stays: 4 bytes x params x (2 + 1 momentum) + 2 x activations
    params = 4 * 3 * 9 + 4 + 144 * 2 + 2
    activations = 3 * 64 + 4 * 36 + 4 * 36 + 2  # input, conv, relu, fc (flatten is a view)
    assert plain.totals["notes_training_bytes"] == 4 * params * 3 + 2 * 4 * activations
    asked = convnet.summary(net, (3, 8, 8), batch_size=4)
    assert asked.totals["training_bytes"] > 4 * params * 3  # weights, grads, momentum at least
    assert (
        convnet.summary(net, (3, 8, 8), 4, training_memory=False).totals["training_bytes"] is None
    )
    assert convnet.summary(net, (3, 8, 8), training_memory=True).totals["training_bytes"] > 0
    code, out, _ = cli("summary", "lenet5")
    assert code == 0 and "Training memory" not in out
    code, out, _ = cli("summary", "lenet5", "--batch", "2")
    assert code == 0 and "Training memory at batch 2" in out


def test_a_model_without_parameters_is_summarized() -> None:
    s = convnet.summary(nn.Sequential(nn.ReLU()), (3, 32, 32))
    assert s.totals["params"] == 0 and s.totals["macs"] == 0
    assert [r.output for r in s.rows] == [(3, 32, 32)] and not s.warnings
    s = convnet.summary(nn.Sequential(nn.MaxPool2d(2)), (3, 32, 32), batch_size=8)
    assert s.rows[0].output == (3, 16, 16) and s.totals["training_bytes"] is None
    assert len(s.warnings) == 1 and "no trainable parameters" in s.warnings[0]


def test_the_plain_table_is_rich_s_layout(monkeypatch) -> None:
    from convnet.analysis import report

    s = convnet.summary("resnet18")  # containers, residual adds, every column filled
    plain = s.render("table", width=160)
    monkeypatch.setattr(report, "_plain_table", lambda *args: None)
    assert plain == s.render("table", width=160)
    assert "\nlayer1 (Sequential)\n  0 (BasicBlock)\n" in plain and "11,689,512" in plain


def test_a_narrow_table_leaves_columns_out_instead_of_cutting_numbers(monkeypatch) -> None:
    """Narrower than the table, whole columns go (F S P first, then the receptive field) with a
    line naming them; no cell is cut short by an ellipsis. Rich's layout gives the same text."""
    from convnet.analysis import report

    s = convnet.summary("vgg16")
    wide, narrow = s.render("table", width=200), s.render("table", width=120)
    assert "F S P" in wide and "left out" not in wide
    table = narrow.split("\nParameters:")[0].splitlines()
    assert table[1].split() == [
        *"Layer Type Output Activations Memory Weights Biases".split(),
        "MACs",
    ]
    assert "F=3 S=1 P=1" not in narrow and "…" not in narrow
    assert max(len(line) for line in table[:-1]) <= 120
    assert table[-1] == (
        "(left out to fit 120 columns: F S P, RF size /jump @start; a wider terminal or "
        "--format csv shows them)"
    )
    row = next(line for line in table if line.lstrip().startswith("0 ") and "Conv2d" in line)
    # conv1_1 of the notes' table: 224x224x64 = 3,211,264 activations, 12.8 MB, 1,728 weights
    assert row.split()[2:7] == ["224x224x64", "3,211,264", "12.8", "MB", "1,728"]
    monkeypatch.setattr(report, "_plain_table", lambda *args: None)
    assert s.render("table", width=120) == narrow


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(4, 13),
    f=st.integers(1, 4),
    s=st.integers(1, 3),
    p=st.integers(0, 2),
    d=st.integers(1, 2),
    ceil=st.booleans(),
    kind=st.sampled_from(["conv", "max", "avg"]),
)
def test_shapes_from_arithmetic_equal_torch_s(n, f, s, p, d, ceil, kind) -> None:
    """The trace computes conv/pool outputs from (W - d(F-1) - 1 + 2P)/S + 1, not torch's meta
    kernels; a real forward on zeros must give the same volumes."""
    if kind == "conv":
        layer = nn.Conv2d(2, 3, f, s, p, d)
    elif kind == "max":
        layer = nn.MaxPool2d(f, s, min(p, f // 2), d, ceil_mode=ceil)
    else:
        layer = nn.AvgPool2d(f, s, min(p, f // 2), ceil_mode=ceil)
    net = nn.Sequential(layer)
    pad = layer.padding if isinstance(layer.padding, int) else layer.padding[0]
    if kind != "avg" and d * (f - 1) + 1 > n + 2 * pad:
        # a window larger than its padded input is refused (the notes' rule), even where torch's
        # ceil_mode still yields one output
        with pytest.raises(ShapeError):
            convnet.summary(net, (2, n, n))
        return
    try:
        real = tuple(layer(torch.zeros(1, 2, n, n)).shape[1:])
    except RuntimeError:
        with pytest.raises(ShapeError):
            convnet.summary(net, (2, n, n))
        return
    assert convnet.summary(net, (2, n, n)).rows[0].output == real


class Mix(nn.Module):
    """Calls whose meta results the trace computes from shapes, each a row of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.register_buffer("rows", torch.tensor([0, 2]))
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 2, 6, 6)
        doubled = x * 2
        joined = torch.cat([x, doubled], 1)  # (N, 4, 6, 6)
        stacked = torch.stack([x, x], 2)  # (N, 2, 2, 6, 6)
        means = joined.mean((2, 3), keepdim=True)  # (N, 4, 1, 1)
        centred = joined - means  # broadcast
        flipped = 1 - centred  # __rsub__
        pooled = F.adaptive_avg_pool2d(flipped, (3, None))  # (N, 4, 3, 6)
        scores = self.fc(pooled)  # (N, 4, 3, 4)
        picked = scores[:, self.rows]  # (N, 2, 3, 4)
        out = picked.sum(-1)  # (N, 2, 3)
        self.seen = [doubled, joined, stacked, means, centred, flipped, pooled, scores, picked, out]
        return out


def test_other_shapes_from_arithmetic_equal_torch_s() -> None:
    model = Mix()
    model(torch.zeros(1, 2, 6, 6))
    real = [tuple(t.shape[1:]) for t in model.seen]
    s = convnet.summary(model, (2, 6, 6))
    assert [r.output for r in s.rows] == real and not s.warnings
    assert s.rows[7].macs == 4 * 3 * 4 * 6  # the Linear row: outputs x inputs


def test_the_program_leaves_its_imports_frozen_an_in_process_call_thaws(monkeypatch, capsys):
    """`convnet summary` freezes what it imported (gc.freeze); the program (console) keeps it
    frozen to its exit, where Python's last collection would walk torch's objects (~0.7 s),
    while main() called in-process thaws it for its caller."""
    import gc

    from convnet.cli import _args, console, main

    assert gc.get_freeze_count() == 0
    assert main(["summary", "lenet5"]) == 0 and gc.get_freeze_count() == 0
    monkeypatch.setattr(sys, "argv", ["convnet", "summary", "lenet5"])
    try:
        assert console() == 0 and gc.get_freeze_count() > 0
    finally:
        _args.thaw()
    assert gc.get_freeze_count() == 0
