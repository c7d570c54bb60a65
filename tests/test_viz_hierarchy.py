"""The feature-hierarchy figures checked against independent computations: a deconvnet
projection worked out by hand, the NumPy engine's projection against torch's, top patches
against a brute-force scan with receptive fields written out by hand, occlusion against the
softmax of a model that only reads one quadrant, and one-line errors for the user's mistakes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from convnet import ConvnetError
from convnet.reference import from_torch
from convnet.reference.deconv import deconv_project
from convnet.viz import Images, occlude, project, projection_rules, top_units
from convnet.viz.patches import crop


def _conv(cin, cout, k, weight, bias=None, **kw) -> nn.Conv2d:
    c = nn.Conv2d(cin, cout, k, bias=bias is not None, **kw).double()
    with torch.no_grad():
        c.weight.copy_(torch.tensor(weight, dtype=torch.float64).view_as(c.weight))
        if bias is not None:
            c.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return c


def _both(model: nn.Module, x: torch.Tensor, layer: str, channel: int, rule: str):
    """(torch projection, NumPy projection) of image 0."""
    pt, _, _ = project(model, x, layer, channel, rule=rule)
    pn = deconv_project(from_torch(model.eval(), x), x.numpy(), layer, channel, rule=rule)
    return pt[0, 0], pn[0, 0]


def test_deconv_of_a_hand_built_net_unpools_to_the_switch_and_applies_the_filter_transposed():
    # conv 2x2 W = [[1, -1], [2, 0]] on a 3x3 image gives [[-1, 8], [5, 2]] (by hand:
    # a[i, j] = x[i, j] - x[i, j+1] + 2 x[i+1, j]); ReLU -> [[0, 8], [5, 2]]; the 2x2 max pool
    # keeps 8 and its switch (0, 1). Down: 8 is unpooled to (0, 1), passes the ReLU, and the
    # transposed filter lays 8 * W over the window at rows 0..1, cols 1..2.
    net = nn.Sequential(_conv(1, 1, 2, [[1, -1], [2, 0]], [0.0]), nn.ReLU(), nn.MaxPool2d(2))
    x = torch.tensor([[1, 2, 0], [0, 3, 1], [4, 0, 2]], dtype=torch.float64).view(1, 1, 3, 3)
    want = np.array([[0, 8, -8], [0, 16, 0], [0, 0, 0]], dtype=np.float64)
    for layer in ("2", "0"):  # from the pool, and from the conv (its strongest unit is the same)
        for rule in ("deconvnet", "guided", "backprop"):
            pt, pn = _both(net, x, layer, 0, rule)
            np.testing.assert_allclose(pt, want, atol=1e-12)
            np.testing.assert_allclose(pn, want, atol=1e-12)


def test_the_three_relu_rules_by_hand():
    # x = [2, 3] (one row). conv1 1x1 with weights (1, -1): ch0 = [2, 3] (open), ch1 = [-2, -3]
    # (closed). conv2 1x2 reads ch0 with (2, -1), ch1 with (1, 1): one unit, 4 - 3 = 1.
    # Down: s_ch0 = (2, -1), s_ch1 = (1, 1). deconvnet max(0, s): (2, 0), (1, 1);
    # backprop s * open: (2, -1), (0, 0); guided: (2, 0), (0, 0). conv1 transposed: s_ch0 - s_ch1.
    net = nn.Sequential(_conv(1, 2, 1, [1, -1]), nn.ReLU(), _conv(2, 1, (1, 2), [[2, -1], [1, 1]]))
    x = torch.tensor([[[[2.0, 3.0]]]], dtype=torch.float64)
    want = {"deconvnet": [1, -1], "backprop": [2, -1], "guided": [2, 0]}
    for rule, row in want.items():
        pt, pn = _both(net, x, "2", 0, rule)
        np.testing.assert_allclose(pt, [row], atol=1e-12)
        np.testing.assert_allclose(pn, [row], atol=1e-12)


class _Block(nn.Module):
    """A residual block with functional ReLUs: the add and F.relu must follow the rules too."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)) + x)


