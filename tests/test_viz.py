"""Figures from a model trained for a few steps on the bundled MNIST sample, checked against
independent computations: the weights themselves, a forward pass through the model's own
prefix, a NumPy bilinear resize, and the receptive-field recurrence r += (k - 1) * d * jump."""

from __future__ import annotations

import io

import matplotlib.image
import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet import ConvnetError
from convnet.viz import (
    activations,
    confusion,
    conv_layer_paths,
    curves,
    effective_field,
    figure_bytes,
    filters,
    input_region,
    load_image,
    overlay,
    receptive_field,
    rf_by_depth,
    save_figure,
)

MEAN, STD = (0.1307,), (0.3081,)


@pytest.fixture(scope="module")
def digits():
    from convnet.data import load

    return load("mnist-sample")


@pytest.fixture(scope="module")
def net(digits):
    """conv5(16) -> relu -> pool -> conv3(32) -> relu -> pool -> fc, 30 SGD steps on real digits."""
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10),
    )  # fmt: skip
    m.default_input_size = (1, 28, 28)
    x = (digits.x_train.float() / 255 - MEAN[0]) / STD[0]
    y = digits.y_train
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(30):
        i = torch.randint(0, len(x), (32,), generator=g)
        loss = nn.functional.cross_entropy(m(x[i]), y[i])
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first  # it learned something: the figures show trained weights
    return m.eval()


def _pixels(fig) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(figure_bytes(fig, "png", dpi=60)))


def _tiles(fig) -> list:
    """The image arrays of every axes that shows one (in grid order)."""
    return [ax.images[0].get_array() for ax in fig.axes if ax.images]


def test_first_layer_filters_one_tile_each_scaled_on_its_own(net):
    fig = filters(net)
    w = net[0].weight.detach().numpy()
    tiles = _tiles(fig)
    assert len(tiles) == 16  # one tile per filter, no more
    for i, tile in enumerate(tiles):
        f = w[i, 0]
        np.testing.assert_allclose(tile, (f - f.min()) / (f.max() - f.min()), atol=1e-6)
    px = _pixels(fig)
    assert px.shape[0] > 200 and px.shape[1] > 200 and px.std() > 0.05
    assert "0 (Conv2d): 16 filters of 5x5x1" in fig._suptitle.get_text()


def test_rgb_filters_are_colour_tiles():
    conv = nn.Conv2d(3, 6, 7)
    fig = filters(nn.Sequential(conv))
    tiles = _tiles(fig)
    assert len(tiles) == 6 and tiles[0].shape == (7, 7, 3)
    f = conv.weight.detach().numpy()[2]
    np.testing.assert_allclose(
        tiles[2], np.moveaxis((f - f.min()) / (f.max() - f.min()), 0, -1), atol=1e-6
    )


def test_deeper_filters_one_input_channel_per_tile_on_a_shared_scale(net):
    fig = filters(net, "3", max_filters=4, max_channels=5)
    w = net[3].weight.detach().numpy()
    imgs = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(imgs) == 4 * 5
    np.testing.assert_allclose(imgs[5 + 2].get_array(), w[1, 2], atol=1e-7)  # row 1, column 2
    lim = np.abs(w[:4, :5]).max()
    assert all(np.allclose(im.get_clim(), (-lim, lim)) for im in imgs)
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)


def test_unknown_layer_lists_the_conv_layers(net):
    with pytest.raises(ConvnetError, match=r"no layer 'features.9'.*conv layers: 0, 3"):
        filters(net, "features.9")
    with pytest.raises(ConvnetError, match=r"'1' is a ReLU, not a convolution"):
        filters(net, "1")
    assert conv_layer_paths(net) == ["0", "3"]


def test_activations_most_active_first_match_a_forward_pass(net):
    fig = activations(net, "mnist:7", "1", top=6, mean=MEAN, std=STD)
    from convnet.data import load

    img = load("mnist-sample").x_test[7].float() / 255
    with torch.no_grad():
        maps = net[:2](((img - MEAN[0]) / STD[0])[None])[
            0
        ].numpy()  # the ReLU's output, independently
    order = np.argsort(-maps.reshape(16, -1).mean(1), kind="stable")[:6]
    tiles = _tiles(fig)
    assert len(tiles) == 1 + 6  # the input, then the six maps
    np.testing.assert_allclose(tiles[0], img[0].numpy(), atol=1e-6)
    for tile, ch in zip(tiles[1:], order):
        np.testing.assert_allclose(tile, maps[ch], atol=1e-5)
    assert [ax.get_title().split()[1] for ax in fig.axes if ax.images][1:] == [
        str(c) for c in order
    ]
    assert _pixels(fig).std() > 0.05


