"""The bundled MNIST sample and the Dataset type."""

import numpy as np
import pytest
import torch

from convnet.data import Dataset, channel_stats, load
from convnet.errors import DataError


def test_bundled_sample_counts_and_types():
    data = load("mnist-sample")
    assert data.x_train.shape == (4000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert data.x_train.dtype == torch.uint8 and data.y_train.dtype == torch.int64
    assert data.input_size == (1, 28, 28)
    assert data.classes == [str(d) for d in range(10)]
    assert torch.bincount(data.y_train).tolist() == [400] * 10
    assert torch.bincount(data.y_test).tolist() == [100] * 10
    # real digits: mostly black background, strokes near 255
    assert 0.10 < data.mean[0] < 0.16 and 0.28 < data.std[0] < 0.34
    assert int(data.x_train.max()) == 255 and int(data.x_train.min()) == 0


def test_default_spec_is_the_sample():
    assert load().name == "mnist-sample"


def test_channel_stats_match_float64_numpy():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (37, 3, 5, 7), generator=g, dtype=torch.uint8)
    mean, std = channel_stats(x)
    ref = x.numpy().astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3)), rtol=1e-9)


def test_dataset_validates_labels_and_dtype():
    x = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(DataError, match="labels span"):
        Dataset("t", x, torch.tensor([0, 1, 2, 3]), x, torch.tensor([0, 0, 0, 0]), ["a", "b"])
    with pytest.raises(DataError, match="uint8"):
        Dataset("t", x.float(), torch.zeros(4), x, torch.zeros(4), ["a"])
    with pytest.raises(DataError, match="labels for 4 images"):
        Dataset("t", x, torch.zeros(3), x, torch.zeros(4), ["a"])


def test_unknown_spec_is_one_line_error(tmp_path):
    with pytest.raises(DataError) as e:
        load("no-such-data-set")
    assert "\n" not in str(e.value) and "mnist-sample" in str(e.value)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "cifar100"])
def test_missing_named_set_says_where_to_put_what(tmp_path, name):
    with pytest.raises(DataError) as e:
        load(name, root=tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and f"convnet data get {name}" in msg and str(tmp_path / name) in msg


def test_cli_info_on_the_sample(cli):
    code, out, err = cli("data", "info", "mnist-sample")
    assert code == 0, err
    assert "4,000 train / 1,000 test images, 1x28x28 uint8" in out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert rows == [[str(d), "400", "100"] for d in range(10)]