@pytest.mark.parametrize("rule", ["deconvnet", "guided", "backprop"])
def test_torch_and_numpy_projections_agree_on_a_random_net(rule):
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        _Block(6), nn.Conv2d(6, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.AvgPool2d(2),
    ).double().eval()  # fmt: skip
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):  # statistics that are not the identity
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(3, 3, 15, 15, dtype=torch.float64)
    ref = from_torch(net, x)
    checked = 0
    # torch module -> reference node: the block is traced through, its output is the node "relu"
    for layer, node in (("0", "_0"), ("3", "relu"), ("6", "_6"), ("7", "_7")):
        for ch in range(4):
            pt, _, _ = project(net, x, layer, ch, rule=rule)
            pn = deconv_project(ref, x.numpy(), node, ch, rule=rule)
            np.testing.assert_allclose(pt, pn, rtol=1e-9, atol=1e-12)
            checked += int((np.abs(pt).reshape(3, -1).max(1) > 0).sum())
    assert checked > 24  # most projections are not all zero


def test_projection_rules_name_batch_norm_and_the_residual_add():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), _Block(4), nn.AdaptiveAvgPool2d(2))
    rules = projection_rules(net, "2", (3, 8, 8))
    assert [r[0] for r in rules] == ["0", "1.conv", "1.bn", "1.add", "1.relu", "2"]
    how = dict((r[0], r[2]) for r in rules)
    assert "both branches" in how["1.add"]
    assert "gamma" in how["1.bn"]
    assert "max(0, s)" in how["1.relu"]
    assert "evenly" in how["2"]


# --- top patches -------------------------------------------------------------------------------


def _images(x: torch.Tensor) -> Images:
    return Images(x, torch.zeros(len(x), dtype=torch.long), ["0"], "random")


def test_top_patches_are_the_argmax_crops_of_a_brute_force_scan():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 3, 3)
    ).eval()
    x = torch.rand(23, 1, 12, 12)
    x[17] = x[4]  # a tie: the lower index must come first
    x[9] = 0.5  # a flat image: every unit of a channel ties, the first in row-major order wins
    found = top_units(net, _images(x), ["0", "3"], top=5, batch_size=5)
    # Receptive fields by hand: conv3 pad 1: unit i sees rows i-1 .. i+1 (3 rows); pool 2 then
    # conv3: unit i sees rows 2i-1 .. 2i+6 (8 rows, jump 2).
    field = {"0": lambda i: (i - 1, 3), "3": lambda i: (2 * i - 1, 8)}
    for layer, upto in (("0", 1), ("3", 4)):
        with torch.no_grad():
            maps = net[:upto](x)  # (N, K, h, w), straight from the model's prefix
        for k in range(maps.shape[1]):
            scored = []
            for n in range(len(x)):
                m = maps[n, k]
                best, at = -np.inf, None
                for i in range(m.shape[0]):
                    for j in range(m.shape[1]):
                        if m[i, j] > best:
                            best, at = float(m[i, j]), (i, j)
                scored.append((-best, n, at))
            scored.sort()
            for rank, (neg, n, (i, j)) in enumerate(scored[:5]):
                assert found[layer].images[k, rank] == n
                assert found[layer].values[k, rank] == pytest.approx(-neg, abs=1e-6)
                (top, size), (left, _) = field[layer](i), field[layer](j)
                want = np.full((size, size, 1), 0.5, dtype=np.float32)
                for r in range(size):
                    for c in range(size):
                        if 0 <= top + r < 12 and 0 <= left + c < 12:
                            want[r, c, 0] = x[n, 0, top + r, left + c]
                box = found[layer].box(k, rank, (12, 12))
                np.testing.assert_array_equal(crop(x[n].permute(1, 2, 0).numpy(), box), want)


