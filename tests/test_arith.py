"""The notes' arithmetic (convnet.arith) against torch and against brute force."""

import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convnet import arith
from convnet.errors import ConvnetError

windows = st.tuples(
    st.integers(1, 40),  # W
    st.integers(1, 7),  # F
    st.integers(1, 5),  # S
    st.integers(0, 4),  # P
    st.integers(1, 3),  # dilation
)


@settings(max_examples=80, deadline=None)
@given(windows)
def test_output_size_is_torchs_conv2d(w):
    n, f, s, p, d = w
    got = arith.output_size(n, f, s, p, d)
    x = torch.zeros(1, 1, n, n + 1)
    weight = torch.zeros(1, 1, f, f)
    if got < 1:
        with pytest.raises(RuntimeError):
            F.conv2d(x, weight, stride=s, padding=p, dilation=d)
        return
    out = F.conv2d(x, weight, stride=s, padding=p, dilation=d)
    assert out.shape[2] == got
    assert out.shape[3] == arith.output_size(n + 1, f, s, p, d)
    exact = arith.output_size_exact(n, f, s, p, d)
    assert got == int(exact) and arith.fits(n, f, s, p, d) == (exact.denominator == 1)


@settings(max_examples=80, deadline=None)
@given(windows, st.booleans())
def test_output_size_is_torchs_max_pool(w, ceil_mode):
    n, f, s, p, d = w
    assume(2 * p <= f)  # torch's rule for pools: padding at most half the window
    got = arith.output_size(n, f, s, p, d, ceil_mode=ceil_mode)
    pool = nn.MaxPool2d(f, s, p, dilation=d, ceil_mode=ceil_mode)
    x = torch.zeros(1, 1, n, n)
    if got < 1:
        with pytest.raises(RuntimeError):
            pool(x)
        return
    assert pool(x).shape[-1] == got


