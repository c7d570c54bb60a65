"""Inception-v4 (Szegedy, Ioffe, Vanhoucke, Alemi 2016), at 299x299x3.

A stem of convs and parallel conv/pool reductions (299 -> 35x35x384), then 4 Inception-A
(35x35), Reduction-A (-> 17x17x1024), 7 Inception-B with factorized 1x7/7x1 convs, Reduction-B
(-> 8x8x1536), 3 Inception-C with 1x3/3x1 splits, global average pool, dropout, FC.
Every conv is conv (no bias) -> BN (eps 0.001) -> ReLU. 42,679,816 parameters.
Unpadded 3x3 convs in the stem need an input of at least 75x75.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import BasicConv2d
from ._init import he_init
from ._registry import register_model


def _conv(
    cin: int, cout: int, k: int | tuple[int, int], s: int = 1, p: int | tuple[int, int] = 0
) -> BasicConv2d:
    return BasicConv2d(cin, cout, kernel_size=k, stride=s, padding=p)


class Mixed3a(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, stride=2)
        self.conv = _conv(64, 96, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.maxpool(x), self.conv(x)], 1)


class Mixed4a(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(_conv(160, 64, 1), _conv(64, 96, 3))
        self.branch1 = nn.Sequential(
            _conv(160, 64, 1),
            _conv(64, 64, (1, 7), p=(0, 3)),
            _conv(64, 64, (7, 1), p=(3, 0)),
            _conv(64, 96, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x)], 1)


class Mixed5a(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = _conv(192, 192, 3, 2)
        self.maxpool = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.maxpool(x)], 1)


def _avg_proj(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), _conv(cin, cout, 1)
    )


class InceptionA(nn.Module):
    """35x35x384 -> 35x35x384: 1x1 | 1x1-3x3 | 1x1-3x3-3x3 | avgpool-1x1, 96 each."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _conv(384, 96, 1)
        self.branch1 = nn.Sequential(_conv(384, 64, 1), _conv(64, 96, 3, p=1))
        self.branch2 = nn.Sequential(
            _conv(384, 64, 1), _conv(64, 96, 3, p=1), _conv(96, 96, 3, p=1)
        )
        self.branch3 = _avg_proj(384, 96)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class ReductionA(nn.Module):
    """35x35x384 -> 17x17x1024 (k, l, m, n = 192, 224, 256, 384)."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _conv(384, 384, 3, 2)
        self.branch1 = nn.Sequential(
            _conv(384, 192, 1), _conv(192, 224, 3, p=1), _conv(224, 256, 3, 2)
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class InceptionB(nn.Module):
    """17x17x1024 -> 17x17x1024 with 7x7 convs factorized into 1x7 and 7x1."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _conv(1024, 384, 1)
        self.branch1 = nn.Sequential(
            _conv(1024, 192, 1),
            _conv(192, 224, (1, 7), p=(0, 3)),
            _conv(224, 256, (7, 1), p=(3, 0)),
        )
        self.branch2 = nn.Sequential(
            _conv(1024, 192, 1),
            _conv(192, 192, (7, 1), p=(3, 0)),
            _conv(192, 224, (1, 7), p=(0, 3)),
            _conv(224, 224, (7, 1), p=(3, 0)),
            _conv(224, 256, (1, 7), p=(0, 3)),
        )
        self.branch3 = _avg_proj(1024, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class ReductionB(nn.Module):
    """17x17x1024 -> 8x8x1536."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(_conv(1024, 192, 1), _conv(192, 192, 3, 2))
        self.branch1 = nn.Sequential(
            _conv(1024, 256, 1),
            _conv(256, 256, (1, 7), p=(0, 3)),
            _conv(256, 320, (7, 1), p=(3, 0)),
            _conv(320, 320, 3, 2),
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class InceptionC(nn.Module):
    """8x8x1536 -> 8x8x1536; 3x3s split into parallel 1x3 and 3x1 outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _conv(1536, 256, 1)
        self.branch1_0 = _conv(1536, 384, 1)
        self.branch1_1a = _conv(384, 256, (1, 3), p=(0, 1))
        self.branch1_1b = _conv(384, 256, (3, 1), p=(1, 0))
        self.branch2_0 = _conv(1536, 384, 1)
        self.branch2_1 = _conv(384, 448, (3, 1), p=(1, 0))
        self.branch2_2 = _conv(448, 512, (1, 3), p=(0, 1))
        self.branch2_3a = _conv(512, 256, (1, 3), p=(0, 1))
        self.branch2_3b = _conv(512, 256, (3, 1), p=(1, 0))
        self.branch3 = _avg_proj(1536, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1_0(x)
        b2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat(
            [
                self.branch0(x),
                self.branch1_1a(b1),
                self.branch1_1b(b1),
                self.branch2_3a(b2),
                self.branch2_3b(b2),
                self.branch3(x),
            ],
            1,
        )


class InceptionV4(nn.Module):
    """Input (N, in_chans, H, W), H, W >= 75 (299 in the paper) -> logits (N, num_classes)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv(in_chans, 32, 3, 2),  # 299 -> 149
            _conv(32, 32, 3),  # -> 147
            _conv(32, 64, 3, p=1),
            Mixed3a(),  # -> 73x73x160
            Mixed4a(),  # -> 71x71x192
            Mixed5a(),  # -> 35x35x384
            *[InceptionA() for _ in range(4)],
            ReductionA(),  # -> 17x17x1024
            *[InceptionB() for _ in range(7)],
            ReductionB(),  # -> 8x8x1536
            *[InceptionC() for _ in range(3)],
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(1536, num_classes)
        he_init(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return self.last_linear(self.dropout(x))


@register_model(
    family="Inception",
    year=2016,
    paper="Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
    input_size=(3, 299, 299),
    params=42_679_816,
    result="ImageNet top-1 / top-5 error 20.0% / 5.0% (single crop); 3.08% top-5 in an ensemble",
    top1=80.0,
    top5=95.0,
    accuracy_source="Szegedy et al. 2016, table 2 (single crop, single model, 299x299)",
)
def inception_v4(num_classes: int = 1000, in_chans: int = 3, **options) -> InceptionV4:
    return InceptionV4(num_classes=num_classes, in_chans=in_chans, **options)
