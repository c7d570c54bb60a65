"""The reference engine's forward/backward pairs against torch (float64) and the notes' numbers."""

from __future__ import annotations

import doctest
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.errors import ShapeError
from convnet.reference import functional as F
from convnet.reference import im2col as I

SETTINGS = settings(max_examples=25, deadline=None)


def rel(a, b) -> float:
    """max |a - b| relative to the largest finite |b| (robust to entries near zero).

    Equal entries count as no error, so both sides giving -inf (a dilated max-pool window that
    lies wholly in the padding) agree, while -inf against a number does not.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.where(a == b, 0.0, np.abs(a - b))
    finite = np.abs(b[np.isfinite(b)])
    return float(np.max(diff, initial=0.0) / max(np.max(finite, initial=0.0), 1e-12))


def torch_grads(fn, *arrays, dout=None, seed=0):
    """Run ``fn`` on float64 tensors; return (out, dout, [grad of each array])."""
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    if dout is None:
        dout = np.random.default_rng(seed).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), dout, [t.grad.numpy() for t in ts]


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg = draw(st.integers(1, 3))
    kg = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))  # non-square kernels
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - 2 * ph), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - 2 * pw), 9))
    n = draw(st.integers(1, 2))
    bias = draw(st.booleans())
    return n, cg * groups, h, w, kg * groups, (kh, kw), (sh, sw), (ph, pw), (dh, dw), groups, bias


# the three convolutions, each a forward -> (out, cache) / backward(dout, cache) pair with the
# same arguments: the formula as loops, the notes' im2col + GEMM, and the fast path the layers run
CONVS = {
    "naive": (F.conv2d_forward_naive, F.conv2d_backward_naive),
    "im2col": (F.conv2d_forward_im2col, F.conv2d_backward_im2col),
    "fast": (F.conv2d_forward, F.conv2d_backward),
}


def check_conv_against_torch(impl, x, wt, b, stride, padding, dilation, groups, seed=0):
    """Run one implementation forward and backward; compare every result with torch's (float64)."""
    arrays = (x, wt) if b is None else (x, wt, b)

    def tfn(*ts):
        bias = ts[2] if b is not None else None
        return TF.conv2d(ts[0], ts[1], bias, stride, padding, dilation, groups)

    ref, dout, grads = torch_grads(tfn, *arrays, seed=seed)
    fwd, bwd = CONVS[impl]
    out, cache = fwd(x, wt, b, stride, padding, dilation, groups)
    assert out.shape == ref.shape
    assert rel(out, ref) < 1e-10
    dx, dw, db = bwd(dout, cache)
    assert dx.shape == x.shape and dw.shape == wt.shape
    assert rel(dx, grads[0]) < 1e-10
    assert rel(dw, grads[1]) < 1e-10
    if b is not None:
        assert rel(db, grads[2]) < 1e-10
    else:
        assert db is None
    return cache