def _stack(draw_layers):
    """An nn.Sequential of positive-weight convs and average pools, and their (F, S, P, d)."""
    layers, mods = [], []
    for kind, f, s, p, d in draw_layers:
        if kind == "conv":
            conv = nn.Conv2d(1, 1, f, s, p, dilation=d, bias=False).double()
            nn.init.constant_(conv.weight, 1.0)
            mods.append(conv)
        else:
            p = min(p, f // 2)
            mods.append(nn.AvgPool2d(f, s, p))
            d = 1
        layers.append((f, s, p, d))
    return nn.Sequential(*mods), layers


layer_st = st.tuples(
    st.sampled_from(["conv", "pool"]),
    st.integers(1, 5),
    st.integers(1, 3),
    st.integers(0, 2),
    st.integers(1, 2),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(layer_st, min_size=1, max_size=4))
def test_receptive_field_recurrence_matches_the_gradient(spec):
    """size, jump and start of the RF recurrence against d(one unit)/d(input), brute force."""
    net, layers = _stack(spec)
    rf = arith.RF()
    for f, s, p, d in layers:
        rf = rf.through(f, s, p, d)
    n = int(2 * rf.size + 3 * rf.jump + 16)  # room for a unit whose field lies inside the image
    x = torch.ones(1, 1, n, n, dtype=torch.float64, requires_grad=True)
    out = net(x)
    # the first unit whose whole field is inside the image (centre - (size-1)/2 >= 0)
    u = 0
    while rf.start + u * rf.jump - (rf.size - 1) / 2 < 0:
        u += 1
    assume(u < out.shape[-1] and rf.start + u * rf.jump + (rf.size - 1) / 2 <= n - 1)
    out[0, 0, u, u].backward()
    cols = (x.grad[0, 0].abs().sum(0) > 0).nonzero().flatten()
    first, last = int(cols[0]), int(cols[-1])
    assert last - first + 1 == rf.size
    assert (first + last) / 2 == rf.start + u * rf.jump
    if out.shape[-1] > u + 1:  # the next unit's field starts `jump` pixels later
        x.grad = None
        out = net(x)
        out[0, 0, u, u + 1].backward()
        cols = (x.grad[0, 0].abs().sum(0) > 0).nonzero().flatten()
        assert int(cols[0]) - first == rf.jump


def test_stacked_rf_is_the_notes_3_5_7():
    assert arith.stacked_rf(3, 3) == [3, 5, 7]


@settings(max_examples=60, deadline=None)
@given(windows)
def test_fixes_fit_and_the_inputs_are_the_nearest(w):
    n, f, s, p, d = w
    k = arith.effective_kernel(f, d)
    assume(n + 2 * p >= k and not arith.fits(n, f, s, p, d))
    fx = arith.fixes(n, f, s, p, d)
    assert all(arith.fits(n, f, s, q, d) for q in fx.paddings)
    assert fx.paddings == [q for q in range(k) if (n - k + 2 * q) % s == 0 and n - k + 2 * q >= 0]
    assert all(arith.fits(n, f, x, p, d) and x not in (1, s) for x in fx.strides)
    lo, hi = fx.inputs
    assert arith.fits(hi, f, s, p, d) and not any(arith.fits(m, f, s, p, d) for m in range(n, hi))
    if lo is not None:
        assert arith.fits(lo, f, s, p, d)
        assert not any(arith.fits(m, f, s, p, d) for m in range(lo + 1, n + 1))


def _misfits(net: nn.Module, n: int) -> list[int]:
    """Indices of the layers whose (W - F + 2P)/S is not whole on an n x n input, via torch."""
    bad: list[int] = []
    for i, m in enumerate(net):

        def hook(mod, args, i=i):
            size = args[0].shape[-1]
            f, s, p, d = (v if isinstance(v, int) else v[0] for v in _fspd(mod))
            if (size - d * (f - 1) - 1 + 2 * p) % s:
                bad.append(i)

        m.register_forward_pre_hook(hook)
    net(torch.zeros(1, 1, n, n, dtype=torch.float64))
    return bad


def _fspd(m):
    if isinstance(m, nn.Conv2d):
        return m.kernel_size, m.stride, m.padding, m.dilation
    return m.kernel_size, m.stride, m.padding, 1


@settings(max_examples=20, deadline=None)
@given(st.lists(layer_st, min_size=1, max_size=3), st.integers(16, 40))
def test_nearest_tiling_input_makes_every_layer_fit(spec, n):
    """The network input sizes from the fields' tiling rule, against running the layers."""
    net, layers = _stack(spec)
    fields, rf = [], arith.RF()
    for f, s, p, d in layers:
        rf = rf.through(f, s, p, d)
        fields.append(rf)
    try:
        assume(_misfits(net, n))
    except RuntimeError:  # a window larger than its input somewhere: nothing to fit
        assume(False)
    lo, hi = arith.nearest_tiling_inputs(n, fields)
    for m in [x for x in (lo, hi) if x is not None]:
        assert _misfits(net, m) == []
    if hi is not None:  # no size in between fits (or the layers do not run there)
        for m in range(n + 1, hi):
            try:
                assert _misfits(net, m)
            except RuntimeError:
                pass


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 8),
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(1, 4),
    st.booleans(),
)
def test_parameter_counts_are_torchs(f, d_in_per_group, k_per_group, groups, bias):
    d_in, k = d_in_per_group * groups, k_per_group * groups
    conv = nn.Conv2d(d_in, k, f, groups=groups, bias=bias, device="meta")
    weights, biases = arith.conv_params(f, f, d_in, k, groups, bias)
    assert conv.weight.numel() == weights and (conv.bias.numel() if bias else 0) == biases
    fc = nn.Linear(d_in * f, k, bias=bias, device="meta")
    weights, biases = arith.fc_params(d_in * f, k, bias)
    assert fc.weight.numel() == weights and (fc.bias.numel() if bias else 0) == biases


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(4, 12))
def test_macs_count_the_products_torch_sums(f, d_in_per_group, groups, n):
    """With all-ones inputs and weights and no padding, every output of a conv (or FC) layer is
    the number of products it summed, so the outputs add up to the layer's multiply-adds."""
    d_in, k = d_in_per_group * groups, 2 * groups
    x = torch.ones(1, d_in, n, n, dtype=torch.float64)
    w = torch.ones(k, d_in // groups, f, f, dtype=torch.float64)
    out = F.conv2d(x, w, groups=groups)
    oh, ow = out.shape[-2:]
    assert out.sum().item() == arith.conv_macs(oh, ow, k, f, f, d_in, groups)
    fc = F.linear(torch.ones(1, d_in * n), torch.ones(k, d_in * n))
    assert fc.sum().item() == arith.fc_macs(d_in * n, k)


def test_notes_numbers():
    """Seed 000: AlexNet conv1, and W=5, F=3, P=1 with S=1, 2 (fit) and S=3 (does not)."""
    assert arith.output_size_exact(227, 11, 4) == 55
    assert [arith.output_size_exact(5, 3, s, 1) for s in (1, 2)] == [5, 3]
    assert not arith.fits(5, 3, 3, 1)
    assert arith.conv_params(11, 11, 3, 96) == (34_848, 96)
    assert arith.conv_params_unshared(55, 55, 11, 11, 3, 96) == 105_705_600
    assert arith.im2col_shapes(11, 11, 3, 55, 55, 96)["X_col"] == (363, 3025)


# --- the one size parser of the CLI ----------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([1, 3, 4]), st.integers(8, 1024), st.integers(8, 1024))
def test_size_parser_reads_an_image_c_h_w_and_hints_the_notes_order(c, h, w):
    """A picture's size in torch's order is read as is; the same picture in the notes' order
    (W x H x D, e.g. 227x227x3) is refused with the order it should be in."""
    from convnet.cli._args import parse_size

    assert parse_size(f"{c}x{h}x{w}") == (c, h, w)
    assert parse_size(f" {c} * {h} , {w} ", volume=True) == (c, h, w)
    with pytest.raises(ConvnetError, match=f"takes C x H x W; did you mean {c}x{h}x{w}\\?"):
        parse_size(f"{w}x{h}x{c}")


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 64), st.integers(1, 4096))
def test_size_parser_hints_a_deep_volume_in_the_notes_order(side, depth):
    """A square volume of any depth written W x H x D (7x7x512) reads as torch's 512x7x7."""
    from convnet.cli._args import parse_size

    assert parse_size(f"{depth}x{side}x{side}") == (depth, side, side)
    if depth > side:
        with pytest.raises(ConvnetError, match=f"did you mean {depth}x{side}x{side}\\?"):
            parse_size(f"{side}x{side}x{depth}")


