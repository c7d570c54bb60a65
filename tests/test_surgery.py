"""FC -> CONV surgery and dense evaluation, each checked against an independent computation:

- the original network on the same input (at the training size);
- the original network on every crop of a larger image, one crop at a time (a loop), for trunks
  without padding, where the notes' "identical result" holds exactly;
- for padded trunks (the zoo's AlexNet and VGG), the original's own pool + classifier applied
  to every window of its trunk's feature map: what the converted head must compute;
- the notes' shape arithmetic: 384 / 2^5 = 12, (12 - 7) / 1 + 1 = 6 (a 6x6x1000 map).
"""

from __future__ import annotations

import contextlib
import copy
import functools

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convnet
from convnet.errors import ConversionError, ShapeError
from convnet.surgery import dense_predict, fc_to_conv
from convnet.surgery.dense import converted_for
from convnet.surgery.graph import propagate
from convnet.viz import save_heatmap


@contextlib.contextmanager
def _unpadded(model: nn.Module):
    """The same network with every convolution unpadded, so crops see exactly what the dense pass sees."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    saved = [m.padding for m in convs]
    for m in convs:
        m.padding = (0, 0)
    try:
        yield model
    finally:
        for m, p in zip(convs, saved):
            m.padding = p


def _crop_scores(
    model: nn.Module, image: torch.Tensor, window: tuple[int, int], stride: int
) -> torch.Tensor:
    """(K, h, w): the original model on each crop, one crop per forward."""
    hin, win = window
    _, h, w = image.shape
    rows = []
    with torch.no_grad():
        for i in range(0, h - hin + 1, stride):
            rows.append(
                [
                    model(image[None, :, i : i + hin, j : j + win])[0]
                    for j in range(0, w - win + 1, stride)
                ]
            )
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def alexnet():
    torch.manual_seed(0)
    return convnet.create_model("alexnet", num_classes=10).eval()


@pytest.fixture(scope="module")
def vgg11():
    torch.manual_seed(1)
    return convnet.create_model("vgg11", num_classes=10).eval()


@pytest.fixture
def lenet():
    torch.manual_seed(2)
    return convnet.create_model("lenet5").double().eval()


# --- the notes' numbers, by shape arithmetic on the meta device --------------------------


@pytest.mark.parametrize(
    "name, step, trunk",
    [
        ("vgg16", "classifier.0 Linear(25088->4096) -> Conv2d(512->4096, F=7)", 12),
        ("alexnet", "classifier.1 Linear(9216->4096) -> Conv2d(256->4096, F=6)", 11),
    ],
)
def test_384_image_gives_6x6_score_map(name, step, trunk):
    with torch.device("meta"):
        model = convnet.create_model(name)
        feats = model.features(torch.empty(1, 3, 384, 384))
    assert feats.shape[-2:] == (trunk, trunk)  # VGG: 384 / 2 / 2 / 2 / 2 / 2 = 12
    converted = fc_to_conv(model, 224)
    steps = [str(s) for s in converted.conversion.steps]
    assert step in steps
    assert any(s.endswith("Conv2d(4096->4096, F=1)") for s in steps)
    assert any(s.endswith("Conv2d(4096->1000, F=1)") for s in steps)
    assert converted.conversion.stride == (32, 32)
    f = 7 if name == "vgg16" else 6
    n = (trunk - f) // 1 + 1  # the notes: (12 - 7)/1 + 1 = 6
    assert n == 6
    assert propagate(converted, (3, 384, 384), batch=1) == (1, 1000, n, n)
    assert converted.conversion.map_size(384, 384) == (n, n)


# --- at the training size: the same scores --------------------------------------------


@pytest.mark.parametrize("size", [224, 127])  # 127: the 3x3 trunk is averaged up to 6x6 (folded)
def test_alexnet_same_scores_at_training_size(alexnet, size):
    x = torch.randn(2, 3, size, size)
    converted = fc_to_conv(alexnet, size).eval()
    with torch.no_grad():
        want, got = alexnet(x), converted(x)
    assert got.shape == (2, 10, 1, 1)
    assert _rel(got.flatten(1), want) < 1e-5


def test_vgg11_same_scores_at_training_size(vgg11):
    x = torch.randn(2, 3, 32, 32)  # trunk 1x1, averaged up to 7x7 by the adaptive pool
    converted = fc_to_conv(vgg11, 32).eval()
    with torch.no_grad():
        assert _rel(converted(x).flatten(1), vgg11(x)) < 1e-5


def test_original_is_untouched(lenet):
    before = {k: v.clone() for k, v in lenet.state_dict().items()}
    types = [type(m) for m in lenet.modules()]
    fc_to_conv(lenet, 32)
    assert [type(m) for m in lenet.modules()] == types
    assert all(torch.equal(before[k], v) for k, v in lenet.state_dict().items())


# --- on a larger image: every crop at the network's stride ----------------------------


def test_lenet_dense_map_is_every_crop(lenet):
    image = torch.randn(1, 48, 52, dtype=torch.float64)
    converted = fc_to_conv(lenet, 32).eval()
    with torch.no_grad():
        got = converted(image[None])[0]
    want = _crop_scores(lenet, image, (32, 32), 4)
    assert got.shape == want.shape == (10, 5, 6)  # (48 - 32)/4 + 1, (52 - 32)/4 + 1
    assert _rel(got, want) < 1e-12


@pytest.mark.parametrize(
    "name, size, image", [("alexnet", 195, (227, 227)), ("vgg11", 150, (150, 182))]
)
def test_unpadded_zoo_dense_map_is_every_crop(request, name, size, image):
    x = torch.randn(3, *image)
    with _unpadded(request.getfixturevalue(name)) as model:
        converted = fc_to_conv(model, size).eval()
        with torch.no_grad():
            got = converted(x[None])[0]
        want = _crop_scores(model, x, (size, size), 32)
    n = tuple((s - size) // 32 + 1 for s in image)
    assert got.shape == want.shape == (10, *n)
    assert _rel(got, want) < 1e-5


@pytest.mark.parametrize("name, size, image, f", [("alexnet", 224, 256, 6), ("vgg11", 32, 64, 1)])
def test_padded_zoo_dense_map_is_classifier_on_every_window(request, name, size, image, f):
    model = request.getfixturevalue(name)
    x = torch.randn(1, 3, image, image)
    converted = fc_to_conv(model, size).eval()
    with torch.no_grad():
        got = converted(x)[0]
        feats = model.features(x)
        n = feats.shape[-1] - f + 1
        want = torch.stack(
            [
                torch.stack(
                    [
                        model.classifier(
                            torch.flatten(model.avgpool(feats[..., i : i + f, j : j + f]), 1)
                        )[0]
                        for j in range(n)
                    ],
                    -1,
                )
                for i in range(n)
            ],
            -2,
        )
    assert got.shape == (10, 2, 2) == want.shape
    assert _rel(got, want) < 1e-5


# --- notation-built and user models ---------------------------------------------------


def test_notation_net_converts_and_slides():
    from convnet.notation import build

    torch.manual_seed(3)
    line = "INPUT[24x24x3] -> [CONV(F=5,S=1,P=0,K=8) -> RELU -> POOL2]*2 -> FC-16 -> BN -> RELU -> DROPOUT -> FC-5 -> SOFTMAX"
    model = build(line).double().eval()
    bn = model[8]
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    converted = fc_to_conv(model)
    steps = [str(s) for s in converted.conversion.steps]
    assert "7 Linear(72->16) -> Conv2d(8->16, F=3)" in steps
    assert "8 BatchNorm1d(16) -> BatchNorm2d(16)" in steps
    image = torch.randn(3, 37, 41, dtype=torch.float64)
    with torch.no_grad():
        got = converted.eval()(image[None])[0]
    assert _rel(got, _crop_scores(model, image, (24, 24), 4)) < 1e-12


class _ViewHead(nn.Module):
    """A user model: the flatten is a view, the head has BatchNorm1d and log_softmax(dim=-1)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 6, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(6 * 5 * 5, 12)
        self.bn = nn.BatchNorm1d(12)
        self.fc2 = nn.Linear(12, 4)

    def forward(self, x):
        x = self.pool(F.relu(self.conv(x)))
        x = x.view(x.size(0), -1)
        x = F.dropout(F.relu(self.bn(self.fc1(x))), 0.3, self.training)
        return F.log_softmax(self.fc2(x), dim=-1)