@pytest.mark.parametrize("impl", list(CONVS))
@SETTINGS
@given(conv_cases(), st.integers(0, 2**16))
def test_conv_matches_torch(impl, case, seed):
    # sizes, padding, stride, dilation, groups and non-square kernels (kh != kw), with and
    # without bias; small enough for the naive loops
    n, c, h, w, k, kernel, stride, padding, dilation, groups, bias = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((k, c // groups, *kernel))
    b = rng.standard_normal(k) if bias else None
    check_conv_against_torch(impl, x, wt, b, stride, padding, dilation, groups, seed)


@pytest.mark.parametrize("impl", list(CONVS))
@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, groups",
    [
        # a non-square kernel on a non-square image: cs231n's widely copied im2col checks the
        # width against the kernel *height*, which only such a case catches
        ((2, 3, 7, 9), (4, 3, 2, 5), (1, 2), (1, 0), 1),
        ((1, 2, 11, 4), (3, 2, 5, 1), (2, 1), (2, 0), 1),
        ((2, 4, 6, 6), (6, 2, 3, 3), 1, 1, 2),  # groups
        ((1, 4, 5, 5), (4, 1, 3, 3), 2, 1, 4),  # depthwise
    ],
)
def test_conv_examples_match_torch(impl, x_shape, w_shape, stride, padding, groups):
    rng = np.random.default_rng(11)
    x, wt, b = (
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
        rng.standard_normal(w_shape[0]),
    )
    check_conv_against_torch(impl, x, wt, b, stride, padding, 1, groups)


def _channels_last(a):
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@pytest.mark.parametrize(
    "mode, x_shape, w_shape, stride, padding, nhwc",
    [
        ("chw_t", (2, 3, 9, 9), (3, 3, 3, 3), 1, 1, False),  # dx by the flipped-filter conv
        ("chw_t", (2, 3, 9, 9), (5, 3, 3, 3), 1, 1, False),  # K > C: dx by col2im_t
        ("hwc", (2, 8, 4, 4), (4, 8, 3, 3), 1, 0, False),  # flipped
        ("hwc", (2, 8, 5, 5), (4, 8, 3, 3), 2, 1, True),  # stride 2: col2im, channels-last x
        ("chw", (2, 2, 5, 5), (2, 2, 5, 5), 1, 0, False),  # flipped
        ("chw", (2, 2, 6, 5), (4, 2, 5, 5), 1, 0, False),  # K > C: col2im_t
        ("winograd", (2, 16, 6, 7), (16, 16, 3, 3), 1, 1, False),  # flipped (Winograd again)
        ("winograd", (1, 16, 5, 5), (16, 16, 3, 3), 1, 3, True),  # padding 3: col2im
        ("1x1-chw", (2, 5, 3, 4), (6, 5, 1, 1), 1, 0, False),
        ("1x1-hwc", (2, 5, 3, 4), (6, 5, 1, 1), 1, 0, True),
    ],
)
def test_fast_conv_every_mode_matches_torch(mode, x_shape, w_shape, stride, padding, nhwc):
    # each of the fast path's six modes, and both of its input-gradient routes, against torch
    rng = np.random.default_rng(12)
    x, wt, b = (
        rng.standard_normal(x_shape),
        rng.standard_normal(w_shape),
        rng.standard_normal(w_shape[0]),
    )
    if nhwc:
        x = _channels_last(x)
    cache = check_conv_against_torch("fast", x, wt, b, stride, padding, 1, 1)
    assert [m for m, _ in cache.cols] == [mode]


@SETTINGS
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 5),
    k=st.integers(1, 5),
    h=st.integers(1, 11),
    w=st.integers(1, 11),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    groups=st.sampled_from([1, 2]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_winograd_conv_matches_torch(n, c, k, h, w, padding, groups, bias, seed):
    # F(4x4, 3x3) on any size (partial tiles at the edges), padding and group count
    if h + 2 * padding[0] < 3 or w + 2 * padding[1] < 3:
        return
    c, k = c * groups, k * groups
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((k, c // groups, 3, 3))
    b = rng.standard_normal(k) if bias else None
    arrays = (x, wt, b) if bias else (x, wt)
    ref, dout, grads = torch_grads(
        lambda *ts: TF.conv2d(ts[0], ts[1], ts[2] if bias else None, 1, padding, 1, groups),
        *arrays,
        seed=seed,
    )
    with F.conv_algorithm("winograd"):
        out, cache = F.conv2d_forward(x, wt, b, 1, padding, 1, groups)
        assert {mode for mode, _ in cache.cols} == {"winograd"}
        dx, dw, db = F.conv2d_backward(dout, cache)
    assert rel(out, ref) < 1e-10
    assert rel(dx, grads[0]) < 1e-10
    assert rel(dw, grads[1]) < 1e-10
    if bias:
        assert rel(db, grads[2]) < 1e-10


def test_conv_algorithm_auto_uses_winograd_on_deep_inputs_only():
    rng = np.random.default_rng(3)
    w16 = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    x16 = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    assert F.conv2d_forward(x16, w16, None, padding=1)[1].cols[0][0] == "winograd"
    x3 = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)
    w3 = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    assert F.conv2d_forward(x3, w3, None, padding=1)[1].cols[0][0] != "winograd"
    assert F.conv2d_forward(x16, w16, None, padding=1, stride=2)[1].cols[0][0] != "winograd"
    with F.conv_algorithm("im2col"):
        assert F.conv2d_forward(x16, w16, None, padding=1)[1].cols[0][0] != "winograd"
    with pytest.raises(ValueError, match="one of auto, im2col, winograd"):
        with F.conv_algorithm("fft"):
            pass


def test_winograd_float32_error_is_within_the_engines_tolerance():
    # the module's claim: about 1e-5 relative in float32 on deep layers, inside 1e-4
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 128, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((128, 128, 3, 3)) * np.sqrt(2 / 1152)).astype(np.float32)
    ref = TF.conv2d(
        torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64), padding=1
    )
    out, cache = F.conv2d_forward(x, w, None, padding=1)
    assert cache.cols[0][0] == "winograd" and out.dtype == np.float32
    err = rel(out, ref.numpy())
    assert 1e-7 < err < 1e-4  # larger than im2col's rounding, inside the promise


