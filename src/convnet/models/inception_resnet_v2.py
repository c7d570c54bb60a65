"""Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke, Alemi 2016), with timm's keys.

The notes' "Inception + ResNet": Inception modules whose concatenated branches, projected back
to the input width by a 1x1 conv (with bias, no BN), are *added* to the input, then ReLU:
    y = relu(x + s * conv1x1([b_0(x), b_1(x), ...]))
The paper found very wide residual Inception nets died early in training unless each residual
was scaled down before the addition (s between 0.1 and 0.3; here 0.17, 0.10 and 0.20 per grid).

299x299x3 -> stem (as Inception-v3's) 35x35x192 -> Mixed_5b 35x35x320 -> 10 x Block35 ->
Mixed_6a 17x17x1088 -> 20 x Block17 -> Mixed_7a 8x8x2080 -> 9 x Block8 and one without ReLU ->
1x1 conv 1536 -> global average pool -> dropout -> FC. 55,843,464 parameters; every conv but
the residual projections is conv (no bias) -> BN (eps 0.001) -> ReLU. Unpadded convs need an
input of at least 75x75.

The state dict has timm's keys and shapes (``conv2d_1a.conv.weight`` ... ``classif.bias``), so a
timm ``inception_resnet_v2`` file loads unchanged; its weights expect inputs scaled to [-1, 1].
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


class Mixed5b(nn.Module):
    """35x35x192 -> 35x35x320: 1x1 96 | 1x1 48 -> 5x5 64 | 1x1 64 -> 3x3 96 -> 3x3 96 | pool 64."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _conv(192, 96, 1)
        self.branch1 = nn.Sequential(_conv(192, 48, 1), _conv(48, 64, 5, p=2))
        self.branch2 = nn.Sequential(
            _conv(192, 64, 1), _conv(64, 96, 3, p=1), _conv(96, 96, 3, p=1)
        )
        self.branch3 = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), _conv(192, 64, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class _Residual(nn.Module):
    """relu(x + scale * conv2d(cat(branches))); subclasses set the branches and ``conv2d``."""

    conv2d: nn.Conv2d

    def __init__(self, scale: float, relu: bool = True) -> None:
        super().__init__()
        self.scale = scale
        self.relu = nn.ReLU(inplace=True) if relu else None

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        names = sorted(n for n, _ in self.named_children() if n.startswith("branch"))
        return [getattr(self, n)(x) for n in names]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x + self.scale * self.conv2d(torch.cat(self.branches(x), 1))
        return self.relu(out) if self.relu is not None else out


class Block35(_Residual):
    """Inception-ResNet-A on 35x35x320: 1x1 32 | 1x1 32 -> 3x3 32 | 1x1 32 -> 3x3 48 -> 3x3 64."""

    def __init__(self, scale: float = 0.17) -> None:
        super().__init__(scale)
        self.branch0 = _conv(320, 32, 1)
        self.branch1 = nn.Sequential(_conv(320, 32, 1), _conv(32, 32, 3, p=1))
        self.branch2 = nn.Sequential(
            _conv(320, 32, 1), _conv(32, 48, 3, p=1), _conv(48, 64, 3, p=1)
        )
        self.conv2d = nn.Conv2d(128, 320, 1)


class Block17(_Residual):
    """Inception-ResNet-B on 17x17x1088: 1x1 192 | 1x1 128 -> 1x7 160 -> 7x1 192."""

    def __init__(self, scale: float = 0.10) -> None:
        super().__init__(scale)
        self.branch0 = _conv(1088, 192, 1)
        self.branch1 = nn.Sequential(
            _conv(1088, 128, 1),
            _conv(128, 160, (1, 7), p=(0, 3)),
            _conv(160, 192, (7, 1), p=(3, 0)),
        )
        self.conv2d = nn.Conv2d(384, 1088, 1)


class Block8(_Residual):
    """Inception-ResNet-C on 8x8x2080: 1x1 192 | 1x1 192 -> 1x3 224 -> 3x1 256."""

    def __init__(self, scale: float = 0.20, relu: bool = True) -> None:
        super().__init__(scale, relu)
        self.branch0 = _conv(2080, 192, 1)
        self.branch1 = nn.Sequential(
            _conv(2080, 192, 1),
            _conv(192, 224, (1, 3), p=(0, 1)),
            _conv(224, 256, (3, 1), p=(1, 0)),
        )
        self.conv2d = nn.Conv2d(448, 2080, 1)


class Mixed6a(nn.Module):
    """Reduction-A, 35x35x320 -> 17x17x1088: 3x3/2 384 | 1x1 256 -> 3x3 256 -> 3x3/2 384 | pool."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _conv(320, 384, 3, 2)
        self.branch1 = nn.Sequential(
            _conv(320, 256, 1), _conv(256, 256, 3, p=1), _conv(256, 384, 3, 2)
        )
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class Mixed7a(nn.Module):
    """Reduction-B, 17x17x1088 -> 8x8x2080: conv branches ending 3x3/2 (384, 288, 320) | pool."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(_conv(1088, 256, 1), _conv(256, 384, 3, 2))
        self.branch1 = nn.Sequential(_conv(1088, 256, 1), _conv(256, 288, 3, 2))
        self.branch2 = nn.Sequential(
            _conv(1088, 256, 1), _conv(256, 288, 3, p=1), _conv(288, 320, 3, 2)
        )
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionResNetV2(nn.Module):
    """Input (N, in_chans, H, W), H, W >= 75 (299 in the paper) -> logits (N, num_classes)."""

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv2d_1a = _conv(in_chans, 32, 3, 2)  # 299 -> 149
        self.conv2d_2a = _conv(32, 32, 3)  # -> 147
        self.conv2d_2b = _conv(32, 64, 3, p=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)  # -> 73
        self.conv2d_3b = _conv(64, 80, 1)
        self.conv2d_4a = _conv(80, 192, 3)  # -> 71
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)  # -> 35
        self.mixed_5b = Mixed5b()
        self.repeat = nn.Sequential(*[Block35(0.17) for _ in range(10)])
        self.mixed_6a = Mixed6a()  # -> 17x17x1088
        self.repeat_1 = nn.Sequential(*[Block17(0.10) for _ in range(20)])
        self.mixed_7a = Mixed7a()  # -> 8x8x2080
        self.repeat_2 = nn.Sequential(*[Block8(0.20) for _ in range(9)])
        self.block8 = Block8(1.0, relu=False)
        self.conv2d_7b = _conv(2080, 1536, 1)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)  # the paper's "keep 0.8"
        self.classif = nn.Linear(1536, num_classes)
        he_init(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b"):
            x = getattr(self, name)(x)
        x = self.mixed_5b(self.maxpool_5a(self.conv2d_4a(x)))
        x = self.repeat_1(self.mixed_6a(self.repeat(x)))
        x = self.block8(self.repeat_2(self.mixed_7a(x)))
        x = torch.flatten(self.global_pool(self.conv2d_7b(x)), 1)
        return self.classif(self.dropout(x))


@register_model(
    family="Inception",
    year=2016,
    paper="Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
    input_size=(3, 299, 299),
    params=55_843_464,
    result="ImageNet top-1 / top-5 error 19.9% / 4.9% (single crop); 3.08% top-5 in an ensemble",
    top1=80.1,
    top5=95.1,
    accuracy_source="Szegedy et al. 2016, table 2 (single crop, single model, 299x299)",
    timm_keys=True,
)
def inception_resnet_v2(num_classes: int = 1000, in_chans: int = 3, **options) -> InceptionResNetV2:
    return InceptionResNetV2(num_classes=num_classes, in_chans=in_chans, **options)
