"""Weight layers on the longest path, counted as the papers count depth (seed 004's numbers)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import convnet
from convnet.analysis.depth import WeightLayers, weight_layers
from convnet.resolve import resolve_model


def _count(name: str, size=(3, 64, 64)) -> WeightLayers:
    # the count does not depend on the input size; 64x64 keeps the trace small
    return weight_layers(resolve_model(name, meta=True).model, size)


# The papers' depths: VGG (table 1: 11 to 19 weight layers), ResNet (table 1: 18 to 152),
# GoogLeNet (22 layers with parameters), DenseNet (121), the CIFAR ResNets (6n + 2).
PAPER_DEPTH = {
    "vgg11": (11, {"conv": 8, "fc": 3}),
    "vgg16": (16, {"conv": 13, "fc": 3}),
    "vgg19": (19, {"conv": 16, "fc": 3}),
    "resnet18": (18, {"conv": 17, "fc": 1}),
    "resnet34": (34, {"conv": 33, "fc": 1}),
    "resnet50": (50, {"conv": 49, "fc": 1}),
    "resnet152": (152, {"conv": 151, "fc": 1}),
    "googlenet": (22, {"conv": 21, "fc": 1}),
    "alexnet": (8, {"conv": 5, "fc": 3}),
}


@pytest.mark.parametrize("name", PAPER_DEPTH)
def test_depth_is_the_papers(name):
    depth, kinds = PAPER_DEPTH[name]
    got = _count(name)
    assert got.count == depth and got.by_kind() == kinds


def test_googlenet_is_3_plus_18_plus_1():
    """Seed 004: three weight layers in the stem, two in each of nine Inception modules, one FC."""
    path = _count("googlenet").path
    top = [p.split(".")[0] for p in path]
    assert top[:3] == ["conv1", "conv2", "conv3"] and top[-1] == "fc"
    modules = top[3:-1]
    assert len(modules) == 18 and all(modules.count(m) == 2 for m in set(modules))
    assert len(set(modules)) == 9 and all(m.startswith("inception") for m in modules)


def test_lenet5_counts_its_trainable_subsampling():
    """LeCun et al. 1998: 'LeNet-5 comprises 7 layers, not counting the input, all of which
    contain trainable parameters': C1, S2, C3, S4, C5, F6 and the output."""
    got = _count("lenet5_1998", (1, 32, 32))
    assert got.count == 7 and got.by_kind() == {"conv": 3, "other": 2, "fc": 2}


class _Branches(nn.Module):
    """x -> a -> b, x -> c (parallel), sum; then a gate from a side branch of two FCs."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = (nn.Conv2d(4, 4, 3, padding=1) for _ in range(3))
        self.bn = nn.BatchNorm2d(4)
        self.fc1, self.fc2 = nn.Linear(4, 2), nn.Linear(2, 4)
        self.weight = nn.Parameter(torch.zeros(4, 4, 1, 1))

    def forward(self, x):
        y = self.bn(self.b(self.a(x))) + self.c(x)  # depth 2, one sum merge
        gate = torch.sigmoid(self.fc2(self.fc1(y.mean((2, 3)))))[:, :, None, None]
        y = y * gate  # the gate's two FCs run beside the path
        return F.conv2d(y, self.weight)  # a functional conv counts: depth 3


def test_branches_merges_gates_and_functional_convs():
    got = weight_layers(_Branches(), (4, 8, 8))
    assert got.path == ("a", "b", "conv2d()") and got.sum_merges == 1
    assert got.describe() == "3 (3 conv)"


def test_plain_nets_have_no_shortcuts_residual_nets_one_per_block():
    # ResNet-34: 3 + 4 + 6 + 3 basic blocks (He et al. 2015, table 1); plain-34 the same convs
    # without the shortcuts (tests/test_seed_errors.py does Inception-v4 and Inception-ResNet)
    assert _count("plain34").sum_merges == 0 and _count("resnet34").sum_merges == 16


def test_summary_and_its_text_show_the_count():
    s = convnet.summary("vgg16", training_memory=False)
    assert s.totals["weight_layers"] == 16
    assert "Weight layers: 16 (13 conv + 3 FC)" in s.render("table")


def test_convnet_models_shows_the_stored_depth(cli):
    import csv
    import io

    from convnet.models import get_card
    from convnet.models.macs import stored_weight_layers

    code, out, _ = cli("models", "vgg1[69]", "--format", "csv")
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(out))}
    assert code == 0 and (rows["vgg16"]["layers"], rows["vgg19"]["layers"]) == ("16", "19")
    stored = stored_weight_layers(get_card("googlenet"))
    assert stored == convnet.summary("googlenet").totals["weight_layers"] == 22