@pytest.mark.parametrize(
    "shape, kernel, padding, groups",
    [
        ((1, 2, 6, 6), (1, 1), (0, 1), 1),  # chw_t with one image: its transpose is contiguous
        ((1, 2, 6, 6), (3, 3), (1, 1), 2),  # the same per group
        ((2, 3, 9, 9), (5, 5), (2, 2), 1),  # a first layer: chw_t columns and col2im_t
        ((2, 16, 8, 8), (3, 3), (1, 1), 1),  # Winograd
    ],
)
@pytest.mark.parametrize("impl", ["im2col", "fast"])
def test_conv_results_survive_the_next_call(impl, shape, kernel, padding, groups):
    # the fast path's temporaries come from reusable scratch buffers: no result may be one of them
    fwd, bwd = CONVS[impl]
    rng = np.random.default_rng(5)
    c = shape[1]
    w = rng.standard_normal((c * 2, c // groups, *kernel))
    results = []
    for _ in range(2):
        x = rng.standard_normal(shape)
        out, cache = fwd(x, w, None, 1, padding, 1, groups)
        dx, dw, _ = bwd(rng.standard_normal(out.shape), cache)
        results.append([a.copy() for a in (out, dx, dw)])
        results[-1].append((out, dx, dw))
    for before, now in zip(results[0][:3], results[0][3]):
        assert np.array_equal(before, now)


def test_conv_backward_is_conv_with_flipped_filters():
    # the notes' claim, against torch's input gradient, with either convolution computing it
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((5, 3, 3, 2))
    _, dout, (dx, _) = torch_grads(lambda a, b: TF.conv2d(a, b, padding=1), x, w)
    assert rel(F.conv2d_input_grad_flipped(dout, w, padding=1), dx) < 1e-12
    flipped_fast = F.conv2d_input_grad_flipped(dout, w, 1, 1, forward=F.conv2d_forward)
    assert rel(flipped_fast, dx) < 1e-12
    with pytest.raises(ShapeError, match="exceeds dilation"):
        F.conv2d_input_grad_flipped(dout, w, padding=3)


def test_im2col_matches_notes_and_unfold():
    x = np.zeros((1, 3, 227, 227), dtype=np.float32)
    assert I.im2col(x, 11, stride=4).shape == (55 * 55, 363)  # the notes' [363 x 3025]
    assert I.im2col_extra_bytes((1, 3, 227, 227), 11, 4) == 363 * 3025 * 4
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 6, 7))
    cols = I.im2col(x, (2, 3), stride=(2, 1), padding=(1, 0))
    unfold = TF.unfold(
        torch.tensor(x), (2, 3), stride=(2, 1), padding=(1, 0)
    ).numpy()  # (N, CKK, L)
    assert np.array_equal(cols, unfold.transpose(0, 2, 1).reshape(-1, 18))
    hwc = I.im2col(x, (2, 3), stride=(2, 1), padding=(1, 0), layout="hwc").reshape(-1, 2, 3, 3)
    assert np.array_equal(hwc.transpose(0, 3, 1, 2).reshape(-1, 18), cols)


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 8, 7))
    args = ((3, 2), (2, 1), (1, 1), (2, 1))
    for layout in ("chw", "hwc"):
        cols = I.im2col(x, *args, layout=layout)
        y = rng.standard_normal(cols.shape)
        # <im2col(x), y> == <x, col2im(y)>
        assert np.isclose(np.sum(cols * y), np.sum(x * I.col2im(y, x.shape, *args, layout=layout)))
    cols_t = I.im2col_t(x, *args)
    assert np.array_equal(cols_t, I.im2col(x, *args).T)  # the notes' X_col
    y = rng.standard_normal(cols_t.shape)
    back = I.col2im_t(y, x.shape, *args)
    assert np.isclose(np.sum(cols_t * y), np.sum(x * back))
    # adding into a caller's dirty work buffer gives the same, and the result does not alias it
    work = np.full((3, 2, 10, 9), 7.0)
    assert np.array_equal(I.col2im_t(y, x.shape, *args, work=work), back)
    with pytest.raises(ValueError, match="work buffer must have shape"):
        I.col2im_t(y, x.shape, *args, work=np.zeros((3, 2, 8, 7)))