def _bilinear(a: np.ndarray, out: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize of a square map (align_corners=False), in NumPy."""
    n = a.shape[0]
    src = np.clip((np.arange(out) + 0.5) * n / out - 0.5, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    t = src - lo
    rows = a[lo] * (1 - t)[:, None] + a[hi] * t[:, None]
    return rows[:, lo] * (1 - t)[None] + rows[:, hi] * t[None]


def test_overlay_same_channels_across_images_upsampled(net, digits):
    x = (digits.x_test[:3].float() / 255 - MEAN[0]) / STD[0]
    with torch.no_grad():
        maps = net[:5](x).numpy()  # (3, 32, 14, 14)
    chans = [
        int(c) for c in np.argsort(-maps.max(axis=(0, 2, 3)))[[0, 5]]
    ]  # two channels that fire
    fig = overlay(net, ["mnist:0", "mnist:1", "mnist:2"], "4", chans, mean=MEAN, std=STD)
    assert len(fig.axes) == 3 * 3  # rows: images; columns: the image, then one per channel
    for j, ch in enumerate(chans):
        top = max(_bilinear(maps[i, ch], 28).max() for i in range(3))
        for i in range(3):
            level = fig.axes[i * 3 + 1 + j].images[1].get_array()
            np.testing.assert_allclose(
                level, np.clip(_bilinear(maps[i, ch], 28) / top, 0, 1), atol=1e-5
            )
    assert fig.axes[1].get_title() == f"channel {chans[0]}"
    with pytest.raises(ConvnetError, match="channels 0..31"):
        overlay(net, ["mnist:0"], "4", [32])


def _rf_formula(layers) -> int:
    r, jump = 1, 1
    for k, s, d in layers:
        r += (k - 1) * d * jump
        jump *= s
    return r


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 2), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_input_region_matches_the_recurrence(spec):
    layers, mods = [], []
    for k, s, d, pool in spec:
        if pool:
            mods.append(nn.MaxPool2d(k, s, dilation=1))
            layers.append((k, s, 1))
        else:
            mods.append(nn.Conv2d(1, 1, k, s, dilation=d))
            layers.append((k, s, d))
        mods.append(nn.ReLU())
    r = _rf_formula(layers)
    size = r + sum(1 for _ in layers) * 8 + 24  # room for at least one unit whose region fits
    region = input_region(nn.Sequential(*mods), str(len(mods) - 1), (1, size, size), unit=(0, 0))
    assert region.size == (r, r)
    assert (region.top, region.left) == (0, 0)


def test_rf_by_depth_agrees_with_the_recurrence(net):
    got = rf_by_depth(net, (1, 28, 28))
    # conv5 -> 5; pool2 -> 6 (jump 2); conv3 -> 6 + 2*2 = 10; pool2 -> 12
    assert got == [
        ("0", "Conv2d", 5),
        ("2", "MaxPool2d", 6),
        ("3", "Conv2d", 10),
        ("5", "MaxPool2d", 12),
    ]


def test_receptive_field_figure_box_and_gradient(net):
    fig = receptive_field(net, "3", "mnist:0", mean=MEAN, std=STD)
    region = input_region(net, "3", (1, 28, 28))
    assert region.unit == (7, 7) and region.size == (10, 10) and not region.clipped
    boxes = [p for ax in fig.axes for p in ax.patches if p.get_width() == 10]
    assert len(boxes) == 2 and boxes[0].get_xy() == (region.left - 0.5, region.top - 0.5)
    heat, ch = effective_field(
        net, "3", load_image("mnist:0", (1, 28, 28)), region.unit, mean=MEAN, std=STD
    )
    inside = np.zeros_like(heat, dtype=bool)
    inside[region.top : region.bottom, region.left : region.right] = True
    assert heat[~inside].max() == 0 and heat[inside].max() > 0  # the gradient lives in the region
    bars = [p.get_height() for p in fig.axes[-1].patches if p.get_facecolor()[3] > 0]
    assert bars == [5, 6, 10, 12]
    assert _pixels(fig).std() > 0.05


def test_curves_from_records():
    recs = [
        {"epoch": e, "lr": 0.1 * 0.5**e, "train_loss": 2 / e, "train_top1": 50 + 5 * e, "val_loss": 2.2 / e,
         "val_top1": 48 + 6 * e, "val_top5": 90 + e}
        for e in range(1, 6)
    ]  # fmt: skip
    fig = curves(recs)
    loss_ax, acc_ax, lr_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train", "validation"]
    np.testing.assert_allclose(acc_ax.lines[1].get_ydata(), [54, 60, 66, 72, 78])
    np.testing.assert_allclose(loss_ax.lines[0].get_ydata(), [2 / e for e in range(1, 6)])
    assert "best 78.00% (epoch 5)" in [t.get_text() for t in acc_ax.texts]
    fractions = curves([{**r, "val_top1": r["val_top1"] / 100} for r in recs])
    np.testing.assert_allclose(fractions.axes[1].lines[1].get_ydata(), [54, 60, 66, 72, 78])
    assert _pixels(fig).std() > 0.05


def test_confusion_rows_normalized():
    m = np.array([[8, 2, 0], [1, 9, 0], [0, 5, 5]])
    fig = confusion(m, ["a", "b", "c"])
    shown = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(shown, m / m.sum(1, keepdims=True))
    assert "accuracy 73.33%" in fig.axes[0].get_title()
    with pytest.raises(ConvnetError, match="square"):
        confusion(np.ones((2, 3)))


def test_load_image_sources(tmp_path, digits):
    a = load_image("mnist:5", (1, 28, 28))
    np.testing.assert_allclose(a[..., 0], digits.x_test[5, 0].numpy() / 255, atol=1e-6)
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 255
    from PIL import Image

    Image.fromarray(rgb).save(tmp_path / "red.png")
    gray = load_image(tmp_path / "red.png", (1, 10, 15))
    assert gray.shape == (10, 15, 1)
    np.testing.assert_allclose(gray, 0.299, atol=1e-3)  # ITU-R 601 luma of pure red
    assert load_image(tmp_path / "red.png", (3, 20, 30))[0, 0].tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ConvnetError, match="image not found"):
        load_image(tmp_path / "missing.png", (1, 28, 28))
    with pytest.raises(ConvnetError, match="0..999"):
        load_image("mnist:1000", (1, 28, 28))


def test_save_figure_writes_png_and_svg(tmp_path, net):
    paths = save_figure(filters(net), tmp_path / "f.png")
    assert [p.name for p in paths] == ["f.png", "f.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:2000]
    assert not list(tmp_path.glob(".*tmp"))  # written atomically: no temporary left over


def test_cli_viz_zoo_model(cli, tmp_path):
    code, out, err = cli("viz", "filters", "lenet5", "-o", tmp_path / "f")
    assert code == 0, err
    assert out.split() == [str(tmp_path / "f.png"), str(tmp_path / "f.svg")]
    px = matplotlib.image.imread(tmp_path / "f.png")
    assert px.shape[1] > 200 and px.std() > 0.05
    code, out, err = cli(
        "viz",
        "rf",
        "lenet5",
        "--layer",
        "features.3",
        "--image",
        "mnist:3",
        "-o",
        tmp_path / "rf",
        "--format",
        "png",
    )
    assert code == 0, err
    assert (tmp_path / "rf.png").is_file() and not (tmp_path / "rf.svg").exists()
    code, out, err = cli(
        "viz",
        "overlay",
        "lenet5",
        "mnist:0",
        "mnist:1",
        "--layer",
        "features.4",
        "--channels",
        "1,3",
        "-o",
        tmp_path / "o",
    )
    assert code == 0, err
    code, out, err = cli("viz", "activations", "lenet5", "mnist:0", "--layer", "features.9")
    assert code == 2 and "conv layers: features.0, features.3" in err and "Traceback" not in err


def test_a_run_folder_loads_its_best_checkpoint(tmp_path):
    # viz takes a run folder as predict and eval do: its best.pt, with normalization and classes
    from convnet.resolve import resolve_model
    from convnet.train import TrainConfig, fit, read_checkpoint
    from test_train import TINY, tiny_data

    fit(
        TINY,
        tiny_data(),
        TrainConfig(out=str(tmp_path / "run"), epochs=1, batch_size=32, lr=0.05, progress=False),
    )
    loaded = resolve_model(str(tmp_path / "run"))
    want = read_checkpoint(tmp_path / "run" / "best.pt")["model"]
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert loaded.classes == ["q0", "q1", "q2", "q3"] and loaded.mean is not None
