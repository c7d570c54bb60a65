"""Layers against independent computations: torch's own conv and explicit loops."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.errors import ShapeError
from convnet.layers import LocallyConnected2d


def _loop_reference(x, weight, bias, kernel, stride, padding, out_size):
    """out[n,o,i,j] = b[o,i,j] + sum_{c,u,v} w[i*ow+j, o, (c,u,v)] * xpad[n,c,i*s+u,j*s+v]."""
    kh, kw = kernel
    xp = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    n, c = x.shape[:2]
    oh, ow = out_size
    out = torch.zeros(n, weight.shape[1], oh, ow, dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride[0] : i * stride[0] + kh, j * stride[1] : j * stride[1] + kw]
            w = weight[i * ow + j].reshape(weight.shape[1], c, kh, kw)
            out[:, :, i, j] = torch.einsum("ncuv,ocuv->no", patch, w)
            if bias is not None:
                out[:, :, i, j] += bias[:, i, j]
    return out


@settings(max_examples=25, deadline=None)
@given(
    cin=st.integers(1, 3),
    cout=st.integers(1, 4),
    kh=st.integers(1, 3),
    kw=st.integers(1, 4),
    sh=st.integers(1, 2),
    sw=st.integers(1, 3),
    ph=st.integers(0, 1),
    pw=st.integers(0, 2),
    extra_h=st.integers(0, 3),
    extra_w=st.integers(0, 3),
    bias=st.booleans(),
)
def test_locally_connected_matches_loop(cin, cout, kh, kw, sh, sw, ph, pw, extra_h, extra_w, bias):
    # input sizes chosen so that (H - k + 2p) is a multiple of the stride (the filters fit)
    h = kh - 2 * ph + sh * extra_h
    w = kw - 2 * pw + sw * extra_w
    if h < 1 or w < 1:
        return
    layer = LocallyConnected2d(
        cin, cout, (h, w), (kh, kw), stride=(sh, sw), padding=(ph, pw), bias=bias
    ).double()
    assert layer.out_size == ((h - kh + 2 * ph) // sh + 1, (w - kw + 2 * pw) // sw + 1)
    x = torch.randn(2, cin, h, w, dtype=torch.float64)
    expected = _loop_reference(
        x, layer.weight, layer.bias, (kh, kw), (sh, sw), (ph, pw), layer.out_size
    )
    torch.testing.assert_close(layer(x), expected)


def test_locally_connected_with_shared_weights_equals_conv2d():
    conv = torch.nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(1, 0)).double()
    layer = LocallyConnected2d(3, 5, (9, 7), (3, 2), stride=(2, 1), padding=(1, 0)).double()
    positions = layer.out_size[0] * layer.out_size[1]
    with torch.no_grad():
        layer.weight.copy_(conv.weight.reshape(1, 5, -1).expand(positions, -1, -1))
        layer.bias.copy_(conv.bias[:, None, None].expand(-1, *layer.out_size))
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    torch.testing.assert_close(layer(x), conv(x))


def test_locally_connected_parameter_count_and_gradients():
    layer = LocallyConnected2d(2, 4, 6, 3, stride=1, padding=1).double()
    # out 6x6 positions, each with 4 filters of 2*3*3 weights, plus one bias per output neuron
    assert sum(p.numel() for p in layer.parameters()) == 36 * 4 * 18 + 4 * 36
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,))


def test_locally_connected_errors():
    with pytest.raises(ShapeError, match="stride"):
        LocallyConnected2d(1, 1, 6, 3, stride=2)
    layer = LocallyConnected2d(1, 1, 6, 3)
    with pytest.raises(ShapeError, match="expects input"):
        layer(torch.zeros(1, 1, 7, 7))


def test_locally_connected_on_meta_device():
    with torch.device("meta"):
        layer = LocallyConnected2d(3, 8, (32, 32), 5, padding=2)
        y = layer(torch.empty(2, 3, 32, 32))
    assert y.shape == (2, 8, 32, 32) and y.device.type == "meta"


def test_connection_table_conv_equals_masked_dense_conv():
    from convnet.layers import LENET5_C3_TABLE, ConnectionTableConv2d

    layer = ConnectionTableConv2d(6, LENET5_C3_TABLE, kernel_size=5).double()
    # the paper's count for C3: 60 connected 5x5 filters + 16 biases
    assert sum(p.numel() for p in layer.parameters()) == 1_516
    mask = torch.zeros(16, 6, 1, 1, dtype=torch.float64)
    for o, ins in enumerate(LENET5_C3_TABLE):
        for i in ins:
            mask[o, i] = 1
    assert int(mask.sum()) == 60
    dense = layer.dense_weight()
    assert ((dense != 0).double() <= mask).all()  # no weight outside the table
    x = torch.randn(2, 6, 14, 14, dtype=torch.float64)
    torch.testing.assert_close(layer(x), F.conv2d(x, dense * mask, layer.bias))
    # output map 0 reads S2 maps 0, 1, 2 only: changing map 5 leaves it unchanged
    x2 = x.clone()
    x2[:, 5] += 1.0
    torch.testing.assert_close(layer(x2)[:, 0], layer(x)[:, 0])


def test_subsampling_is_coefficient_times_window_sum_plus_bias():
    from convnet.layers import Subsampling2d

    layer = Subsampling2d(3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, -1.0, 2.0]))
        layer.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    x = torch.randn(1, 3, 4, 6)
    y = layer(x)
    for c in range(3):
        for i in range(2):
            for j in range(3):
                s = x[0, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].sum()
                torch.testing.assert_close(y[0, c, i, j], layer.weight[c] * s + layer.bias[c])


def test_lrn_matches_the_papers_formula():
    from convnet.layers import local_response_norm

    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64) * 30
    y = local_response_norm(n, alpha, beta, k)(x)
    N = x.shape[1]
    for d in range(N):
        lo, hi = max(0, d - n // 2), min(N - 1, d + n // 2)
        denom = (k + alpha * (x[0, lo : hi + 1] ** 2).sum(0)) ** beta
        torch.testing.assert_close(y[0, d], x[0, d] / denom)


def test_squeeze_excite_formula():
    from convnet.layers import SqueezeExcite

    se = SqueezeExcite(32, reduction=16).double()
    assert sum(p.numel() for p in se.parameters()) == 2 * 32 * 32 // 16 + 32 // 16 + 32
    x = torch.randn(2, 32, 5, 4, dtype=torch.float64)
    z = x.mean(dim=(2, 3))  # (N, C)
    w1, b1 = se.fc1.weight[:, :, 0, 0], se.fc1.bias
    w2, b2 = se.fc2.weight[:, :, 0, 0], se.fc2.bias
    s = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(se(x), x * s[:, :, None, None])


def test_highway_formula_and_carry_at_negative_gate_bias():
    from convnet.layers import Highway

    layer = Highway(6, gate_bias=-2.0).double()
    assert torch.all(layer.gate.bias == -2.0)
    x = torch.randn(3, 6, dtype=torch.float64)
    t = torch.sigmoid(x @ layer.gate.weight.T + layer.gate.bias)
    h = torch.relu(x @ layer.transform.weight.T + layer.transform.bias)
    torch.testing.assert_close(layer(x), h * t + x * (1 - t))
    conv = Highway(4, kind="conv")
    assert conv(torch.randn(1, 4, 5, 5)).shape == (1, 4, 5, 5)
    far = Highway(6, gate_bias=-30.0).double()  # gate shut: the layer carries its input
    torch.testing.assert_close(far(x), x)


def test_fire_shapes_and_parameter_formula():
    from convnet.layers import Fire

    fire = Fire(96, 16, 64, 64)
    assert (
        sum(p.numel() for p in fire.parameters()) == 96 * 16 + 16 + 16 * 64 + 64 + 9 * 16 * 64 + 64
    )
    assert fire(torch.randn(1, 96, 7, 7)).shape == (1, 128, 7, 7)


def test_drop_path_row_mode_and_linear_survival():
    from convnet.layers import DropPath, linear_survival

    assert linear_survival(4, 0.5) == [0.875, 0.75, 0.625, 0.5]
    torch.manual_seed(0)
    dp = DropPath(0.5, mode="row").train()
    y = dp(torch.ones(64, 2))
    assert set(y[:, 0].tolist()) == {0.0, 2.0} and torch.equal(y[:, 0], y[:, 1])
    assert torch.equal(dp.eval()(torch.ones(3, 2)), torch.ones(3, 2))


def test_connection_table_macs_are_the_connections():
    import convnet
    from convnet.layers import LENET5_C3_TABLE, ConnectionTableConv2d

    layer = torch.nn.Sequential(ConnectionTableConv2d(6, LENET5_C3_TABLE, kernel_size=5))
    s = convnet.summary(layer, input_size=(6, 14, 14), training_memory=False)
    # LeNet-5's C3: 60 connected 5x5 filters at 10x10 positions
    assert s.totals["macs"] == 60 * 25 * 10 * 10
