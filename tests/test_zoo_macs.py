"""The stored MAC counts `convnet models` shows (src/convnet/models/macs.py)."""

from __future__ import annotations

import pytest

import convnet
from convnet.models import get_card, list_models
from convnet.models.macs import stored_macs


def test_every_zoo_model_has_a_current_count() -> None:
    stale = [name for name in list_models() if stored_macs(get_card(name)) is None]
    assert not stale, f"no stored MACs for {stale}: run python tools/make_zoo_macs.py"


def vgg16_macs() -> int:
    """Simonyan & Zisserman's configuration D at 224x224, layer by layer: a 3x3 conv with
    padding 1 costs H*W*K*(3*3*C); FC layers cost inputs x outputs."""
    total, c, size = 0, 3, 224
    for block in ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)):
        for k in block:
            total += size * size * k * 9 * c
            c = k
        size //= 2
    return total + 7 * 7 * 512 * 4096 + 4096 * 4096 + 4096 * 1000


def test_stored_vgg16_matches_the_paper_s_layer_table() -> None:
    assert stored_macs(get_card("vgg16")) == vgg16_macs() == 15_470_264_320


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "resnet18", "googlenet"])
def test_stored_counts_are_what_summary_traces(name: str) -> None:
    card = get_card(name)
    assert stored_macs(card) == convnet.summary(name, card.input_size).totals["macs"]


def test_a_changed_card_is_traced_again(cli) -> None:
    from dataclasses import replace

    card = get_card("lenet5")
    assert stored_macs(replace(card, input_size=(1, 36, 36))) is None
    assert stored_macs(replace(card, params=card.params + 1)) is None
    code, out, _ = cli("models", "lenet5", "--format", "csv")
    assert code == 0 and f",{stored_macs(card)}," in out


def test_the_index_names_the_module_that_registers_each_model() -> None:
    from convnet.models.macs import MODULES

    assert MODULES == {n: get_card(n).builder.__module__.split(".")[-1] for n in list_models()}