def test_user_model_with_view_and_batchnorm():
    torch.manual_seed(4)
    model = _ViewHead().double()
    model.bn.running_mean.normal_()
    model.bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    converted = fc_to_conv(model, (2, 12, 12)).eval()
    assert converted.conversion.stride == (2, 2)
    image = torch.randn(2, 19, 16, dtype=torch.float64)
    with torch.no_grad():
        got = converted(image[None])[0]
    assert _rel(got, _crop_scores(model, image, (12, 12), 2)) < 1e-12


# --- shifted inputs: a finer stride ---------------------------------------------------


@functools.cache
def _shared_lenet() -> nn.Module:
    torch.manual_seed(5)
    return convnet.create_model("lenet5").double().eval()


@settings(max_examples=12, deadline=None)
@given(h=st.integers(32, 47), w=st.integers(32, 47), shifts=st.sampled_from([1, 2, 4]))
def test_shifted_passes_merge_into_crops_at_finer_stride(h, w, shifts):
    model = _shared_lenet()
    image = torch.randn(1, h, w, dtype=torch.float64)
    result = dense_predict(model, image, shifts=shifts)
    step = 4 // shifts
    crops = image.unfold(1, 32, step).unfold(
        2, 32, step
    )  # (1, h', w', 32, 32), independent of the surgery
    hh, ww = crops.shape[1:3]
    with torch.no_grad():
        want = model(crops.permute(1, 2, 0, 3, 4).reshape(-1, 1, 32, 32)).T.reshape(10, hh, ww)
    got = result.maps[0].finest
    assert got.shape == want.shape
    assert _rel(got, want) < 1e-12
    assert torch.equal(result.maps[0].scores, got[:, ::shifts, ::shifts])