# --- occlusion ---------------------------------------------------------------------------------


class _TopLeft(nn.Module):
    """Class 0's score is 0.1 x the sum of the top-left quadrant; class 1's is 0."""

    def forward(self, x):
        h, w = x.shape[-2:]
        s = 0.1 * x[:, :, : h // 2, : w // 2].sum((1, 2, 3))
        return torch.stack([s, torch.zeros_like(s)], 1)


def test_occlusion_on_a_model_that_reads_one_quadrant_lights_that_quadrant():
    occ = occlude(_TopLeft(), torch.ones(1, 1, 16, 16), size=4, stride=2, fill=0.0)
    assert occ.prob.shape == (7, 7)  # (16 - 4) // 2 + 1 positions each way
    assert occ.target == 0 and occ.base == pytest.approx(1 / (1 + np.exp(-6.4)))
    for i in range(7):
        for j in range(7):
            # overlap of rows 2i..2i+3 (cols 2j..2j+3) with the quadrant's rows (cols) 0..7
            overlap = max(0, min(2 * i + 4, 8) - 2 * i) * max(0, min(2 * j + 4, 8) - 2 * j)
            want = 1 / (1 + np.exp(-0.1 * (64 - overlap)))
            assert occ.prob[i, j] == pytest.approx(want, rel=1e-5)
            assert (occ.prob[i, j] < occ.base - 1e-9) == (overlap > 0)  # lit only there


def test_occlusion_figure_draws_three_panels():
    from convnet.viz import occlusion

    fig = occlusion(
        _TopLeft(), np.ones((16, 16, 1)), size=4, stride=2, input_size=(1, 16, 16),
        classes=["left", "other"],
    )  # fmt: skip
    titles = [ax.get_title() for ax in fig.axes]
    assert any("p(left)" in t for t in titles)
    assert any("most probable class" in t for t in titles)


# --- pages and codes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 12), nn.ReLU(), nn.Linear(12, 3),
    ).eval()  # fmt: skip
    x = torch.rand(40, 1, 16, 16)
    return net, Images(x, torch.arange(40) % 3, ["a", "b", "c"], "random")


def test_hierarchy_page_one_row_per_conv_layer_with_its_field(tiny):
    from convnet.viz import hierarchy

    net, images = tiny
    fig = hierarchy(net, images, channels=2, top=4, batch_size=16)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("RF 3x3 px" in t for t in texts) and any("RF 8x8 px" in t for t in texts)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 * 2 * 2  # 2 layers x 2 channels x (projections, patches)


