"""The pattern language: the notes' own lines, round trips, shapes by arithmetic, errors."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from convnet.errors import NotationError, ShapeError
from convnet.layers.l2pool import L2Pool2d
from convnet.notation import Layer, Net, Repeat, build, format, parse

# Every architecture line of seeds 000, 001 and 002, copied as the notes write them
# (000 writes LaTeX with markdown escapes; 002 puts a markdown line break '\' after one).
SEED_LINES = [
    r"$$INPUT \Rightarrow [[CONV \Rightarrow RELU]\*N \Rightarrow POOL?]\*M \Rightarrow [FC \Rightarrow RELU]\*K \Rightarrow FC$$",
    r"$$INPUT \Rightarrow FC$$",
    r"$$INPUT \Rightarrow CONV \Rightarrow RELU \Rightarrow FC$$",
    r"$$INPUT \Rightarrow [CONV \Rightarrow RELU \Rightarrow POOL]*2 \Rightarrow FC \Rightarrow RELU \Rightarrow FC$$",
    r"$$INPUT \Rightarrow [CONV \Rightarrow RELU \Rightarrow CONV \Rightarrow RELU \Rightarrow POOL]\*3 \Rightarrow [FC \Rightarrow RELU]\*2 \Rightarrow FC$$",
    "INPUT -> FC",
    "INPUT -> CONV -> RELU -> FC",
    "INPUT -> [CONV -> RELU -> POOL]*2 -> FC -> RELU -> FC",
    "INPUT -> [CONV -> RELU -> CONV -> RELU -> POOL]*3 -> [FC -> RELU]*2 -> FC",
    "[INPUT - CONV - RELU - POOL - FC]",
    "INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC \\",  # one backslash
    "INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC",
]
NOTES_COUNTS = {"N": 2, "M": 3, "K": 1}  # the notes: N <= 3, K < 3


def _train_step(model: nn.Module, batch: int = 2) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    out = model(x)
    assert out.shape == (batch, 10)
    loss = nn.functional.cross_entropy(out, y)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("line", SEED_LINES)
def test_seed_line_parses_builds_and_trains(line):
    tree = parse(line)
    assert parse(format(tree)) == tree
    model = build(tree, input_size=(3, 32, 32), num_classes=10, counts=NOTES_COUNTS)
    assert model.default_input_size == (3, 32, 32)
    again = build(model.notation_line, device="meta")  # the line it keeps rebuilds it
    assert [str(m) for m in again] == [str(m) for m in model]
    _train_step(model)


def test_general_pattern_with_zero_counts_is_a_linear_classifier():
    # The notes: INPUT -> FC is a linear classifier, "here N = M = K = 0".
    model = build(SEED_LINES[0], num_classes=10, counts={"N": 0, "M": 0, "K": 0})
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 32 * 32 * 3
    assert sum(p.numel() for p in model.parameters()) == 3072 * 10 + 10


def test_general_pattern_counts_expand_as_written():
    # N=2, M=3, K=1: 3 blocks of (2 conv + pool), one hidden FC, the classifier.
    model = build(SEED_LINES[-1] + "; N=2, M=3, K=1", device="meta")
    kinds = [type(m).__name__ for m in model]
    assert kinds.count("Conv2d") == 6 and kinds.count("MaxPool2d") == 3
    assert kinds.count("Linear") == 2
    assert [m.out_channels for m in model if isinstance(m, nn.Conv2d)] == [32, 32, 64, 64, 128, 128]
    dropped = build(SEED_LINES[-1], counts=NOTES_COUNTS, keep_optional=False, device="meta")
    assert not any(isinstance(m, nn.MaxPool2d) for m in dropped)


def _shapes(model: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    for m in model:
        x = m(x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


@pytest.mark.parametrize(
    "line, options",
    [
        ("INPUT[32x32x3] - CONV - RELU - POOL - FC", {"conv_width": 12}),
        ("[INPUT - CONV - RELU - POOL - FC]", {"conv_width": 12}),
        ("INPUT[32x32x3] -> CONV3-12 -> RELU -> POOL2 -> FC", {}),
        ("INPUT -> CONV(F=3,S=1,P=1,K=12) -> RELU -> POOL(F=2,S=2) -> FC(10)", {}),
    ],
)
def test_seed_002_cifar_example_shapes(line, options):
    # Seed 002: [32x32x3] -CONV 12 filters-> [32x32x12] -RELU-> [32x32x12] -POOL-> [16x16x12] -FC-> [1x1x10]
    conv = (32 - 3 + 2 * 1) // 1 + 1  # (W - F + 2P)/S + 1
    pool = (conv - 2) // 2 + 1
    model = build(line, num_classes=10, **options)
    got = _shapes(model, torch.randn(2, 3, 32, 32))
    assert got == [(12, conv, conv), (12, conv, conv), (12, pool, pool), (12 * pool * pool,), (10,)]
    assert (conv, pool) == (32, 16)


# The VGG-16 table of the notes (seeds 001/002, "VGGNet in detail"), one row per layer; the
# weights column is copied from the notes, the biases are one per filter / unit.
VGG16_ROWS = [
    ("CONV3-64", 1_728), ("CONV3-64", 36_864), ("POOL2", 0),
    ("CONV3-128", 73_728), ("CONV3-128", 147_456), ("POOL2", 0),
    ("CONV3-256", 294_912), ("CONV3-256", 589_824), ("CONV3-256", 589_824), ("POOL2", 0),
    ("CONV3-512", 1_179_648), ("CONV3-512", 2_359_296), ("CONV3-512", 2_359_296), ("POOL2", 0),
    ("CONV3-512", 2_359_296), ("CONV3-512", 2_359_296), ("CONV3-512", 2_359_296), ("POOL2", 0),
    ("FC-4096", 102_760_448), ("FC-4096", 16_777_216), ("FC-1000", 4_096_000),
]  # fmt: skip


def _vgg16_biases() -> int:
    return sum(int(name.split("-")[1]) for name, _ in VGG16_ROWS if "-" in name)


def test_vgg16_table_as_one_line_has_138_357_544_parameters():
    line = "INPUT[224x224x3] -> " + " -> ".join(name for name, _ in VGG16_ROWS)
    model = build(line, device="meta")
    total = sum(p.numel() for p in model.parameters())
    assert total == sum(w for _, w in VGG16_ROWS) + _vgg16_biases() == 138_357_544
    weights = [m.weight.numel() for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert weights == [w for _, w in VGG16_ROWS if w]
    assert model.default_input_size == (3, 224, 224)
    # With the ReLUs the table leaves out, written with repetitions: same count.
    relu_line = (
        "INPUT[224x224x3] -> [CONV3-64 -> RELU]*2 -> POOL2 -> [CONV3-128 -> RELU]*2 -> POOL2"
        " -> [CONV3-256 -> RELU]*3 -> POOL2 -> [[CONV3-512 -> RELU]*3 -> POOL2]*2"
        " -> [FC-4096 -> RELU -> DROPOUT]*2 -> FC-1000"
    )
    meta = build(relu_line, device="meta")
    assert sum(p.numel() for p in meta.parameters()) == 138_357_544
    assert meta(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 1000)


def test_num_classes_overrides_the_last_fc_and_defaults_to_ten():
    assert build("INPUT -> FC-1000", num_classes=7, device="meta")[-1].out_features == 7
    assert build("INPUT -> FC-1000", device="meta")[-1].out_features == 1000
    assert build("INPUT -> FC -> FC", device="meta")[-1].out_features == 10
    assert build("INPUT -> FC -> FC", device="meta")[1].out_features == 512
    assert build("INPUT -> FC -> FC", fc_width=64, device="meta")[1].out_features == 64


def test_input_size_order_and_overrides():
    model = build("INPUT[40x24x5] -> FC", device="meta")  # W=40, H=24, D=5
    assert model.default_input_size == (5, 24, 40)
    assert model[1].in_features == 40 * 24 * 5
    model = build("INPUT[40x24x5] -> FC", input_size=(1, 28, 28), device="meta")
    assert model.default_input_size == (1, 28, 28) and model[1].in_features == 784
    assert build("INPUT -> FC", device="meta").default_input_size == (3, 32, 32)
    assert build("INPUT[8x8x3] -> FC", in_chans=1, device="meta")[1].in_features == 64


def test_every_layer_kind_builds_the_expected_module():
    line = (
        "INPUT[16x16x4] -> CONV(F=5,S=1,P=2,K=8,dilation=1,groups=2) -> BN -> RELU -> LRN"
        " -> L2POOL2 -> LC3-6 -> AVGPOOL(F=3,S=2,P=1) -> CONV(F=3,dilation=2,K=4) -> GAP"
        " -> FC-20 -> BN -> DROPOUT(0.3) -> FC -> SOFTMAX"
    )
    model = build(line, num_classes=5)
    kinds = [type(m).__name__ for m in model]
    assert kinds == [
        "Conv2d", "BatchNorm2d", "ReLU", "LocalResponseNorm", "L2Pool2d", "LocallyConnected2d",
        "AvgPool2d", "Conv2d", "AdaptiveAvgPool2d", "Flatten", "Linear", "BatchNorm1d",
        "Dropout", "Linear", "Softmax",
    ]  # fmt: skip
    conv = model[0]
    assert (conv.kernel_size, conv.padding, conv.groups, conv.out_channels) == (
        (5, 5),
        (2, 2),
        2,
        8,
    )
    lrn = model[3]
    assert (lrn.size, lrn.k, lrn.beta) == (5, 2.0, 0.75)
    assert lrn.alpha == pytest.approx(1e-4 * 5)  # torch divides alpha by n; the paper does not
    # 16 -L2POOL2-> 8 -LC3 (P=1)-> 8 -AVGPOOL(3,2,1)-> 4 -CONV dil 2 (P=2)-> 4 -GAP-> 1
    assert model[5].in_size == (8, 8)
    assert _shapes(model.eval(), torch.randn(3, 4, 16, 16))[7] == (4, 4, 4)
    assert model(torch.randn(3, 4, 16, 16)).sum(1).allclose(torch.ones(3))


def test_lrn_matches_the_paper_formula():
    model = build("INPUT[3x3x7] -> LRN(k=2,n=5,alpha=0.01,beta=0.75)")
    x = torch.randn(1, 7, 3, 3)
    want = torch.empty_like(x)
    for c in range(7):  # b_c = a_c / (k + alpha * sum_{|j-c| <= n/2} a_j^2)^beta
        lo, hi = max(0, c - 2), min(6, c + 2)
        want[:, c] = x[:, c] / (2 + 0.01 * (x[:, lo : hi + 1] ** 2).sum(1)) ** 0.75
    torch.testing.assert_close(model(x), want)


def test_notation_source_names_each_layer_with_its_column():
    model = build("INPUT[32x32x3] -> [CONV(F=3,S=2) -> RELU]*2 -> FC-10")
    sources = [m.notation_source for m in model]
    assert sources[0] == "layer 1 (col 20): CONV(F=3,S=2)"
    assert sources[2] == "layer 3 (col 20): CONV(F=3,S=2)"
    assert sources[4].startswith("inserted before layer 5 (col 48): FC-10")
    assert model.notation_line == "INPUT[32x32x3] -> [CONV(F=3,S=2) -> RELU]*2 -> FC-10"


def test_format_of_a_built_model_folds_repeats_and_rebuilds_the_same_shapes():
    model = build("INPUT[32x32x3] -> [CONV3-32 -> RELU -> POOL2]*2 -> FC-10", device="meta")
    line = format(model)
    assert line == "INPUT[32x32x3] -> [CONV3-32 -> RELU -> POOL2]*2 -> FC-10"
    again = build(line, device="meta")
    assert [str(m) for m in again] == [str(m) for m in model]
    with pytest.raises(NotationError, match="Tanh"):
        format(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh()))


def test_l2pool_is_the_l2_norm_of_each_window():
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64)
    got = L2Pool2d(3, 2, 1)(x)
    padded = nn.functional.pad(x, (1, 1, 1, 1))
    want = torch.empty(2, 3, 4, 4, dtype=torch.float64)
    for i in range(4):
        for j in range(4):
            win = padded[:, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
            want[:, :, i, j] = win.pow(2).sum((2, 3)).sqrt()
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(L2Pool2d(2)(x[..., :6, :6]), nn.LPPool2d(2, 2)(x[..., :6, :6]))
    z = torch.zeros(1, 1, 4, 4, requires_grad=True)  # all-zero windows: finite gradient
    L2Pool2d(2)(z).sum().backward()
    assert torch.isfinite(z.grad).all() and (z.grad == 0).all()
    xr = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(L2Pool2d(2), (xr,))


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, start",
    [
        ("INPUT -> [CONV]*M", "col 17: expected a number after '*', found 'M'"),
        ("INPUT -> CONVV -> FC", "col 10: unknown layer 'CONVV'; did you mean CONV?"),
        ("INPUT -> RELUU", "col 10: unknown layer 'RELUU'; did you mean RELU?"),
        ("INPUT -> CONV ->", "col 17: expected a layer after '->', found the end of the line"),
        ("INPUT -> [CONV -> RELU*2", "col 25: expected '->' or ']'"),
        ("INPUT -> CONV3-64(F=5)", "col 19: CONV's F is given twice"),
        ("INPUT -> CONV(F=2.5)", "col 17: CONV's F must be a whole number"),
        ("INPUT -> DROPOUT(1.5)", "col 18: DROPOUT's p=1.5 is out of range"),
        ("INPUT -> CONV(Q=3)", "col 15: CONV has no parameter 'Q'"),
        ("INPUT[32x32] -> FC", "col 7: expected three sizes WxHxD"),
        ("INPUT -> FC -> CONV", "col 16: CONV needs a [WxHxD] volume"),
        ("CONV -> INPUT", "col 9: INPUT can only be the first layer"),
        ("INPUT -> CONV @ FC", "col 15: unexpected character '@'"),
        ("INPUT -> [CONV]*2; N=3", "col 20: N is given a value after ';' but no '*N' uses it"),
        ("INPUT -> [CONV]*2.5", "col 17: expected a number after '*', found '2.5'"),
        ("INPUT CONV", "col 7: expected '->' or the end of the line, found 'CONV'"),
    ],
)
def test_errors_name_the_column_the_token_and_what_was_expected(line, start):
    with pytest.raises(NotationError) as info:
        build(line, device="meta")
    assert str(info.value).startswith(start), str(info.value)
    assert isinstance(info.value.col, int) and info.value.expected


def test_unbound_symbol_error_carries_its_parts():
    with pytest.raises(NotationError) as info:
        build("INPUT -> [CONV]*M")
    e = info.value
    assert (e.col, e.token, e.expected) == (17, "M", "a number after '*'")
    assert "counts={'M': 2}" in str(e)


@pytest.mark.parametrize(
    "line, col",
    [
        ("INPUT[4x4x3] -> POOL -> POOL -> POOL", 33),
        ("INPUT[8x8x3] -> CONV(F=9,P=0)", 17),
        ("INPUT[8x8x3] -> LC(F=3,S=2,P=0)", 17),  # (8 - 3) / 2 is not whole: LC cannot floor
        ("INPUT[8x8x3] -> CONV(K=4,groups=3)", 17),
    ],
)
def test_misfits_are_shape_errors_with_the_layer_column(line, col):
    with pytest.raises(NotationError) as info:
        build(line)
    assert isinstance(info.value, ShapeError)
    assert str(info.value).startswith(f"col {col}: ")


# -- properties -----------------------------------------------------------------------------

_ARROWS = ["->", " -> ", "=>", " ⇒ ", r" \Rightarrow ", "→", " - "]


def _case(name: str, draw) -> str:
    return draw(st.sampled_from([name, name.lower(), name.capitalize()]))


@st.composite
def _layer(draw, flat: bool) -> tuple[str, Layer]:
    """One layer that fits anywhere in its part of the line: (text, expected tree node)."""
    if flat:
        kind = draw(st.sampled_from(["FC", "RELU", "DROPOUT", "BN", "SOFTMAX"]))
    else:
        kind = draw(
            st.sampled_from(["CONV", "RELU", "POOL", "AVGPOOL", "L2POOL", "BN", "LRN", "LC"])
        )
    name = _case(kind, draw)
    args: dict[str, int | float] = {}
    text = name
    if kind in ("CONV", "LC"):  # S=1 and P >= (F-1)/2 keep the size: always fits
        f = draw(st.sampled_from([None, 1, 3, 5]))
        k = draw(st.none() | st.integers(1, 8))
        extra = kind == "CONV" and draw(st.booleans())
        if extra or draw(st.booleans()):
            if f is not None:
                args["F"] = f
            if k is not None:
                args["K"] = k
            if extra:
                args["S"] = 1
                args["dilation"] = draw(st.integers(1, 2))
                args["P"] = args["dilation"] * (args.get("F", 3) - 1) // 2 + draw(st.integers(0, 1))
            if args:
                parts = [
                    f"{key.lower() if draw(st.booleans()) else key}={v}" for key, v in args.items()
                ]
                text = f"{name}({','.join(draw(st.permutations(parts)))})"
        else:
            args = {key: v for key, v in (("F", f), ("K", k)) if v is not None}
            text = name + (str(f) if f is not None else "") + (f"-{k}" if k is not None else "")
    elif kind in ("POOL", "AVGPOOL", "L2POOL"):  # halves (rounding up): fits down to 1x1
        form = draw(st.sampled_from(["bare", "F2", "F3P1"]))
        if form == "F2":
            args, text = {"F": 2}, name + "2"
        elif form == "F3P1":
            args, text = {"F": 3, "S": 2, "P": 1}, f"{name}(F=3,S=2,P=1)"
    elif kind == "LRN" and draw(st.booleans()):
        args = {"k": 1.0, "n": 3, "alpha": 0.001, "beta": 0.5}
        text = f"{name}(k=1,n=3,alpha=1e-3,beta=0.5)"
    elif kind == "FC" and draw(st.booleans()):
        n = draw(st.integers(1, 16))
        args = {"N": n}
        text = draw(
            st.sampled_from([f"{name}-{n}", f"{name}({n})", f"{name}{n}", f"{name}(N={n})"])
        )
    elif kind == "DROPOUT" and draw(st.booleans()):
        args = {"p": 0.25}
        text = f"{name}({draw(st.sampled_from(['0.25', '.25', 'p=0.25']))})"
    optional = kind in ("POOL", "RELU", "BN") and draw(st.booleans())
    order = {"CONV": ["F", "S", "P", "K", "dilation", "groups"], "LC": ["F", "S", "P", "K"]}
    keyorder = order.get(kind, ["F", "S", "P", "N", "p", "k", "n", "alpha", "beta"])
    node = Layer(kind, tuple(sorted(args.items(), key=lambda kv: keyorder.index(kv[0]))), optional)
    return text + ("?" if optional else ""), node


@st.composite
def _seq(draw, flat: bool, depth: int, symbols: list[str]) -> tuple[list[str], list]:
    texts, nodes = [], []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 2 and draw(st.integers(0, 3)) == 0:
            inner_t, inner_n = draw(_seq(flat, depth + 1, symbols))
            arrow = draw(st.sampled_from(_ARROWS))
            count = draw(st.sampled_from([1, 0, 2, 3, "sym"]))
            if count == "sym":
                count = draw(st.sampled_from(["N", "M", "K"]))
                symbols.append(count)
            star = draw(st.sampled_from(["*", r"\*"]))
            suffix = (
                "" if count == 1 and draw(st.booleans()) else f"{star}{_case(str(count), draw)}"
            )
            optional = draw(st.integers(0, 4)) == 0
            texts.append(f"[{arrow.join(inner_t)}]{suffix}{'?' if optional else ''}")
            body = tuple(inner_n)
            nodes.append(Repeat(body, count, optional))
        else:
            t, n = draw(_layer(flat))
            texts.append(t)
            nodes.append(n)
    return texts, nodes


@st.composite
def valid_lines(draw) -> tuple[str, Net, dict[str, int]]:
    symbols: list[str] = []
    conv_t, conv_n = draw(_seq(False, 0, symbols))
    fc_t, fc_n = draw(_seq(True, 0, symbols))
    texts, nodes = [], []
    if draw(st.booleans()):
        texts.append("INPUT[32x32x3]" if draw(st.booleans()) else "input")
        nodes.append(Layer("INPUT", (("W", 32), ("H", 32), ("D", 3)) if "[" in texts[0] else ()))
    texts += conv_t
    nodes += conv_n
    if draw(st.booleans()):
        texts.append("GAP")
        nodes.append(Layer("GAP"))
    texts += fc_t + ["FC"]
    nodes += fc_n + [Layer("FC")]
    arrow = draw(st.sampled_from(_ARROWS))
    text = arrow.join(texts)
    bindings = {s: draw(st.integers(0, 2)) for s in sorted(set(symbols))}
    if bindings:
        text += "; " + ", ".join(f"{k}={v}" for k, v in bindings.items())
    if draw(st.booleans()):
        text = f"$${text}$$"
    return text, Net(tuple(nodes), tuple(sorted(bindings.items()))), bindings


def _downsamples(net: Net, values: dict[str, int]) -> int:
    def walk(nodes) -> int:
        total = 0
        for n in nodes:
            if isinstance(n, Repeat):
                total += walk(n.body) * (values[n.count] if isinstance(n.count, str) else n.count)
            elif n.kind in ("POOL", "AVGPOOL", "L2POOL"):
                total += 1
        return total

    return walk(net.body)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_lines())
def test_generated_lines_parse_build_and_format_back(case):
    text, expected, values = case
    tree = parse(text)
    assert tree == expected
    assert parse(format(tree)) == tree
    pools = _downsamples(tree, values)
    assume(pools <= 6)  # each pool at least halves: 2**pools pixels fit them all
    side = 2**pools
    model = build(tree, input_size=(3, side, side), num_classes=10, device="meta")
    out = model(torch.empty(2, 3, side, side, device="meta"))  # torch checks every shape
    assert out.shape[0] == 2 and out.shape[-1] == 10
    assert parse(model.notation_line) == tree


_ALPHABET = st.sampled_from(
    list("[]()*?,=;-x>.0123456789 \\$⇒CONVPLFRUINTBDGASMK2") + ["->", "CONV", "POOL", "FC"]
)


def _only_notation_errors(text: str) -> None:
    try:
        build(text, device="meta")
    except NotationError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=40) | st.lists(_ALPHABET, max_size=30).map("".join))
def test_garbage_raises_only_notation_errors(text):
    _only_notation_errors(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_lines(), st.randoms(use_true_random=False), st.integers(1, 3))
def test_mutated_lines_raise_only_notation_errors(case, rnd: random.Random, edits: int):
    text = list(case[0])
    for _ in range(edits):
        i = rnd.randrange(len(text) + 1)
        op = rnd.choice(["delete", "insert", "replace"])
        ch = rnd.choice("[]()*?,=;-x>.0123456789 NMKF")
        if op == "delete" and i < len(text):
            del text[i]
        elif op == "insert":
            text.insert(i, ch)
        elif i < len(text):
            text[i] = ch
    _only_notation_errors("".join(text))


def test_huge_counts_and_sizes_are_refused_quickly():
    for line in ["INPUT -> [[CONV]*0]*2147483647 -> FC", "INPUT -> [RELU]*100000 -> FC"]:
        try:
            model = build(line, device="meta")
            assert len(model) < 20_000
        except NotationError as e:
            assert "layers" in str(e)
    with pytest.raises(NotationError, match="values"):
        build("INPUT[2147483647x2147483647x3] -> FC", device="meta")
    with pytest.raises(NotationError, match="parameters"):
        build("INPUT[256x256x3] -> FC-100000 -> FC")
    assert math.isfinite(
        sum(p.numel() for p in build("INPUT -> FC-100000 -> FC", device="meta").parameters())
    )
