"""NASNet-A (Zoph et al. 2018) against the paper's counts, a parameter formula worked out from
the cell diagrams, timm's ``nasnetalarge`` state dict, and TensorFlow's SAME padding by hand.

The zoo-wide checks run in tests/test_models.py as for every model: exact counts, the summary
at the card's input with the paper's multiply-adds (564M for Mobile at 224, 23.8G for Large at
331, within 1%), and a forward + backward pass (Mobile at 64x64, CIFAR at 16x16, Large on the
meta device).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.errors import CellSpecError, ConvnetError
from convnet.layers import (
    NASNET_A_NORMAL,
    NASNET_A_REDUCTION,
    CellBlock,
    NASNetCell,
    NASNetCellSpec,
    SameConv2d,
    SamePool2d,
    same_padding,
)
from convnet.layers.nasnet_cells import OPS
from convnet.models import create_model, get_card
from convnet.models.nasnet import build_nasnet


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # one intra-op thread: the suite runs two processes on two cores, and an oversubscribed
    # OpenMP pool spins instead of computing (as in test_models.py)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- parameter counts: the paper's figures and a formula ----------------------------------------


def _sep(k: int, cin: int, f: int) -> int:
    """ReLU-separable-BN twice: depthwise k*k*cin + pointwise cin*f + BN 2f, then the same on f."""
    return k * k * cin + cin * f + 2 * f + k * k * f + f * f + 2 * f


def _proj(cin: int, f: int) -> int:
    """A 1x1 conv and BN (the factorized reduction's two halves add up to the same)."""
    return cin * f + 2 * f


def _cell(reduction: bool, f: int, c_pp: int | None, c_p: int) -> tuple[int, int]:
    """(parameters, output depth) of a NASNet-A cell with F = f, read off figure 4.

    c_pp None: the network's first cell, whose h_(i-1) is its raw input (depth c_p)."""
    c0 = c_p if c_pp is None else f
    n = _proj(c_p, f) + (0 if c_pp is None else _proj(c_pp, f))
    if reduction:  # on h_(i-1): sep 7x7, 7x7, 5x5; on h_i: sep 5x5; on block 0: sep 3x3
        return n + _sep(7, c0, f) * 2 + _sep(5, c0, f) + _sep(5, f, f) + _sep(3, f, f), 4 * f
    # on h_(i-1): sep 3x3, 5x5, 3x3; on h_i: sep 5x5, 3x3; a raw h_(i-1) of another depth
    # also needs 1x1 projections after its identity, its two pools and in the concatenation
    n += _sep(3, c0, f) * 2 + _sep(5, c0, f) + _sep(5, f, f) + _sep(3, f, f)
    return n + (4 * _proj(c0, f) if c0 != f else 0), 6 * f


def nasnet_a_params(n_cells: int, f: int, imagenet: bool, stem: int, classes: int, skip: bool):
    """TensorFlow-slim's build_nasnet_{cifar,mobile,large} as a sum: stem conv + BN, (two stem
    reduction cells,) three stacks of normal cells with reductions between, the classifier."""
    total, outs = 27 * stem + 2 * stem, [None, stem]  # outs: depths; None before the stem
    if imagenet:
        for scale in (4, 2):
            n, c = _cell(True, f // scale, outs[-2], outs[-1])
            total, outs = total + n, outs + [c]
    for i in range(3 * n_cells):
        before = outs[-2]
        if i and i % n_cells == 0:
            f *= 2
            n, c = _cell(True, f, outs[-2], outs[-1])
            total, outs = total + n, outs + [c]
        n, c = _cell(False, f, before if skip else outs[-2], outs[-1])
        total, outs = total + n, outs + [c]
    return total + outs[-1] * classes + classes


@pytest.fixture(scope="module")
def large():
    with torch.device("meta"):
        return create_model("nasnet_a_large")


@pytest.fixture(scope="module")
def mobile():
    with torch.device("meta"):
        return create_model("nasnet_a_mobile")


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_counts_match_the_paper_and_the_formula(mobile, large):
    with torch.device("meta"):
        cifar = _count(create_model("nasnet_a_cifar"))
    mobile, large = _count(mobile), _count(large)
    # Zoph et al. tables 1-3: 5.3M (4 @ 1056), 88.9M (6 @ 4032), 3.3M (6 @ 768)
    assert abs(mobile / 5.3e6 - 1) < 0.01 and abs(large / 88.9e6 - 1) < 0.01
    assert round(cifar / 1e6, 1) == 3.3  # 3.35M: TF-slim's CIFAR model, rounded as the paper does
    # Keras' NASNetMobile / NASNetLarge trainable parameters; the latter is timm's nasnetalarge
    assert (mobile, large) == (5_289_978, 88_753_150)
    assert mobile == nasnet_a_params(4, 44, True, 32, 1000, skip=False)
    assert large == nasnet_a_params(6, 168, True, 96, 1000, skip=True)
    assert cifar == nasnet_a_params(6, 32, False, 96, 10, skip=False)
    assert get_card("nasnet_a_cifar").params == cifar


# --- timm's nasnetalarge: keys, shapes and wiring -----------------------------------------------

# From timm's nasnet.py (channels = 4032 // 24 = 168; stem cells 42 and 84 filters).
TIMM_SHAPES = {
    "conv0.conv.weight": (96, 3, 3, 3),
    "conv0.bn.running_var": (96,),
    "cell_stem_0.conv_1x1.conv.weight": (42, 96, 1, 1),
    "cell_stem_0.comb_iter_0_right.separable_1.depthwise_conv2d.weight": (96, 1, 7, 7),
    "cell_stem_0.comb_iter_0_right.separable_1.pointwise_conv2d.weight": (42, 96, 1, 1),
    "cell_stem_0.comb_iter_0_right.bn_sep_2.weight": (42,),
    "cell_stem_1.conv_1x1.conv.weight": (84, 168, 1, 1),
    "cell_stem_1.path_2.conv.weight": (42, 96, 1, 1),
    "cell_stem_1.final_path_bn.running_mean": (84,),
    "cell_0.conv_1x1.conv.weight": (168, 336, 1, 1),
    "cell_0.path_1.conv.weight": (84, 168, 1, 1),
    "cell_1.conv_prev_1x1.conv.weight": (168, 336, 1, 1),
    "cell_1.conv_1x1.conv.weight": (168, 1008, 1, 1),
    "cell_1.comb_iter_1_left.separable_2.depthwise_conv2d.weight": (168, 1, 5, 5),
    "reduction_cell_0.conv_prev_1x1.conv.weight": (336, 1008, 1, 1),
    "reduction_cell_0.comb_iter_4_left.separable_1.pointwise_conv2d.weight": (336, 336, 1, 1),
    "cell_6.path_1.conv.weight": (168, 1008, 1, 1),
    "cell_6.conv_1x1.conv.weight": (336, 1344, 1, 1),
    "reduction_cell_1.conv_1x1.conv.weight": (672, 2016, 1, 1),
    "cell_12.path_2.conv.weight": (336, 2016, 1, 1),
    "cell_12.conv_1x1.conv.weight": (672, 2688, 1, 1),
    "cell_17.comb_iter_4_left.bn_sep_2.num_batches_tracked": (),
    "last_linear.weight": (1000, 4032),
    "last_linear.bias": (1000,),
}
# State-dict entries per module in timm (a conv weight 1, a BN 5, a separable branch 14):
# CellStem0 1x1 6 + 5 branches 70; CellStem1 and FirstCell 1x1 6 + two path convs 2 + BN 5 + 70;
# NormalCell and ReductionCell two 1x1s 12 + 70; conv0 6; last_linear 2. 1810 in all.
TIMM_ENTRIES = {"cell_stem_0": 76, "cell_stem_1": 83, "cell_0": 83, "cell_6": 83, "cell_12": 83}


def test_large_has_timms_keys_and_shapes(large):
    state = large.state_dict()
    assert {k: tuple(state[k].shape) for k in TIMM_SHAPES} == TIMM_SHAPES
    per_module: dict[str, int] = {}
    for key in state:
        per_module[key.split(".")[0]] = per_module.get(key.split(".")[0], 0) + 1
    cells = [f"cell_{i}" for i in range(18)] + ["reduction_cell_0", "reduction_cell_1"]
    expected = {"conv0": 6, "last_linear": 2} | {c: TIMM_ENTRIES.get(c, 82) for c in cells}
    expected |= {k: v for k, v in TIMM_ENTRIES.items() if k.startswith("cell_stem")}
    assert per_module == expected and len(state) == 1810


def test_large_wiring_is_timms(large, mobile):
    # timm's forward_features: cell(h_i, h_(i-1)); a normal cell after a reduction reads the
    # reduction's own h_(i-1) (cell_6 reads cell_4), TF-slim's skip_reduction_layer_input
    names = ["conv0"] + [name for name, _, _ in large.wiring]
    reads = {
        name: (names[p], names[pp] if pp is not None else None) for name, pp, p in large.wiring
    }
    assert reads["cell_stem_0"] == ("conv0", None)
    assert reads["cell_stem_1"] == ("cell_stem_0", "conv0")
    assert reads["cell_0"] == ("cell_stem_1", "cell_stem_0")
    assert reads["reduction_cell_0"] == ("cell_5", "cell_4")
    assert reads["cell_6"] == ("reduction_cell_0", "cell_4")
    assert reads["cell_7"] == ("cell_6", "reduction_cell_0")
    assert reads["cell_12"] == ("reduction_cell_1", "cell_10")
    assert reads["cell_17"] == ("cell_16", "cell_15")
    # Mobile has no skip: its cell_4 reads the last normal cell before the reduction
    names = ["conv0"] + [name for name, _, _ in mobile.wiring]
    cell_4 = next(w for w in mobile.wiring if w[0] == "cell_4")
    assert (names[cell_4[2]], names[cell_4[1]]) == ("reduction_cell_0", "cell_3")


# --- TensorFlow's SAME padding ------------------------------------------------------------------


def _tf_pads(w: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    total = max((math.ceil(w / s) - 1) * s + d * (k - 1) + 1 - w, 0)
    return total // 2, total - total // 2


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 40), k=st.integers(1, 7), s=st.integers(1, 3), d=st.integers(1, 2))
def test_same_padding_gives_ceil_w_over_s(w, k, s, d):
    before, after = same_padding(w, k, s, d)
    assert (w + before + after - d * (k - 1) - 1) // s + 1 == math.ceil(w / s)
    assert 0 <= after - before <= 1
    if before + after > 0:  # and no smaller padding would do
        assert (w + before + after - 1 - d * (k - 1) - 1) // s + 1 < math.ceil(w / s)


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    k=st.sampled_from([3, 5, 7]),
    s=st.integers(1, 2),
    kind=st.sampled_from(["max", "avg"]),
)
def test_same_pool_ignores_the_padding(h, w, k, s, kind):
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    (t, b), (l_, r) = _tf_pads(h, k, s), _tf_pads(w, k, s)
    if kind == "max":
        want = F.max_pool2d(F.pad(x, (l_, r, t, b), value=-math.inf), k, s)
    else:  # TF's average: sum of the real pixels / how many real pixels the window holds
        total = F.avg_pool2d(F.pad(x, (l_, r, t, b)), k, s)
        count = F.avg_pool2d(F.pad(torch.ones_like(x), (l_, r, t, b)), k, s)
        want = total / count
    got = SamePool2d(kind, k, s)(x)
    assert got.shape[-2:] == (math.ceil(h / s), math.ceil(w / s))
    torch.testing.assert_close(got, want)


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    k=st.sampled_from([1, 3, 5, 7]),
    s=st.integers(1, 2),
    d=st.integers(1, 2),
)
def test_same_conv_pads_as_tensorflow(h, w, k, s, d):
    torch.manual_seed(0)
    conv = SameConv2d(3, 4, k, s, dilation=d).double()
    x = torch.randn(2, 3, h, w, dtype=torch.float64)
    (t, b), (l_, r) = _tf_pads(h, k, s, d), _tf_pads(w, k, s, d)
    want = F.conv2d(F.pad(x, (l_, r, t, b)), conv.weight, None, s, 0, d)
    torch.testing.assert_close(conv(x), want)
    if s == 1:  # and torch's own 'same' agrees for stride 1
        torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, None, 1, "same", d))


