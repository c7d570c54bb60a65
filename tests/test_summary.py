"""The summary against the notes' own tables and independent arithmetic."""

import json

import pytest
import torch
import torch.nn as nn

import convnet
from convnet import arith
from convnet.errors import ShapeError

# Seed 001, "VGGNet in detail": (layer, [WxHxD], memory = activation values, weights).
VGG16_NOTES = [
    ("CONV3-64", (224, 224, 64), 224 * 224 * 64, (3 * 3 * 3) * 64),
    ("CONV3-64", (224, 224, 64), 224 * 224 * 64, (3 * 3 * 64) * 64),
    ("POOL2", (112, 112, 64), 112 * 112 * 64, 0),
    ("CONV3-128", (112, 112, 128), 112 * 112 * 128, 73_728),
    ("CONV3-128", (112, 112, 128), 112 * 112 * 128, 147_456),
    ("POOL2", (56, 56, 128), 56 * 56 * 128, 0),
    ("CONV3-256", (56, 56, 256), 56 * 56 * 256, 294_912),
    ("CONV3-256", (56, 56, 256), 56 * 56 * 256, 589_824),
    ("CONV3-256", (56, 56, 256), 56 * 56 * 256, 589_824),
    ("POOL2", (28, 28, 256), 28 * 28 * 256, 0),
    ("CONV3-512", (28, 28, 512), 28 * 28 * 512, 1_179_648),
    ("CONV3-512", (28, 28, 512), 28 * 28 * 512, 2_359_296),
    ("CONV3-512", (28, 28, 512), 28 * 28 * 512, 2_359_296),
    ("POOL2", (14, 14, 512), 14 * 14 * 512, 0),
    ("CONV3-512", (14, 14, 512), 14 * 14 * 512, 2_359_296),
    ("CONV3-512", (14, 14, 512), 14 * 14 * 512, 2_359_296),
    ("CONV3-512", (14, 14, 512), 14 * 14 * 512, 2_359_296),
    ("POOL2", (7, 7, 512), 7 * 7 * 512, 0),
    ("FC", (1, 1, 4096), 4096, 102_760_448),
    ("FC", (1, 1, 4096), 4096, 16_777_216),
    ("FC", (1, 1, 1000), 1000, 4_096_000),
]


@pytest.fixture(scope="module")
def vgg16():
    return convnet.summary("vgg16", training_memory=False)


def test_vgg16_table_row_by_row(vgg16):
    layers = [r for r in vgg16.rows if r.type in ("Conv2d", "MaxPool2d", "Linear")]
    assert len(layers) == len(VGG16_NOTES)
    for row, (name, (w, h, d), memory, weights) in zip(layers, VGG16_NOTES):
        assert row.volume == f"{w}x{h}x{d}", name
        assert row.activations == memory, name
        assert row.weights == weights, name
        if row.type != "MaxPool2d":
            assert row.biases == d, name


def test_vgg16_totals_and_the_notes_wrong_24m(vgg16):
    assert vgg16.totals["params"] == 138_357_544
    notes_rows = 224 * 224 * 3 + sum(m for _, _, m, _ in VGG16_NOTES)
    # torchvision's layout adds one tensor the notes' table lacks: the 7x7x512 adaptive pool.
    assert vgg16.totals["activations"] == notes_rows + 7 * 7 * 512
    assert notes_rows == 15_237_608  # not the "24M" the notes claim
    assert vgg16.totals["forward_bytes"] == 4 * vgg16.totals["activations"]
    assert vgg16.totals["forward_backward_bytes"] == 2 * vgg16.totals["forward_bytes"]
    assert (
        vgg16.totals["macs"]
        == sum(
            arith.conv_macs(h, w, d, 3, 3, d_in)
            for (_, (w, h, d), _, _), d_in in zip(
                [r for r in VGG16_NOTES if r[0].startswith("CONV")],
                [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512],
            )
        )
        + 102_760_448
        + 16_777_216
        + 4_096_000
    )
    assert vgg16.warnings == []


class NaiveInception(nn.Module):
    """Seed 004's naive module on 28x28x256: 1x1 128, 3x3 192, 5x5 96 and a 3x3 pool, concatenated."""

    def __init__(self, c=256):
        super().__init__()
        self.b1 = nn.Conv2d(c, 128, 1)
        self.b3 = nn.Conv2d(c, 192, 3, padding=1)
        self.b5 = nn.Conv2d(c, 96, 5, padding=2)
        self.pool = nn.MaxPool2d(3, 1, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)


