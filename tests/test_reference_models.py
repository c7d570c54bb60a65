"""from_torch: whole zoo models in NumPy give torch's logits and every parameter gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as TF

from convnet.errors import ConversionError
from convnet.models import create_model
from convnet.reference import from_torch
from convnet.reference.functional import conv_algorithm

TOL = {torch.float32: 1e-4, torch.float64: 1e-8}


def rel(a, b) -> float:
    """max |a - b| relative to max |b| (in the arrays' own dtype: VGG's FC weight is 100M values)."""
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-12))


def compare(make, shape, dtype=torch.float64, train=True, seed=0):
    """Logits, input gradient and every parameter gradient of the reference net vs torch.

    In float32 a ReLU input within rounding of 0 can land on either side of the kink in the two
    engines and move one gradient entry by a whole value; the seeds here avoid such ties, and
    the float64 runs (1e-8) are the strict check.
    """
    torch.manual_seed(seed)
    model = (
        (make() if callable(make) and not isinstance(make, nn.Module) else make)
        .to(dtype)
        .train(train)
    )
    x = torch.randn(*shape, dtype=dtype)
    net = from_torch(model, x)
    out = net.forward(x.numpy().copy())
    xt = x.clone().requires_grad_(True)
    ref = model(xt)
    dout = np.random.default_rng(seed).standard_normal(tuple(ref.shape)).astype(out.dtype)
    ref.backward(torch.from_numpy(dout.copy()))
    dx = net.backward(dout)
    tol = TOL[dtype]
    assert out.dtype == (np.float32 if dtype == torch.float32 else np.float64)
    assert rel(out, ref.detach().numpy()) < tol, "logits"
    assert rel(dx, xt.grad.numpy()) < tol, "input gradient"
    grads = net.grads
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(grads) == sorted(names)
    for name, p in model.named_parameters():
        assert rel(grads[name], p.grad.numpy()) < tol, name
    for name, b in model.named_buffers():  # BN running statistics moved exactly as torch's did
        if b.is_floating_point():
            assert rel(net.buffers[name], b.numpy()) < tol, name
    return net


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lenet5(dtype):
    compare(lambda: create_model("lenet5"), (4, 1, 32, 32), dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_lenet5_1998_connection_table_and_trainable_subsampling(dtype):
    net = compare(lambda: create_model("lenet5_1998"), (3, 1, 32, 32), dtype)
    assert any(type(op).__name__ == "TableConv2d" for op in net.layers.values())


def narrow_head(make, hidden: int = 256):
    """The zoo model with its FC-4096 layers narrowed to ``hidden`` units: the same layers and
    the same wiring, without differentiating ~10^8 FC weights in both engines (seconds that test
    nothing a narrower Linear does not)."""

    def build():
        model = make()
        linears = [i for i, m in enumerate(model.classifier) if isinstance(m, nn.Linear)]
        for i in linears[:-1]:
            model.classifier[i] = nn.Linear(model.classifier[i].in_features, hidden)
        last = model.classifier[linears[-1]]
        model.classifier[linears[-1]] = nn.Linear(hidden, last.out_features)
        for i in linears[1:-1]:
            model.classifier[i] = nn.Linear(hidden, hidden)
        return model

    return build


def test_alexnet_small_input_adaptive_pool_upsamples():
    # at 64x64 the features are 1x1; AdaptiveAvgPool2d((6, 6)) repeats them (dropout off: eval)
    make = narrow_head(lambda: create_model("alexnet", num_classes=10))
    compare(make, (2, 3, 64, 64), torch.float32, train=False)


def test_vgg11_at_32():
    make = narrow_head(lambda: create_model("vgg11", num_classes=10))
    compare(make, (2, 3, 32, 32), torch.float32, train=False, seed=1)  # seed 0 ties on one core


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_resnet20_option_a_shortcuts_in_training_mode(dtype):
    # zero-padding shortcuts (slicing + F.pad), a ReLU module reused, batch norm on batch stats.
    # float64 runs the default algorithms (Winograd on the 16- to 64-channel 3x3 convs). float32
    # uses im2col: Winograd's float32 rounding (about 1e-5 against 5e-7) puts a ReLU input near
    # zero on the other side of the kink from torch in about half of the seeds, moving one
    # gradient entry by a whole value; the logits are checked under Winograd below.
    # Seed 0 ties in float32 when numpy's BLAS runs on one core (taskset) instead of two; seed 1
    # passes on one and on two cores, with torch on one or two threads.
    algorithm = "im2col" if dtype == torch.float32 else "auto"
    with conv_algorithm(algorithm):
        net = compare(lambda: create_model("resnet20"), (4, 3, 32, 32), dtype, train=True, seed=1)
    assert any(type(op).__name__ == "Pad" for op in net.layers.values())


def test_resnet20_float32_logits_under_winograd():
    torch.manual_seed(0)
    model = create_model("resnet20").train()
    x = torch.randn(4, 3, 32, 32)
    net = from_torch(model, x)
    out = net.forward(x.numpy().copy())
    modes = [
        mode
        for op in net.layers.values()
        if type(op).__name__ == "Conv2d"
        for mode, _ in op.cache.cols
    ]
    assert modes.count("winograd") == 16  # every 3x3 conv but the 3-channel first one
    with torch.no_grad():
        ref = model(x)
    assert rel(out, ref.numpy()) < 1e-4


def test_googlenet_inception_block():
    from convnet.layers.inception import Inception

    def block():
        return Inception(32, 16, 12, 16, 4, 8, 8)  # a 3a-shaped block, channels scaled down

    net = compare(block, (2, 32, 9, 9), torch.float64, train=True)
    assert any(type(op).__name__ == "Concat" for op in net.layers.values())
    compare(block, (2, 32, 9, 9), torch.float32, train=False)


def test_densenet_block_and_transition():
    from convnet.models.densenet import _DenseBlock, _Transition

    def model():
        return nn.Sequential(_DenseBlock(3, 8, 2, 4, 0.0, False), _Transition(8 + 3 * 4, 10))

    compare(model, (2, 8, 8, 8), torch.float64, train=True)


def test_convnet_layers_lrn_locally_connected_l2pool():
    from convnet.layers.l2pool import L2Pool2d
    from convnet.layers.locally_connected import LocallyConnected2d

    model = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1),
        nn.LocalResponseNorm(5, alpha=1e-2, k=2.0),
        nn.ReLU(),
        L2Pool2d(2),
        LocallyConnected2d(6, 4, (5, 5), 3),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(36, 3),
    )
    compare(model, (3, 2, 10, 10), torch.float64)


class _Functional(nn.Module):
    """Parameters used through F.* calls, shapes read at run time, a module applied twice."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3, 3, 3))
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Parameter(torch.randn(5, 4))
        self.scale = nn.Parameter(torch.randn(4))

    def forward(self, x):
        x = TF.relu(TF.conv2d(x, self.w, None, 1, 1))
        x = self.conv(self.conv(x)) * self.scale[:, None, None] - x / 2
        x = x.view(x.size(0), x.size(1), -1).mean(2)
        return TF.linear(torch.sigmoid(x), self.fc)


