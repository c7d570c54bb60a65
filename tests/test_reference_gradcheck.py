"""Every reference layer passes a centred-difference gradient check in float64."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from convnet.reference import Sequential, gradcheck, losses
from convnet.reference import graph_ops as G
from convnet.reference import layers as L

TOL = 1e-6


def f64(layer):
    for k, v in layer.params.items():
        layer.params[k] = v.astype(np.float64)
    for k, v in layer.buffers.items():
        layer.buffers[k] = v.astype(np.float64)
    return layer


def rng_layer(seed=0):
    return np.random.default_rng(seed)


class FixedMaskDropout(L.Dropout):
    """Dropout whose mask is the same on every call, so the function being checked is fixed."""

    def forward(self, x):
        self.rng = np.random.default_rng(0)
        return super().forward(x)


def _bias(layer, rng):
    # non-zero biases so their gradients are checked against something non-trivial
    for k in list(layer.params):
        if k == "bias":
            layer.params[k] = rng.standard_normal(layer.params[k].shape)
    return layer


R = np.random.default_rng(42)
X4 = (2, 3, 6, 5)
CASES = {
    "conv": (
        lambda: L.Conv2d(
            3, 4, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), rng=R, dtype=np.float64
        ),
        [X4],
    ),
    "conv_groups": (
        lambda: L.Conv2d(4, 6, 3, padding=1, groups=2, rng=R, dtype=np.float64),
        [(2, 4, 5, 5)],
    ),
    "conv_1x1": (lambda: L.Conv2d(3, 5, 1, rng=R, dtype=np.float64), [X4]),
    "conv_naive": (lambda: L.Conv2d(3, 2, 3, stride=2, fast=False, rng=R, dtype=np.float64), [X4]),
    "table_conv": (
        lambda: L.TableConv2d(
            3, [0, 0, 1, 2, 2], [0, 1, 2, 0, 2], (3, 2), 1, 1, rng=R, dtype=np.float64
        ),
        [X4],
    ),
    "linear": (lambda: L.Linear(7, 4, rng=R, dtype=np.float64), [(3, 7)]),
    "locally_connected": (
        lambda: L.LocallyConnected2d(3, 2, (6, 5), (3, 2), 1, (1, 0), rng=R, dtype=np.float64),
        [X4],
    ),
    "batchnorm_train": (lambda: f64(L.BatchNorm(3)), [X4]),
    "batchnorm_1d": (lambda: f64(L.BatchNorm(5)), [(6, 5)]),
    "relu": (L.ReLU, [X4]),
    "leaky_relu": (lambda: L.LeakyReLU(0.1), [X4]),
    "sigmoid": (L.Sigmoid, [X4]),
    "tanh": (L.Tanh, [X4]),
    "softmax": (L.Softmax, [(3, 7)]),
    "maxpool": (lambda: L.MaxPool2d(3, 2, 1), [X4]),
    "maxpool_ceil_dilated": (lambda: L.MaxPool2d(2, 2, 0, 2, True), [(2, 2, 7, 7)]),
    "avgpool": (lambda: L.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), [X4]),
    "l2pool": (lambda: L.L2Pool2d(2, 2), [X4]),
    "adaptive_avg": (lambda: L.AdaptiveAvgPool2d((4, 3)), [X4]),
    "adaptive_max": (lambda: L.AdaptiveMaxPool2d((2, 2)), [X4]),
    "lrn": (lambda: L.LRN(3, 0.5, 0.75, 1.0), [(2, 6, 3, 3)]),
    "dropout": (lambda: FixedMaskDropout(0.4), [X4]),
    "flatten": (L.Flatten, [X4]),
    "add": (G.Add, [X4, (1, 3, 1, 1)]),
    "sub": (G.Sub, [X4, X4]),
    "mul": (G.Mul, [X4, (1, 3, 1, 5)]),
    "concat": (lambda: G.Concat(1), [X4, (2, 1, 6, 5), (2, 2, 6, 5)]),
    "pad": (lambda: G.Pad((1, 0, 0, 2, 2, 1)), [X4]),
    "slice": (
        lambda: G.Slice((slice(None), slice(None), slice(None, None, 2), slice(1, None, 2))),
        [X4],
    ),
    "mean": (lambda: G.Mean((2, 3), keepdims=True), [X4]),
    "global_avg": (G.GlobalAvgPool, [X4]),
    "functional_conv": (lambda: G.FunctionalConv2d(1, 1), [X4, (4, 3, 3, 3), (4,)]),
    "functional_linear": (G.FunctionalLinear, [(3, 7), (4, 7), (4,)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_gradients(name):
    make, shapes = CASES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    layer = _bias(make(), rng)
    inputs = [rng.standard_normal(s) for s in shapes]
    errors = gradcheck.check_layer(layer, *inputs)
    assert errors, "nothing was checked"
    assert max(errors.values()) < TOL, errors


def test_batchnorm_eval_gradients():
    layer = f64(L.BatchNorm(3))
    layer.buffers["running_var"] += 0.5
    layer.training = False
    x = np.random.default_rng(0).standard_normal(X4)
    assert max(gradcheck.check_layer(layer, x).values()) < TOL


@pytest.mark.parametrize("loss", [losses.softmax_cross_entropy, losses.svm_hinge])
def test_loss_gradients(loss):
    rng = np.random.default_rng(1)
    s, y = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    _, d = loss(s, y)
    num = gradcheck.numerical_gradient(lambda: loss(s, y)[0], s)
    assert gradcheck.rel_error(d, num) < TOL


def test_whole_sequential_net_gradients():
    rng = np.random.default_rng(3)
    net = Sequential(
        L.Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64),
        L.ReLU(),
        L.MaxPool2d(2),
        L.Flatten(),
        L.Linear(3 * 3 * 3, 4, rng=rng, dtype=np.float64),
    )
    x, y = rng.standard_normal((3, 2, 6, 6)), np.array([0, 3, 1])

    def f():
        return losses.softmax_cross_entropy(net.forward(x), y)[0]

    _, d = losses.softmax_cross_entropy(net.forward(x), y)
    dx = net.backward(d)
    grads = net.grads
    assert gradcheck.rel_error(dx, gradcheck.numerical_gradient(f, x)) < TOL
    for name, p in net.params.items():
        assert gradcheck.rel_error(grads[name], gradcheck.numerical_gradient(f, p)) < TOL, name