@settings(max_examples=15, deadline=None)
@given(
    c=st.integers(1, 5),
    k=st.integers(1, 6),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    extra=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    n=st.integers(1, 2),
    last=st.booleans(),
)
def test_converted_conv_layer_computes_conv2d(c, k, kh, kw, extra, n, last):
    from convnet.surgery._fcconv import FCConv2d

    torch.manual_seed(7)
    layer = FCConv2d(c, k, (kh, kw), dtype=torch.float64)
    x = torch.randn(n, c, kh + extra[0], kw + extra[1], dtype=torch.float64)
    if last:  # channels-last input and weights take the (y, x, c) path
        x = x.contiguous(memory_format=torch.channels_last)
        layer = layer.to(memory_format=torch.channels_last)
    got = layer(x)
    want = F.conv2d(x, layer.weight, layer.bias)
    assert got.shape == want.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_probabilities_average_over_windows_and_scales(lenet):
    image = torch.randn(1, 40, 44, dtype=torch.float64)
    result = dense_predict(lenet, image, scales=(1.0, 1.25))
    means = []
    for s in (1.0, 1.25):
        x = (
            image
            if s == 1.0
            else F.interpolate(image[None], size=(50, 55), mode="bilinear", align_corners=False)[0]
        )
        means.append(_crop_scores(lenet, x, (32, 32), 4).softmax(0).flatten(1).mean(1))
    assert torch.allclose(result.probs, torch.stack(means).mean(0), rtol=0, atol=1e-12)
    assert [m.finest.shape[1:] for m in result.maps] == [(3, 4), (5, 6)]
    top = result.topk(3)
    assert [i for i, _ in top] == result.probs.argsort(descending=True)[:3].tolist()


def test_conversion_is_cached_until_weights_change(lenet):
    first = converted_for(lenet)
    assert converted_for(lenet) is first
    assert converted_for(first) is first  # an already converted model is used as it is
    with torch.no_grad():
        lenet.classifier[5].weight.mul_(2.0)
    second = converted_for(lenet)
    assert second is not first
    assert torch.equal(
        second.get_submodule("classifier.5").weight.flatten(1), lenet.classifier[5].weight
    )


def test_dense_predict_refuses_bad_arguments(lenet):
    with pytest.raises(ShapeError, match="divide the network's stride 4"):
        dense_predict(lenet, torch.randn(1, 40, 40, dtype=torch.float64), shifts=3)
    with pytest.raises(ShapeError, match="smaller than the network's 32x32 window"):
        dense_predict(lenet, torch.randn(1, 40, 40, dtype=torch.float64), scales=(0.5,))
    with pytest.raises(ShapeError, match="channels"):
        dense_predict(lenet, torch.randn(3, 40, 40, dtype=torch.float64))


# --- what cannot be converted: one line each ------------------------------------------


class _MeanHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


class _MixedHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.extra = nn.Parameter(torch.randn(1, 3))
        self.fc = nn.Linear(4 * 6 * 6 + 3, 5)

    def forward(self, x):
        flat = torch.flatten(self.conv(x), 1)
        return self.fc(torch.cat([flat, self.extra.expand(x.size(0), -1)], 1))


class _LastAxis(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        return self.fc(self.conv(x))


@pytest.mark.parametrize(
    "model, match",
    [
        (
            nn.Sequential(
                nn.Conv2d(3, 8, 3),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(8, 5),
            ),
            "pools globally",
        ),
        (_MeanHead(), "pools the 6x6 map globally"),
        (nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 5, 6)), "already convolutional"),
        (_MixedHead(), "mixes the flattened conv features"),
        (_LastAxis(), "last axis"),
        (
            nn.Sequential(
                nn.Conv2d(3, 8, 3), nn.AdaptiveMaxPool2d(3), nn.Flatten(), nn.Linear(72, 5)
            ),
            "identity only",
        ),
    ],
)
def test_unconvertible_heads_say_why_in_one_line(model, match):
    with pytest.raises(ConversionError, match=match) as info:
        fc_to_conv(model, (3, 8, 8))
    assert "\n" not in str(info.value)