def test_functional_calls_shared_module_and_runtime_shapes():
    net = compare(_Functional, (3, 3, 6, 6), torch.float64)
    out = net.forward(np.random.default_rng(0).standard_normal((5, 3, 6, 6)))
    assert out.shape == (5, 5)  # x.size(0) is read at run time, not frozen at the example's 3


def test_unsupported_operation_is_named():
    class Sine(nn.Module):
        def forward(self, x):
            return torch.sin(x)

    with pytest.raises(ConversionError, match="sin"):
        from_torch(Sine(), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ConversionError, match="GELU"):
        from_torch(nn.Sequential(nn.Conv2d(1, 1, 1), nn.GELU()), torch.zeros(1, 1, 2, 2))


def test_untraceable_module_raises_conversion_error():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ConversionError, match="torch.fx could not trace Branchy"):
        from_torch(Branchy(), torch.zeros(1, 1, 2, 2))


def test_conversion_leaves_batchnorm_statistics_alone():
    model = create_model("resnet20").train()
    before = model.bn1.running_mean.clone()
    from_torch(model, torch.randn(2, 3, 32, 32))
    assert torch.equal(model.bn1.running_mean, before)


def test_a_net_ending_in_softmax_converts_and_trains_on_its_scores():
    from convnet.notation import build
    from convnet.reference import train_numpy

    line = "INPUT[12x12x1] -> CONV(F=3,K=4) -> RELU -> POOL(F=2) -> FC(3)"
    compare(lambda: build(line + " -> SOFTMAX"), (4, 1, 12, 12), torch.float64)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 96)
    x = rng.standard_normal((96, 1, 12, 12)).astype(np.float32) * 0.3
    x[np.arange(96), 0, 4 * y, 4 * y] += 3.0  # a bright pixel whose place is the class
    runs = []
    for tail in ("", " -> SOFTMAX"):
        torch.manual_seed(0)
        model = build(line + tail)
        runs.append(
            train_numpy(
                model,
                x[:64],
                y[:64],
                x[64:],
                y[64:],
                epochs=2,
                batch_size=16,
                lr=0.05,
                progress=False,
            )
        )
        assert model(torch.from_numpy(x[:2])).shape == (2, 3)
    assert runs[0]["val_top1"] == runs[1]["val_top1"] and runs[0]["loss"] == runs[1]["loss"]


@pytest.mark.parametrize(
    "module, message",
    [
        (nn.Softmax(), "Softmax needs an explicit dim"),
        (nn.MaxPool2d(2, return_indices=True), "return_indices=True"),
        (nn.BatchNorm2d(1, momentum=None), "momentum=None"),
        (nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect'"),
        (nn.Conv2d(1, 1, 2, padding="same"), "pads unevenly"),
    ],
)
@pytest.mark.filterwarnings(  # torch's own warnings about these options, as the layers run
    "ignore:Implicit dimension choice for softmax:UserWarning",
    "ignore:Using padding='same' with even kernel:UserWarning",
)
def test_unsupported_layer_options_are_named(module, message):
    # each refusal names the layer's option and what to do instead
    with pytest.raises(ConversionError, match=message):
        from_torch(nn.Sequential(module), torch.zeros(1, 1, 4, 4))


def test_every_leaf_layer_converts():
    # the torch layers the engine implements whole, in one net, against torch (float64)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding="same", bias=False),  # a bias before BN gets a zero gradient
        nn.BatchNorm2d(4),
        nn.LeakyReLU(0.1),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.Sigmoid(),
        nn.AvgPool2d(2, 1, padding=1, count_include_pad=False),
        nn.AdaptiveMaxPool2d((3, None)),
        nn.AdaptiveAvgPool2d(2),
        nn.Identity(),
        nn.Dropout(0.0),
        nn.Flatten(),
        nn.Linear(16, 5),
        nn.Tanh(),
        nn.BatchNorm1d(5),
        nn.Softmax(dim=1),
    )
    compare(model, (3, 2, 7, 7), torch.float64)