class BottleneckInception(nn.Module):
    def __init__(self, c=256):
        super().__init__()
        self.b1 = nn.Conv2d(c, 128, 1)
        self.r3, self.b3 = nn.Conv2d(c, 64, 1), nn.Conv2d(64, 192, 3, padding=1)
        self.r5, self.b5 = nn.Conv2d(c, 64, 1), nn.Conv2d(64, 96, 5, padding=2)
        self.pool, self.proj = nn.MaxPool2d(3, 1, 1), nn.Conv2d(c, 64, 1)

    def forward(self, x):
        return torch.cat(
            [self.b1(x), self.b3(self.r3(x)), self.b5(self.r5(x)), self.proj(self.pool(x))], 1
        )


def test_inception_arithmetic_of_seed_004():
    hw = 28 * 28
    naive = convnet.summary(NaiveInception(), (256, 28, 28), training_memory=False)
    assert naive.rows[-1].type == "cat" and naive.rows[-1].output == (672, 28, 28)
    assert (
        naive.totals["macs"]
        == hw * 128 * 256 + hw * 192 * 9 * 256 + hw * 96 * 25 * 256
        == 854_196_224
    )
    bottle = convnet.summary(BottleneckInception(), (256, 28, 28), training_memory=False)
    assert bottle.rows[-1].output == (480, 28, 28)
    rows = [
        hw * 64 * 256,
        hw * 64 * 256,
        hw * 128 * 256,
        hw * 192 * 9 * 64,
        hw * 96 * 25 * 64,
        hw * 64 * 256,
    ]
    assert bottle.totals["macs"] == sum(rows) == 271_351_808  # the notes print 358M
    # the merged unit sees as far as its widest branch: 5x5
    assert bottle.rows[-1].rf["size"] == 5


def _row(s, path):
    return next(r for r in s.rows if r.path == path)


def test_receptive_fields():
    stack = nn.Sequential(*[nn.Conv2d(4, 4, 3, padding=1) for _ in range(3)])
    s = convnet.summary(stack, (4, 16, 16), training_memory=False)
    assert [r.rf["size"] for r in s.rows] == [3, 5, 7]
    assert _row(convnet.summary("alexnet", training_memory=False), "features.12").rf["size"] == 195
    assert _row(convnet.summary("vgg16", training_memory=False), "features.30").rf == {
        "size": 212,
        "jump": 32,
        "start": 15.5,
    }


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        y = self.shared(self.conv(x)) + x  # an add merge
        return self.shared(y)  # the same module used twice


def test_merges_and_shared_modules():
    s = convnet.summary(Residual(), (8, 10, 10), training_memory=False)
    types = [r.type for r in s.rows]
    assert types == ["Conv2d", "Conv2d", "add", "Conv2d"]
    assert s.totals["params"] == (8 * 8 * 9 + 8) + (8 * 8 + 8)
    assert (
        sum(r.params for r in s.rows) == s.totals["params"]
    )  # the second call is not counted again
    assert s.rows[-1].shared
    assert s.rows[2].rf["size"] == 3  # the add sees as far as its conv branch
    assert s.totals["macs"] == 100 * 8 * 72 + 2 * 100 * 8 * 8


