"""Users' own ops and modules in the summary: register_op, register_module, the unknown-op warning."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import convnet
from convnet.analysis import Window, register_module, register_op
from convnet.errors import ConvnetError


class Conv1dNet(nn.Module):
    """(N, C, H, W) -> rows as sequences -> two 1-D convolutions written with F.conv1d."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.zeros(8, 3, 5))
        self.w2 = nn.Parameter(torch.zeros(4, 8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2)  # (N, 3, 64)
        return F.conv1d(F.conv1d(x, self.w1, stride=2), self.w2, padding=1)


def conv1d_macs(out, x, w, *args, **kwargs) -> int:
    """Each output value is a dot product over (C_in / groups) x k inputs."""
    return out.numel() * w.shape[1] * w.shape[2]


def test_an_unknown_op_gives_one_warning_naming_it() -> None:
    s = convnet.summary(Conv1dNet(), (3, 8, 8))
    assert s.totals["macs"] == 0
    assert len(s.warnings) == 1
    assert "conv1d" in s.warnings[0] and "register_op" in s.warnings[0]
    assert "and 1 more place" in s.warnings[0]  # two calls, still one line


def test_register_op_gives_the_formula_s_macs() -> None:
    # L1 = floor((64 - 5)/2) + 1 = 30 outputs of 8 channels, each 3*5 MACs;
    # L2 = (30 - 3 + 2)/1 + 1 = 30 outputs of 4 channels, each 8*3 MACs
    want = 30 * 8 * (3 * 5) + 30 * 4 * (8 * 3)
    with register_op(F.conv1d, macs=conv1d_macs):
        s = convnet.summary(Conv1dNet(), (3, 8, 8))
    assert s.totals["macs"] == want and not s.warnings
    # the handle undid the registration
    assert len(convnet.summary(Conv1dNet(), (3, 8, 8)).warnings) == 1
    handle = register_op("conv1d", macs=0)  # "no multiply-adds to count" silences it too
    try:
        s = convnet.summary(Conv1dNet(), (3, 8, 8))
        assert s.totals["macs"] == 0 and not s.warnings
    finally:
        handle.remove()


class ReshapePool(nn.Module):
    """A 2x2 stride-2 max pool written with reshape + amax: the trace cannot see its window."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.reshape(n, c, h // 2, 2, w // 2, 2).amax((3, 5))


def test_register_module_window_carries_the_receptive_field() -> None:
    def net(pool: nn.Module) -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), pool, nn.Conv2d(4, 4, 3, padding=1))

    builtin = convnet.summary(net(nn.MaxPool2d(2)), (3, 16, 16))
    unseen = convnet.summary(net(ReshapePool()), (3, 16, 16))
    assert unseen.rows[1].rf is None and unseen.rows[2].rf is None
    with register_module(ReshapePool, window=Window(f=2, s=2)):
        told = convnet.summary(net(ReshapePool()), (3, 16, 16))
    # the same RF as torch's own pool: 3 -> 3 + (2-1)*1 = 4, jump 2 -> 4 + (3-1)*2 = 8
    assert [r.rf for r in told.rows] == [r.rf for r in builtin.rows]
    assert told.rows[2].rf == {"size": 8, "jump": 2, "start": 0.5}
    assert told.rows[1].hyper == "F=2 S=2 P=0" and told.rows[1].output == (4, 8, 8)


class TwoConvs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(4, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def test_register_module_folds_children_into_one_row() -> None:
    model = nn.Sequential(TwoConvs(), nn.Flatten())
    plain = convnet.summary(model, (3, 5, 5))
    assert [r.path for r in plain.rows] == ["0.a", "0.b", "1"]
    with register_module(TwoConvs, macs=lambda m, args, out: 1000):
        s = convnet.summary(model, (3, 5, 5))
    assert [r.path for r in s.rows] == ["0", "1"]
    assert s.rows[0].params == 3 * 4 + 4 + 4 * 2 and s.rows[0].biases == 4
    assert s.rows[0].macs == 1000 and s.rows[0].output == (2, 5, 5)
    with register_module(TwoConvs, window=lambda m: Window(f=1)):  # MACs from the inside
        s = convnet.summary(model, (3, 5, 5))
    assert s.rows[0].macs == 25 * (4 * 3 + 2 * 4) and s.rows[0].rf["size"] == 1


def test_registration_mistakes_are_one_line_errors() -> None:
    def mine(x):
        return x

    with pytest.raises(ConvnetError, match="register_module"):
        register_op(mine, macs=1)
    with pytest.raises(ConvnetError, match="give macs"):
        register_op(F.conv1d)
    with pytest.raises(ConvnetError, match="nn.Module subclass"):
        register_module(int, macs=1)
    with pytest.raises(ConvnetError, match="whole number"):
        register_op(F.conv1d, macs=-1)
    with pytest.raises(ConvnetError, match="stride"):
        Window(f=3, s=0)
    with register_op(F.conv1d, macs=lambda out, *a, **k: 1.5):
        with pytest.raises(ConvnetError, match="whole number >= 0, got 1.5"):
            convnet.summary(Conv1dNet(), (3, 8, 8))