def test_notation_global_average_pool_is_refused():
    from convnet.notation import build

    model = build("INPUT[24x24x3] -> [CONV3-8 -> RELU -> POOL2]*2 -> GAP -> FC-5")
    with pytest.raises(ConversionError, match="globally"):
        fc_to_conv(model)


# --- CLI and heatmap ------------------------------------------------------------------


def test_cli_surgery_prints_and_saves(cli, tmp_path):
    from convnet.io import load_tensors

    out = tmp_path / "lenet_conv.safetensors"
    code, stdout, stderr = cli("surgery", "lenet5", "--input", "32", "--out", out)
    assert code == 0, stderr
    assert "classifier.1 Linear(400->120) -> Conv2d(16->120, F=5)" in stdout
    assert "a 52x52 image gives a 6x6x10 score map" in stdout  # (52 - 32)/4 + 1 = 6
    state = load_tensors(out)
    assert state["classifier.1.weight"].shape == (120, 16, 5, 5)
    torch.manual_seed(6)
    fresh = fc_to_conv(convnet.create_model("lenet5"), 32)
    fresh.load_state_dict(state)  # a saved conversion loads into a fresh one


def test_cli_surgery_reads_a_training_checkpoint(cli, tmp_path):
    from convnet.io import load_tensors
    from convnet.train.checkpoint import save_checkpoint

    torch.manual_seed(8)
    trained = convnet.create_model("lenet5")
    spec = {"model": "lenet5", "num_classes": 10, "in_chans": 1, "input_size": [1, 32, 32]}
    save_checkpoint(tmp_path / "last.pt", {"spec": spec, "model": trained.state_dict()})
    out = tmp_path / "conv.safetensors"
    code, stdout, stderr = cli("surgery", tmp_path / "last.pt", "--out", out)
    assert code == 0, stderr
    assert stdout.startswith("lenet5 at 1x32x32")
    state = load_tensors(out)
    want = trained.classifier[1].weight.reshape(120, 16, 5, 5)
    assert torch.equal(state["classifier.1.weight"], want)  # the checkpoint's weights, reshaped


def test_cli_surgery_error_is_one_line(cli):
    code, _, stderr = cli(
        "surgery", "INPUT[24x24x3] -> [CONV3-8 -> RELU -> POOL2]*2 -> GAP -> FC-5"
    )
    assert code == 2
    assert stderr.count("\n") == 1 and "globally" in stderr


def test_save_heatmap_writes_a_png(lenet, tmp_path):
    from PIL import Image

    image = torch.randn(1, 48, 60, dtype=torch.float64)
    result = dense_predict(lenet, image, shifts=2)
    path = tmp_path / "heat.png"
    cls = save_heatmap(result, image, path)
    assert cls == int(result.probs.argmax())
    with Image.open(path) as im:
        assert im.format == "PNG" and min(im.size) > 100
        assert np.asarray(im.convert("L")).std() > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heat.png"]  # no temp file left
    with pytest.raises(ShapeError, match="class_index"):
        save_heatmap(result, image, path, class_index=10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dense_predict_on_cuda(lenet):
    image = torch.randn(1, 40, 40, dtype=torch.float64)
    cpu = dense_predict(lenet, image, shifts=2)
    gpu = dense_predict(copy.deepcopy(lenet).cuda(), image.cuda(), shifts=2)
    assert torch.allclose(cpu.merged, gpu.merged.cpu(), atol=1e-10)


@pytest.mark.parametrize(
    "head, output", [(nn.Softmax(dim=1), "probs"), (nn.LogSoftmax(dim=1), "log_probs")]
)
def test_a_network_ending_in_softmax_is_not_softmaxed_twice(lenet, head, output):
    # the crop-by-crop softmax of the plain network is the reference for both endings
    model = nn.Sequential(lenet, head).eval()
    model.default_input_size = lenet.default_input_size
    image = torch.randn(1, 40, 44, dtype=torch.float64)
    result = dense_predict(model, image)
    assert result.maps[0].output == output
    want = _crop_scores(lenet, image, (32, 32), 4).softmax(0).flatten(1).mean(1)
    assert torch.allclose(result.probs, want, rtol=0, atol=1e-12)
    assert torch.allclose(result.probs.sum(), torch.tensor(1.0, dtype=torch.float64))