def test_summary_touches_no_weights():
    model = convnet.create_model("lenet5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    model.features[0].register_forward_pre_hook(lambda m, a: seen.append(a[0].device.type))
    convnet.summary(model, (1, 32, 32), training_memory=False)
    assert seen == ["meta"]
    assert all(
        torch.equal(before[k], v) and v.device.type == "cpu" for k, v in model.state_dict().items()
    )


def test_stride_that_does_not_fit_warns_then_strict_errors():
    net = nn.Sequential(nn.Conv2d(3, 2, 3, stride=3, padding=1))  # seed 000: W=5, F=3, P=1, S=3
    s = convnet.summary(net, (3, 5, 5), training_memory=False)
    (w,) = s.warnings
    assert "0 (Conv2d)" in w and "(5 - 3 + 2*1)/3 + 1 = 2.333" in w and "padding P=2" in w
    with pytest.raises(ShapeError, match="does not fit"):
        convnet.summary(net, (3, 5, 5), strict=True, training_memory=False)
    with pytest.raises(ShapeError, match="larger than its padded input"):
        convnet.summary(nn.Conv2d(3, 2, 7), (3, 5, 5), training_memory=False)


def test_alexnet_first_layer_warns_at_224_not_227():
    warn = convnet.summary("alexnet", training_memory=False).warnings
    assert len(warn) == 1 and "(224 - 11 + 2*2)/4 + 1 = 55.25" in warn[0]


def test_formats(vgg16):
    d = json.loads(vgg16.render("json"))
    assert set(d) >= {"model", "input", "rows", "totals", "warnings"}
    assert set(d["rows"][0]) >= {
        "path",
        "type",
        "output",
        "activations",
        "weights",
        "biases",
        "params",
        "macs",
        "rf",
    }
    assert set(d["totals"]) >= {
        "params",
        "trainable_params",
        "activations",
        "macs",
        "forward_bytes",
        "training_bytes",
        "max_batch",
    }
    assert d["input"] == [3, 224, 224] and d["rows"][0]["rf"] == {"size": 3, "jump": 1, "start": 0}
    csv_lines = vgg16.render("csv").splitlines()
    assert len(csv_lines) == 1 + len(vgg16.rows)
    md = vgg16.render("markdown")
    assert "| features (Sequential) |" in md.replace("&nbsp;", "")
    assert "138,357,544" in vgg16.render("table")


def test_cli_summary_json_and_errors(cli):
    code, out, _ = cli("summary", "lenet5", "--format", "json")
    assert code == 0 and json.loads(out)["totals"]["params"] == 61_706
    code, _, err = cli("summary", "lenet5", "--input", "3x32x32")
    assert code == 2 and err.count("\n") == 1 and "depth 1" in err
    code, _, err = cli("summary", "nosuchnet")
    assert code == 2 and "unknown model" in err
    code, _, err = cli("summary", "lenet5", "--memory", "-1")
    assert (
        code == 2
        and err == "convnet summary: error: --memory must be a positive number of GB, got -1\n"
    )


def test_cli_explain_conv_reproduces_alexnet_conv1(cli):
    code, out, _ = cli(
        "explain",
        "conv",
        "--input",
        "3x227x227",
        "--filter",
        "11",
        "--stride",
        "4",
        "--pad",
        "0",
        "--filters",
        "96",
    )
    assert code == 0
    for text in (
        "(227 - 11 + 2*0)/4 + 1 = 216/4 + 1 = 55",
        "55x55x96 = 290,400",
        "34,848 weights + 96 biases",
        "= 105,705,600",
        "[363 x 3025]",
        "[96 x 363]",
        f"{55 * 55 * 96 * 363:,} MACs",
    ):
        assert text in out
    code, out, _ = cli(
        "explain",
        "conv",
        "--input",
        "3x5x5",
        "--filter",
        "3",
        "--stride",
        "3",
        "--pad",
        "1",
        "--filters",
        "1",
    )
    assert code == 0 and "2.333" in out and "invalid" in out
    code, out, _ = cli("explain", "stack", "--filter", "3", "--depth", "3")
    assert "sees 7x7" in out and "27C^2" in out and "49C^2" in out
    code, out, _ = cli("explain", "pool", "--input", "64x224x224")
    assert "112x112x64" in out and "75% discarded" in out
    code, _, err = cli("explain", "conv", "--input", "big", "--filter", "3", "--filters", "2")
    assert code == 2 and "C x H x W" in err


def test_explain_and_summary_take_c_h_w_and_hint_the_notes_order(cli):
    """--input is C x H x W in every command; the notes' W x H x D gets a one-line hint."""
    code, out, _ = cli("explain", "pool", "--input", "64x224x112")
    assert code == 0 and "input 112x224x64 (W x H x D)" in out and "56x112x64" in out
    for argv in (
        ("summary", "alexnet", "--input", "227x227x3"),
        ("explain", "conv", "--input", "227x227x3", "--filter", "11", "--filters", "96"),
        ("surgery", "alexnet", "--input", "227x227x3"),
        ("viz", "rf", "lenet5", "--layer", "features.0", "--input", "32x32x1"),
    ):
        code, out, err = cli(*argv)
        assert code == 2 and out == ""
        hint = "1x32x32" if argv[0] == "viz" else "3x227x227"
        assert err == f"convnet {argv[0]}: error: --input takes C x H x W; did you mean {hint}?\n"


def test_a_model_whose_depth_comes_first_is_read_c_h_w(cli):
    """8x16x3 looks like the notes' W x H x D, but it is C x H x W for a model of depth 8."""
    line = "INPUT[3x16x8] -> CONV(F=1,K=4)"  # the notes' W x H x D: 3 wide, 16 high, depth 8
    code, out, err = cli("summary", line, "--input", "8x16x3", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["input"] == [8, 16, 3]
    code, _, err = cli("summary", "lenet5", "--input", "32x32x1")
    assert code == 2 and err.endswith("did you mean 1x32x32?\n")


def test_input_builds_a_line_without_input_at_that_size(cli):
    code, out, _ = cli(
        "summary", "CONV3-8 -> RELU -> POOL2 -> FC-10", "--input", "1x28x28", "--format", "json"
    )
    rows = json.loads(out)["rows"]
    assert code == 0 and rows[0]["weights"] == 3 * 3 * 1 * 8  # built for depth 1
    assert rows[-1]["weights"] == (14 * 14 * 8) * 10  # and for 28x28, pooled to 14x14


def _window_misfits(model: nn.Module, size: tuple[int, int, int]) -> list[str]:
    """Paths of the convs and pools whose (W - F + 2P)/S is not whole, from torch's own shapes."""
    found: list[str] = []
    hooks = []
    for path, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):

            def check(mod, args, path=path):
                pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
                dil = pair(getattr(mod, "dilation", 1))
                for n, f, s, p, d in zip(
                    args[0].shape[-2:],
                    pair(mod.kernel_size),
                    pair(mod.stride),
                    pair(mod.padding),
                    dil,
                ):
                    if (n - d * (f - 1) - 1 + 2 * p) % s:
                        found.append(path)
                        break

            hooks.append(m.register_forward_pre_hook(check))
    with torch.no_grad():  # on the CPU: torch's meta kernels of batch norm load torch._dynamo
        model(torch.zeros(1, *size))
    for h in hooks:
        h.remove()
    return found


def _uninitialized(name: str) -> nn.Module:
    from convnet.analysis.trace import SkipInit
    from convnet.models import create_model

    with torch.device("meta"), SkipInit():  # built without initializing, then given memory
        return create_model(name).eval().to_empty(device="cpu")


def test_resnet18_stride_misfits_are_one_line_naming_the_layers():
    model = _uninitialized("resnet18")
    misfits = _window_misfits(model, (3, 224, 224))
    assert len(misfits) == 8  # conv1, maxpool, and conv1 + downsample of layers 2-4
    (warning,) = convnet.summary(model, (3, 224, 224), training_memory=False).warnings
    assert "8 layers" in warning and all(f"{path} (" in warning for path in misfits)
    # the fix keeps every stride 2: the input size at which each layer fits
    assert "stride S=" not in warning and "A 225x225 input fits every layer" in warning
    assert _window_misfits(model, (3, 225, 225)) == []  # and 224, one pixel away, does not


def test_alexnet_warning_suggests_the_input_that_fits():
    """The paper's layout (P=0 in conv1) fits at 227; torchvision's (P=2) at 223, not 227."""
    for name, fits in (("alexnet_original", 227), ("alexnet", 223)):
        model = _uninitialized(name)
        (warning,) = convnet.summary(model, (3, 224, 224), training_memory=False).warnings
        assert f"A {fits}x{fits} input fits every layer" in warning
        trunk = model.features  # every window is in it; the FC layers only cost time
        assert _window_misfits(trunk, (3, fits, fits)) == []
        d = abs(fits - 224)  # no size nearer to 224 fits
        assert all(_window_misfits(trunk, (3, n, n)) for n in range(225 - d, 224 + d) if n != fits)
        if name == "alexnet":
            assert _window_misfits(trunk, (3, 227, 227)) == ["2"]  # the first max pool


def test_a_net_that_fits_gives_no_warning():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 1, 2))
    assert convnet.summary(net, (3, 33, 33), training_memory=False).warnings == []
    assert _window_misfits(net, (3, 33, 33)) == []
    (warning,) = convnet.summary(net, (3, 32, 32), training_memory=False).warnings
    assert "the strides of 3 layers" in warning and "A 33x33 input fits every layer" in warning


def test_ceil_mode_and_an_op_the_fields_do_not_follow():
    pool = nn.Sequential(nn.MaxPool2d(3, 2, ceil_mode=True))
    (warning,) = convnet.summary(pool, (3, 8, 8), training_memory=False).warnings
    assert "(8 - 3 + 2*0)/2 + 1 = 3.5" in warning and "rounds it up to 4" in warning
    assert "A 9x9 input fits every layer" in warning
    assert pool(torch.zeros(1, 3, 9, 9)).shape[-1] == (9 - 3) / 2 + 1  # whole: no rounding
    # after a 2x upsampling every input is even and (2n - 3)/2 is never whole: the layer's own
    # fix is the only one, and no input size is claimed to fit
    up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(3, 4, 3, 2))
    (warning,) = convnet.summary(up, (3, 8, 8), training_memory=False).warnings
    assert "(16 - 3 + 2*0)/2 + 1 = 7.5" in warning and "every layer" not in warning
    assert warning.endswith("Fits with a layer input of 15 or 17.")  # (W - 3)/2 whole: W odd