def test_naive_conv_warns_on_large_inputs():
    x = np.zeros((8, 3, 32, 32), dtype=np.float32)
    w = np.zeros((32, 3, 3, 3), dtype=np.float32)
    with warnings.catch_warnings():
        # the warning comes before the loops; raising it skips the slow work in this test
        warnings.simplefilter("error", F.SlowPathWarning)
        with pytest.raises(F.SlowPathWarning, match="262,144 Python iterations"):
            F.conv2d_forward_naive(x, w, None, padding=1)


def test_naive_conv_small_input_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.conv2d_forward_naive(np.zeros((1, 1, 5, 5)), np.zeros((1, 1, 3, 3)), None)


@pytest.mark.parametrize("impl", list(CONVS))
def test_shape_errors_name_the_problem(impl):
    fwd = CONVS[impl][0]
    with pytest.raises(ShapeError, match="channels"):
        fwd(np.zeros((1, 3, 8, 8)), np.zeros((4, 2, 3, 3)), None)
    with pytest.raises(ShapeError, match="does not fit"):
        fwd(np.zeros((1, 3, 4, 4)), np.zeros((4, 3, 7, 7)), None)
    with pytest.raises(ShapeError, match="bias must have shape"):
        fwd(np.zeros((1, 3, 4, 4)), np.zeros((4, 3, 3, 3)), np.zeros(3))


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    return (
        (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w),
        (kh, kw),
        (sh, sw),
        (ph, pw),
        draw(st.booleans()),
    )


@SETTINGS
@given(pool_cases(), st.integers(1, 2), st.booleans(), st.integers(0, 2**16))
def test_pools_match_torch(case, dil, include_pad, seed):
    shape, kernel, stride, padding, ceil = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    ref, dout, (g,) = torch_grads(
        lambda t: TF.avg_pool2d(t, kernel, stride, padding, ceil, include_pad), x, seed=seed
    )
    out, cache = F.avgpool2d_forward(x, kernel, stride, padding, ceil, include_pad)
    assert rel(out, ref) < 1e-12 and rel(F.avgpool2d_backward(dout, cache), g) < 1e-12
    span = [dil * (k - 1) + 1 for k in kernel]
    if all(s + 2 * p >= sp for s, p, sp in zip(shape[2:], padding, span)):

        def pool(t):
            return TF.max_pool2d(t, kernel, stride, padding, dil, ceil)

        with torch.no_grad():
            ref = pool(torch.tensor(x)).numpy()
        out, cache = F.maxpool2d_forward(x, kernel, stride, padding, dil, ceil)
        assert rel(out, ref) < 1e-12
        empty = np.isinf(ref)  # a dilated window wholly in the padding: no input to route to
        if not empty.any():
            _, dout, (g,) = torch_grads(pool, x, seed=seed)
            assert rel(F.maxpool2d_backward(dout, cache), g) < 1e-12
            return
        # torch's backward routes such a window's gradient through an index it never set, and
        # writes outside the input (heap corruption, an abort some runs later): never call it
        # here. We route none, whatever that window's gradient. The rest against torch on the
        # input padded with -inf by hand, where every window holds real elements (without
        # ceil_mode the windows are the same; with it, torch may keep one more there).
        dout = np.random.default_rng(seed).standard_normal(ref.shape)
        dout_rest = np.where(empty, 0.0, dout)
        ours = F.maxpool2d_backward(dout_rest, cache)
        assert np.array_equal(ours, F.maxpool2d_backward(dout, cache))
        ph, pw = padding
        if not ceil:
            _, _, (g,) = torch_grads(
                lambda t: TF.max_pool2d(
                    TF.pad(t, (pw, pw, ph, ph), value=-math.inf), kernel, stride, 0, dil
                ),
                x,
                dout=dout_rest,
            )
            assert rel(ours, g) < 1e-12


def test_maxpool_switches_route_gradient_to_the_max():
    x = np.array([[[[1.0, 3.0], [2.0, 0.0]]]])
    out, cache = F.maxpool2d_forward(x, 2)
    assert out.item() == 3.0
    assert np.array_equal(F.maxpool2d_backward(np.ones((1, 1, 1, 1)), cache), [[[[0, 1], [0, 0]]]])


