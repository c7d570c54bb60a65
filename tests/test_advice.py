"""The notes' layer sizing patterns as checks (convnet summary --advice).

A small net that follows every rule gets no finding; the same net with one thing changed gets
exactly the one finding that names it; stock models get the notes' own exception for their first
layer (AlexNet's 11x11/4, ResNet's 7x7/2 stem), not a departure.
"""

from __future__ import annotations

import json

import pytest
import torch.nn as nn

from convnet.analysis.advice import RULES, sizing_advice
from convnet.resolve import resolve_model


def _net(first=(3, 1, 1), second=(3, 1, 1), pool=(2, 2)) -> nn.Sequential:
    """INPUT -> CONV -> RELU -> CONV3 -> RELU -> POOL2 -> CONV -> RELU -> POOL -> global avg -> FC."""
    return nn.Sequential(
        nn.Conv2d(3, 8, *first),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, 1, 1),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
        nn.Conv2d(8, 8, *second),  # path "5"
        nn.ReLU(),
        nn.MaxPool2d(*pool),  # path "7"
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    )


def test_a_net_that_follows_every_rule_gets_no_finding(cli):
    assert sizing_advice(_net(), (3, 32, 32)) == []
    line = "INPUT[32x32x3] -> [CONV3-8 -> RELU -> CONV3-8 -> RELU -> POOL2]*2 -> FC-10"
    code, out, err = cli("summary", line, "--advice")
    assert (code, out, err) == (0, "", "")


@pytest.mark.parametrize(
    "model, size, rule, layer",
    [
        (_net(), (3, 30, 30), "input", "30x30"),  # total stride 4; 30 = 2 x 15
        (_net(second=(7, 1, 3)), (3, 32, 32), "conv filter", "5 (F=7 S=1 P=3)"),
        (_net(second=(3, 2, 1)), (3, 32, 32), "conv stride", "5 (F=3 S=2 P=1)"),
        (_net(second=(3, 1, 0)), (3, 32, 32), "conv padding", "5 (F=3 S=1 P=0)"),
        (_net(pool=(4, 4)), (3, 32, 32), "pool", "7 (F=4 S=4 P=0)"),
        (_net(first=(3, 1, 0)), (3, 32, 32), "conv padding", "0 (F=3 S=1 P=0)"),
    ],
    ids=["input", "filter", "stride", "padding", "pool", "unpadded-first-layer"],
)
def test_each_rule_broken_once_is_one_finding(model, size, rule, layer):
    (finding,) = sizing_advice(model, size)
    assert finding.rule == rule and finding.layers == (layer,)
    assert finding.exception is None and finding.cost
    assert f"departs from '{RULES[rule]}'" in finding.render()


def test_a_large_strided_first_layer_is_the_notes_exception():
    (finding,) = sizing_advice(_net(first=(7, 2, 3)), (3, 32, 32))
    assert finding.rule == "first layer" and finding.exception is not None
    assert finding.layers == ("0 (F=7 S=2 P=3)",)
    # 16x16x8 against 32x32x8 for a 3x3/1 layer: four times fewer activations
    assert "2,048 values per image, 4.0x fewer" in finding.note


@pytest.mark.parametrize(
    "name, first",
    [("alexnet", "features.0 (F=11 S=4 P=2)"), ("resnet18", "conv1 (F=7 S=2 P=3)")],
)
def test_stock_models_first_layers_are_exceptions_not_departures(name, first):
    model = resolve_model(name, meta=True).model
    findings = sizing_advice(model, (3, 224, 224))
    assert findings[0].exception is not None and findings[0].layers == (first,)
    departures = [f for f in findings if f.exception is None]
    assert all(first not in f.layers for f in departures)
    if name == "resnet18":  # its stages downsample with strided convs, not pools
        assert [f.rule for f in departures] == ["conv stride"]
        assert len(departures[0].layers) == 6  # a 3x3/2 and a 1x1/2 projection in stages 2-4
    else:
        assert departures == []


def test_cli_prints_findings_as_text_or_json(cli):
    code, out, _ = cli("summary", "resnet18", "--advice")
    assert code == 0 and out.startswith("- exception, conv1 (F=7 S=2 P=3)")
    assert "departs from 'conv stride S=1': 6 layers" in out and "cost: seed 002" in out
    code, out, _ = cli("summary", "resnet18", "--advice", "--format", "json")
    rules = [(f["rule"], f["exception"]) for f in json.loads(out)]
    assert code == 0 and rules == [("first layer", True), ("conv stride", False)]
    code, _, err = cli("summary", "resnet18", "--advice", "--format", "csv")
    assert code == 2 and "--format text, markdown or json" in err