def test_size_parser_short_forms_and_errors():
    from convnet.cli._args import parse_size

    assert parse_size("224") == (224, 224)
    assert parse_size("224", channels=1) == (1, 224, 224)
    assert parse_size("384x256", channels=3) == (3, 384, 256)
    for bad in ("", "big", "0x3x3", "1x2x3x4", "-3x5x5"):
        with pytest.raises(ConvnetError, match="C x H x W"):
            parse_size(bad)
    with pytest.raises(ConvnetError, match="did you mean 3x227x227"):
        parse_size("227x227x3")
    with pytest.raises(ConvnetError, match="did you mean 3x227x227"):
        parse_size("227x3")
    with pytest.raises(ConvnetError, match="give the depth too"):
        parse_size("227x227", volume=True)
    # the notes' order at first sight, but the first number is the model's depth: C x H x W
    assert parse_size("8x16x3", channels=8) == (8, 16, 3)
    with pytest.raises(ConvnetError, match="did you mean 3x16x8"):
        parse_size("8x16x3", channels=3)


def test_image_size_is_h_x_w():
    from convnet.cli._args import parse_image_size

    assert parse_image_size(["224x160"]) == (224, 160)
    assert parse_image_size(["224", "160"]) == (224, 160)  # the older two-number form
    assert parse_image_size(["224"]) == (224, 224)
    with pytest.raises(ConvnetError, match="give H x W .e.g. 224x224.; the depth comes from"):
        parse_image_size(["3x224x224"])
    with pytest.raises(ConvnetError, match="give H x W .e.g. 160x224."):
        parse_image_size(["224x160x3"])  # the notes' W x H x D
    for bad in (["0"], ["big"], ["1", "2", "3", "4"]):
        with pytest.raises(ConvnetError, match="give H x W in pixels"):
            parse_image_size(bad)


def test_explain_imports_no_torch():
    code = (
        "import sys; from convnet.cli import main; "
        "rc = main(['explain', 'conv', '--input', '3x227x227', '--filter', '11', '--stride', '4', "
        "'--filters', '96']); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'explain imported torch'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "55x55x96 = 290,400 neurons" in done.stdout


def test_arith_is_a_leaf_of_the_standard_library():
    """The reference engine and the pattern language may use it only while it imports nothing."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(arith))
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {
        "." * n.level + (n.module or "").split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom)
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