@pytest.mark.parametrize(
    "hw,out", [((13, 11), (6, 6)), ((6, 6), (6, 6)), ((1, 1), (7, 7)), ((3, 5), (6, 4))]
)
def test_adaptive_pools_match_torch(hw, out):
    x = np.random.default_rng(3).standard_normal((2, 3, *hw))
    ref, dout, (g,) = torch_grads(lambda t: TF.adaptive_avg_pool2d(t, out), x)
    y, cache = F.adaptive_avgpool2d_forward(x, out)
    assert rel(y, ref) < 1e-12 and rel(F.adaptive_avgpool2d_backward(dout, cache), g) < 1e-12
    ref, dout, (g,) = torch_grads(lambda t: TF.adaptive_max_pool2d(t, out), x)
    y, cache = F.adaptive_maxpool2d_forward(x, out)
    assert rel(y, ref) < 1e-12 and rel(F.adaptive_maxpool2d_backward(dout, cache), g) < 1e-12


def test_l2pool_matches_convnet_layer():
    from convnet.layers.l2pool import L2Pool2d

    x = np.random.default_rng(4).standard_normal((2, 3, 7, 8))
    x[0, 0, :2, :2] = 0  # a window of zeros: gradient 0, not NaN
    layer = L2Pool2d(3, 2, 1)
    ref, dout, (g,) = torch_grads(lambda t: layer(t), x)
    out, cache = F.l2pool2d_forward(x, 3, 2, 1)
    assert rel(out, ref) < 1e-12 and rel(F.l2pool2d_backward(dout, cache), g) < 1e-12


@pytest.mark.parametrize("size", [1, 2, 5])
def test_lrn_matches_torch(size):
    x = np.random.default_rng(5).standard_normal((2, 7, 3, 4)) * 3
    mod = torch.nn.LocalResponseNorm(size, alpha=0.3, beta=0.75, k=2.0)
    ref, dout, (g,) = torch_grads(mod, x)
    out, cache = F.lrn_forward(x, size, 0.3, 0.75, 2.0)
    assert rel(out, ref) < 1e-12 and rel(F.lrn_backward(dout, cache), g) < 1e-12


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 4, 3, 5), (8, 5)])
def test_batchnorm_matches_torch(training, shape):
    rng = np.random.default_rng(6)
    x, gamma, beta = (
        rng.standard_normal(shape) * 2 + 1,
        rng.standard_normal(shape[1]),
        rng.standard_normal(shape[1]),
    )
    rm, rv = rng.standard_normal(shape[1]), rng.random(shape[1]) + 0.5
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    ref, dout, grads = torch_grads(
        lambda t, g, b: TF.batch_norm(t, trm, trv, g, b, training, 0.1, 1e-5), x, gamma, beta
    )
    out, cache = F.batchnorm_forward(x, gamma, beta, rm, rv, training, 0.1, 1e-5)
    dx, dg, db = F.batchnorm_backward(dout, cache)
    assert rel(out, ref) < 1e-12
    for a, b in zip((dx, dg, db), grads):
        assert rel(a, b) < 1e-10
    assert (
        rel(rm, trm.numpy()) < 1e-12 and rel(rv, trv.numpy()) < 1e-12
    )  # running stats moved alike


def test_linear_and_activations_match_torch():
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((4, 6)), rng.standard_normal((3, 6)), rng.standard_normal(3)
    ref, dout, grads = torch_grads(TF.linear, x, w, b)
    out, cache = F.linear_forward(x, w, b)
    assert rel(out, ref) < 1e-12
    assert all(rel(a, g) < 1e-12 for a, g in zip(F.linear_backward(dout, cache), grads))
    x = rng.standard_normal((3, 5)) * 4
    for fwd, bwd, tfn in (
        (F.relu_forward, F.relu_backward, torch.relu),
        (F.sigmoid_forward, F.sigmoid_backward, torch.sigmoid),
        (F.tanh_forward, F.tanh_backward, torch.tanh),
        (F.softmax_forward, F.softmax_backward, lambda t: torch.softmax(t, 1)),
        (
            lambda a: F.leaky_relu_forward(a, 0.2),
            F.leaky_relu_backward,
            lambda t: TF.leaky_relu(t, 0.2),
        ),
    ):
        ref, dout, (g,) = torch_grads(tfn, x)
        out, cache = fwd(x)
        assert rel(out, ref) < 1e-12 and rel(bwd(dout, cache), g) < 1e-12


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), ((1, 2), (0, 1))])
def test_locally_connected_matches_convnet_layer(stride, padding):
    from convnet.layers.locally_connected import LocallyConnected2d

    torch.manual_seed(0)
    layer = LocallyConnected2d(3, 4, (7, 8), (3, 2), stride=stride, padding=padding).double()
    x = np.random.default_rng(8).standard_normal((2, 3, 7, 8))
    ref, dout, (g,) = torch_grads(layer, x)
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    out, cache = F.locally_connected2d_forward(x, w, b, (3, 2), stride, padding)
    dx, dw, db = F.locally_connected2d_backward(dout, cache)
    assert rel(out, ref) < 1e-12 and rel(dx, g) < 1e-12
    assert rel(dw, layer.weight.grad.numpy()) < 1e-12 and rel(db, layer.bias.grad.numpy()) < 1e-12