@pytest.fixture
def one_thread():
    """t-SNE's OpenMP threads follow torch's; one keeps them from fighting xdist's workers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_codes_are_what_the_classifier_reads_and_embed_in_2d(tiny, one_thread):
    from convnet.viz import codes, embed, layer_codes

    net, images = tiny
    got, what = layer_codes(net, images, batch_size=16)
    with torch.no_grad():
        want = net[:9](images.pixels)  # the input of the last Linear layer
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)
    assert what == "input of 9"
    fig = codes(net, images, perplexity=5, thumbnails=10)  # layer_codes, then a 2-D t-SNE
    assert fig._suptitle.get_text().startswith("t-SNE of the input of 9 (12 values per image)")
    assert len(fig.axes[0].collections) == 3  # one scatter per class
    with pytest.raises(ConvnetError, match="perplexity 50 needs more than 50 images"):
        embed(got, perplexity=50)


def test_codes_without_scikit_learn_say_how_to_install_it(tiny, monkeypatch):
    import sys

    from convnet.viz import embed

    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    with pytest.raises(ConvnetError, match=r"pip install 'convnet\[viz\]'"):
        embed(np.zeros((10, 3)), perplexity=2)


# --- the command line: one-line errors ---------------------------------------------------------

_DATA = ("--data", "mnist-sample", "--images", "12", "--batch", "6")


@pytest.mark.parametrize(
    "argv, message",
    [
        (("patches", "lenet5", *_DATA, "--layer", "nope"), "no layer 'nope'"),
        (("deconv", "lenet5", "mnist:0", "--layer", "nope"), "no layer 'nope'"),
        (("hierarchy", "lenet5", *_DATA, "--layer", "nope"), "no layer 'nope'"),
        (("codes", "lenet5", *_DATA, "--layer", "nope"), "no layer 'nope'"),
        (("patches", "lenet5", *_DATA, "--layer", "classifier.1"), "not (N, C, H, W) maps"),
        (("deconv", "lenet5", "mnist:0", "--layer", "classifier.1"), "not (N, C, H, W) maps"),
        (("hierarchy", "lenet5", *_DATA, "--layer", "classifier.3"), "not (N, C, H, W) maps"),
        (("deconv", "lenet5", "mnist:0", "--input", "1x8x8"), "larger than its padded input"),
        (("occlusion", "lenet5", "mnist:0", "--input", "1x8x8"), "cannot run on a 1x8x8"),
        (("occlusion", "lenet5", "mnist:0", "--size", "40"), "does not fit the 32x32 image"),
        (("patches", "lenet5", *_DATA, "--input", "1x8x8"), "cannot run on a 1x8x8"),
        (("codes", "lenet5", *_DATA, "--input", "1x8x8"), "cannot run on a 1x8x8"),
        (("hierarchy", "lenet5", *_DATA, "--input", "3x32x32"), "1-channel images"),
        (("occlusion", "lenet5", "mnist:0", "--class", "seven"), "unknown class 'seven'"),
        (("patches", "lenet5", "--images", "5"), "give --data"),
        (("hierarchy", "lenet5", *_DATA, "--top", "26"), "must be <= 25"),
    ],
)
def test_cli_mistakes_are_one_line_errors(cli, capsys, tmp_path, argv, message):
    try:
        code, out, err = cli("viz", *argv, "-o", tmp_path / "fig")
    except SystemExit as e:  # argparse refuses a flag's value itself
        code, (out, err) = e.code, capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_cli_writes_every_figure(cli, tmp_path):
    code, out, err = cli("viz", "deconv", "lenet5", "mnist:3", "--layer", "features.3",
                         "--count", "2", "-o", tmp_path / "d", "--format", "png")  # fmt: skip
    assert code == 0, err
    assert "features.2 (MaxPool2d): unpool" in out  # the rules, top layer first
    assert out.index("features.3 (Conv2d)") < out.index("features.0 (Conv2d)")
    assert (tmp_path / "d.png").is_file()
    code, out, err = cli("viz", "patches", "lenet5", *_DATA, "--top", "4", "--max-channels", "2",
                         "-o", tmp_path / "p", "--format", "png")  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "p-features.0.png").is_file() and (tmp_path / "p-features.3.png").is_file()


def test_load_images_pads_like_training_and_samples_across_a_sorted_split():
    from convnet.data import load
    from convnet.viz import load_images

    d = load("mnist-sample")
    images = load_images(d, (1, 32, 32), limit=100)
    assert images.pixels.shape == (100, 1, 32, 32) and images.what == "mnist-sample test"
    assert float(images.pixels[:, :, :2].abs().max()) == 0.0  # 28 -> 32: 2 zero rows each side
    originals = {bytes(x.numpy().tobytes()): int(y) for x, y in zip(d.x_test, d.y_test)}
    for x, y in zip(images.pixels, images.labels):
        digit = (x[:, 2:30, 2:30] * 255).round().to(torch.uint8)  # the unpadded 28x28 digit
        assert originals[bytes(digit.numpy().tobytes())] == int(y)
    assert len(set(images.labels.tolist())) == 10  # the first 100 would be zeros and ones only
    with pytest.raises(ConvnetError, match="1-channel images but the model takes 3"):
        load_images(d, (3, 32, 32), limit=5)