# --- specs and the builder ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("blocks", "concat", "says"),
    [
        ([(0, 2, "identity", "identity")], None, "block 0: input 2"),
        ([(0, 1, "identity", "conv_9x9")], None, "unknown operation 'conv_9x9'"),
        ([(0, 1, "identity", "identity", "mul")], None, "unknown combination 'mul'"),
        ([(0, 1, "identity")], None, "not a CellBlock"),
        ([], None, "at least one block"),
        ([(0, 1, "identity", "identity")], (2, 2), "distinct hidden states in 0..2"),
        ([(0, 1, "identity", "identity")], (3,), "distinct hidden states in 0..2"),
    ],
)
def test_invalid_specs_say_what_is_wrong(blocks, concat, says):
    with pytest.raises(CellSpecError, match=says):
        NASNetCellSpec(blocks, concat)


def test_spec_outputs_and_round_trip():
    spec = NASNetCellSpec([(0, 1, "conv_3x3", "identity"), (2, 1, "max_pool_3x3", "identity")])
    assert spec.outputs() == (3,)  # block 0's state (2) is used by block 1
    assert NASNetCellSpec(**spec.as_lists()) == spec
    assert NASNetCellSpec(**NASNET_A_NORMAL.as_lists()) == NASNET_A_NORMAL
    assert spec.blocks[0] == CellBlock((0, 1), ("conv_3x3", "identity"), "add")
    assert NASNET_A_NORMAL.outputs() == (0, 2, 3, 4, 5, 6)
    assert NASNET_A_REDUCTION.outputs() == (3, 4, 5, 6)