def test_dropout_is_inverted():
    x = np.ones((200, 500))
    out, mask = F.dropout_forward(x, 0.3, True, np.random.default_rng(0))
    assert abs(out.mean() - 1.0) < 0.01  # expectation kept: no rescaling needed at test time
    assert abs((out == 0).mean() - 0.3) < 0.01
    assert np.array_equal(F.dropout_backward(np.ones_like(x), mask), mask)
    assert F.dropout_forward(x, 0.3, False)[0] is x


def test_losses_match_torch_and_formula():
    rng = np.random.default_rng(9)
    s, y = rng.standard_normal((5, 4)) * 3, rng.integers(0, 4, 5)
    loss, d = F.softmax_cross_entropy(s, y)
    t = torch.tensor(s, requires_grad=True)
    ref = TF.cross_entropy(t, torch.tensor(y))
    ref.backward()
    assert abs(loss - ref.item()) < 1e-12 and rel(d, t.grad.numpy()) < 1e-12
    loss, d = F.svm_hinge(s, y)
    t = torch.tensor(s, requires_grad=True)
    correct = t.gather(1, torch.tensor(y)[:, None])
    margins = torch.clamp(t - correct + 1, min=0)
    ref = (margins.sum() - margins.gather(1, torch.tensor(y)[:, None]).sum()) / 5
    ref.backward()
    assert abs(loss - ref.item()) < 1e-12 and rel(d, t.grad.numpy()) < 1e-12


def test_concat_add_flatten_round_trip():
    a, b = np.ones((2, 3, 4, 4)), np.zeros((2, 5, 4, 4))
    out, cache = F.concat_forward([a, b], 1)
    da, db = F.concat_backward(out, cache)
    assert out.shape == (2, 8, 4, 4) and np.array_equal(da, a) and np.array_equal(db, b)
    s, cache = F.add_forward(a, np.ones((1, 3, 1, 1)))
    ga, gb = F.add_backward(np.ones_like(s), cache)
    assert gb.shape == (1, 3, 1, 1) and np.all(gb == 32)
    f, cache = F.flatten_forward(a)
    assert f.shape == (2, 48) and F.flatten_backward(f, cache).shape == a.shape


@pytest.mark.parametrize(
    "module",
    [
        "convnet.reference.functional_conv",
        "convnet.reference.functional_conv_fast",
        "convnet.reference.functional_pool",
        "convnet.reference.im2col",
        "convnet.reference.winograd",
        "convnet.reference.losses",
        "convnet.reference.gradcheck",
    ],
)
def test_doctests(module):
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


def test_core_never_imports_torch():
    code = (
        "import sys\n"
        "import convnet.reference, convnet.reference.functional, convnet.reference.layers\n"
        "import convnet.reference.graph_ops, convnet.reference.net, convnet.reference.solver\n"
        "import convnet.reference.optim, convnet.reference.gradcheck, convnet.reference.im2col\n"
        "import convnet.reference.winograd, convnet.reference.functional_conv_fast\n"
        "import convnet.reference.nhwc, convnet.reference.functional_conv_naive\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_release_scratch_frees_the_buffers_and_the_next_call_still_works():
    import convnet.reference as R
    from convnet.reference import _scratch

    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((2, 16, 8, 8)), rng.standard_normal((16, 16, 3, 3))
    out, _ = F.conv2d_forward(x, w, None, padding=1)
    assert _scratch._POOL.buffers  # Winograd's tiles and products were kept for reuse
    R.release_scratch()
    assert not _scratch._POOL.buffers
    again, _ = F.conv2d_forward(x, w, None, padding=1)
    assert np.array_equal(again, out)
