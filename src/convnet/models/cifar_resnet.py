"""The CIFAR-10 ResNets of He et al. 2015 (section 4.2): depth 6n + 2, three stages of n blocks.

32x32 input -> 3x3 conv 16 -> n basic blocks at 32x32x16, n at 16x16x32, n at 8x8x64 -> global
average pool -> FC. Where a block halves the size and doubles the width, the shortcut is
option A (the paper's choice here): subsample by 2 and append zero channels, no parameters;
or option B: a 1x1 stride-2 projection with batch norm. ``shortcut="none"`` removes every
shortcut: the paper's plain net of the same depth (plain.py registers plain20..plain110).
``stochastic_depth=p_L`` drops residual branches in training with survival decaying linearly
to p_L (Huang et al. 2016 use 0.5 and report ResNet-110 at 5.25% error on CIFAR-10,
ResNet-1202 at 4.91%).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConvnetError
from ..layers import DropPath, linear_survival
from ._init import he_init
from ._registry import register_model


class ZeroPadShortcut(nn.Module):
    """Option A: x[:, :, ::s, ::s] followed by (out - in) zero channels."""

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        self.extra, self.stride = out_planes - in_planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra))


class CifarBasicBlock(nn.Module):
    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int = 1,
        shortcut: str = "A",
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.shortcut: nn.Module | None = None if shortcut == "none" else nn.Identity()
        if shortcut != "none" and (stride != 1 or in_planes != planes):
            if shortcut == "A":
                self.shortcut = ZeroPadShortcut(in_planes, planes, stride)
            elif shortcut == "B":
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )
            else:
                raise ConvnetError(
                    f"shortcut={shortcut!r}: use 'A' (zero padding), 'B' (projection) or 'none' "
                    "(the plain net)"
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.drop_path is not None:
            out = self.drop_path(out)
        if self.shortcut is not None:  # a plain block (shortcut="none") is relu(F(x)) alone
            out = out + self.shortcut(x)
        return self.relu(out)


class CifarResNet(nn.Module):
    """Input (N, in_chans, H, W) with H, W >= 4 (32 in the paper) -> logits (N, num_classes)."""

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_chans: int = 3,
        shortcut: str = "A",
        stochastic_depth: float | None = None,
    ) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        if shortcut == "none" and stochastic_depth is not None:
            raise ConvnetError(
                "stochastic_depth drops residual branches, but shortcut='none' leaves none: a "
                "dropped plain block would zero the signal; remove one of the two options"
            )
        survival = (
            linear_survival(3 * n, stochastic_depth)
            if stochastic_depth is not None
            else [1.0] * (3 * n)
        )
        drops = iter(1.0 - p for p in survival)
        self.conv1 = nn.Conv2d(in_chans, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(
                    CifarBasicBlock(
                        in_planes, planes, stride if i == 0 else 1, shortcut, next(drops)
                    )
                )
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        he_init(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


_PAPER = "Deep Residual Learning for Image Recognition"
# depth: (params with option A, CIFAR-10 test error of the paper's Table 6)
_DEPTHS = {
    20: (269_722, "8.75%"),
    32: (464_154, "7.51%"),
    44: (658_586, "7.17%"),
    56: (853_018, "6.97%"),
    110: (1_727_962, "6.43% (best of 5; 6.61 +- 0.16)"),
    1202: (19_421_274, "7.93% (overfits: deeper is not better here)"),
}


def _register_all() -> None:
    for depth, (params, err) in _DEPTHS.items():

        def builder(
            num_classes: int = 10, in_chans: int = 3, _depth=depth, **options
        ) -> CifarResNet:
            return CifarResNet(_depth, num_classes, in_chans, **options)

        name = f"resnet{depth}"
        builder.__name__ = builder.__qualname__ = name
        builder.__doc__ = f"CIFAR ResNet-{depth} (n = {(depth - 2) // 6}); shortcut='A' or 'B'."
        register_model(
            family="ResNet (CIFAR)",
            year=2015,
            paper=_PAPER,
            input_size=(3, 32, 32),
            params=params,
            result=f"CIFAR-10 test error {err}",
            num_classes=10,
            name=name,
        )(builder)
        globals()[name] = builder


_register_all()