def test_cell_parameters_by_formula():
    # one block conv3x3(h_i) + h_i: 1x1 on h_i (7 -> 4) and on h_(i-1) (5 -> 4), a 3x3 conv 4 -> 4,
    # each with a BN (2 x 4); the output is block 0's state alone
    spec = NASNetCellSpec([(1, 1, "conv_3x3", "identity")])
    cell = NASNetCell(spec, 5, 7, 4)
    assert sum(p.numel() for p in cell.parameters()) == (7 * 4 + 8) + (5 * 4 + 8) + (9 * 16 + 8)
    out = cell(torch.randn(2, 5, 6, 6), torch.randn(2, 7, 6, 6))
    assert out.shape == (2, 4, 6, 6) and cell.out_channels == 4


def test_every_operation_builds_trains_and_reduces():
    # all 13 operations, a concatenating block, and unused h_(i-1), h_i in the reduction output
    normal = NASNetCellSpec(
        [
            (0, 1, "identity", "conv_1x3_3x1"),
            (1, 2, "conv_1x7_7x1", "dil_conv_3x3"),
            (2, 3, "avg_pool_3x3", "max_pool_3x3", "concat"),
            (4, 0, "max_pool_5x5", "max_pool_7x7"),
            (5, 1, "conv_1x1", "conv_3x3"),
            (6, 3, "sep_conv_3x3", "sep_conv_5x5"),
            (7, 0, "sep_conv_7x7", "identity"),
        ]
    )
    reduction = NASNetCellSpec([(0, 1, "conv_3x3", "max_pool_3x3")], concat=(0, 1, 2))
    assert {op for b in normal.blocks for op in b.ops} == set(OPS)
    torch.manual_seed(0)
    model = build_nasnet(normal, reduction, num_cells=1, channels=4, stem_channels=6, num_classes=3)
    x = torch.randn(2, 3, 8, 8)
    assert model.forward_features(x).shape == (2, 4 * 4, 2, 2)  # 8 -> 4 -> 2; 1 state of 4F
    F.cross_entropy(model(x), torch.tensor([0, 2])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert hasattr(model.reduction_cell_0, "reduce_state_0")  # h_(i-1) halved to join the output


def test_drop_path_schedule_and_plain_network_in_eval():
    torch.manual_seed(0)
    kw = dict(num_cells=1, channels=8, stem_channels=12, num_classes=4)
    model = build_nasnet(NASNET_A_NORMAL, NASNET_A_REDUCTION, drop_path=0.4, **kw)
    cells = [getattr(model, name) for name, _, _ in model.wiring]
    assert [c.drop_path.p_drop for c in cells] == pytest.approx([0.4 * k / 5 for k in range(1, 6)])
    plain = build_nasnet(NASNET_A_NORMAL, NASNET_A_REDUCTION, **kw)
    plain.load_state_dict(model.state_dict())
    x = torch.randn(4, 3, 8, 8)
    model.eval(), plain.eval()
    torch.testing.assert_close(model(x), plain(x))
    model.train()
    assert not torch.allclose(model(x), model(x))  # examples' paths dropped at random


def test_builder_refuses_bad_options():
    with pytest.raises(ConvnetError, match="stem='vgg'"):
        build_nasnet(NASNET_A_NORMAL, NASNET_A_REDUCTION, stem="vgg")
    with pytest.raises(ConvnetError, match="channels=4: give a whole number of at least 8"):
        create_model("nasnet_a_mobile", channels=4)
    with pytest.raises(ConvnetError, match=r"drop_path=1\.0"):
        create_model("nasnet_a_cifar", drop_path=1.0)
