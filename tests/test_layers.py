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
