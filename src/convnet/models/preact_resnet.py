"""Pre-activation ResNets (He, Zhang, Ren, Sun 2016, "Identity Mappings in Deep Residual Networks").

Moving BN and ReLU before each conv (BN -> ReLU -> conv, twice) leaves the shortcut path a pure
identity from any block to any later one, so signals and gradients propagate directly; this
trained a 1001-layer net on CIFAR-10 to 4.92% error. Basic blocks for depth 6n + 2 (16/32/64
channels); bottleneck blocks (1x1 -> 3x3 -> 1x1, x4) for depth 9n + 2 (64/128/256 channels).
Where the shape changes, the shortcut is a 1x1 projection of the pre-activated input.
The final BN -> ReLU comes after the last block, before global average pooling.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import DropPath, linear_survival
from ._init import he_init
from ._registry import register_model


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=False)  # the pre-activated input also feeds the projection
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv2(self.relu(self.bn2(self.conv1(pre))))
        if self.drop_path is not None:
            out = self.drop_path(out)
        return out + identity


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, in_planes: int, planes: int, stride: int = 1, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.relu = nn.ReLU(inplace=False)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.shortcut = None
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        if self.drop_path is not None:
            out = self.drop_path(out)
        return out + identity


class PreActResNet(nn.Module):
    """CIFAR pre-activation ResNet; input (N, in_chans, H, W), H, W >= 4 (32 in the paper)."""

    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_chans: int = 3,
        bottleneck: bool = False,
        stochastic_depth: float | None = None,
    ) -> None:
        super().__init__()
        block = PreActBottleneck if bottleneck else PreActBlock
        per = 9 if bottleneck else 6
        if (depth - 2) % per:
            raise ValueError(f"pre-activation ResNet depth must be {per}n + 2 here, got {depth}")
        n = (depth - 2) // per
        survival = (
            linear_survival(3 * n, stochastic_depth)
            if stochastic_depth is not None
            else [1.0] * (3 * n)
        )
        drops = iter(1.0 - p for p in survival)
        self.conv1 = nn.Conv2d(in_chans, 16, 3, padding=1, bias=False)
        stages, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for i in range(n):
                blocks.append(block(in_planes, planes, stride if i == 0 else 1, next(drops)))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        he_init(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        x = self.relu(self.bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


_PAPER = "Identity Mappings in Deep Residual Networks"
# name: (depth, bottleneck, params, CIFAR-10 test error in the paper)
_CONFIGS = {
    "preact_resnet20": (20, False, 272_282, ""),
    "preact_resnet56": (56, False, 855_578, ""),
    "preact_resnet110": (110, False, 1_730_522, "CIFAR-10 test error 6.37%"),
    "preact_resnet164": (164, True, 1_703_258, "CIFAR-10 / CIFAR-100 test error 5.46% / 24.33%"),
    "preact_resnet1001": (1001, True, 10_327_706, "CIFAR-10 / CIFAR-100 test error 4.92% / 22.71%"),
}


def _register_all() -> None:
    for name, (depth, bottleneck, params, result) in _CONFIGS.items():

        def builder(
            num_classes: int = 10, in_chans: int = 3, _d=depth, _b=bottleneck, **options
        ) -> PreActResNet:
            return PreActResNet(_d, num_classes, in_chans, bottleneck=_b, **options)

        builder.__name__ = builder.__qualname__ = name
        builder.__doc__ = (
            f"Pre-activation ResNet-{depth} for CIFAR ({'bottleneck' if bottleneck else 'basic'})."
        )
        register_model(
            family="PreAct ResNet",
            year=2016,
            paper=_PAPER,
            input_size=(3, 32, 32),
            params=params,
            result=result
            or "not reported in the paper (pre-activation ResNet-110: CIFAR-10 error 6.37%)",
            num_classes=10,
            name=name,
        )(builder)
        globals()[name] = builder


_register_all()
