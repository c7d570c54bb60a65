"""ResNet (He, Zhang, Ren, Sun 2015) for ImageNet, with torchvision's keys; ResNeXt; Wide ResNet-50.

A residual block learns F(x) and outputs relu(F(x) + x): with the identity as the default,
depth stops hurting optimization (seed 003, figure 3.8). BasicBlock is two 3x3 convs;
Bottleneck is 1x1 (reduce) -> 3x3 -> 1x1 (expand x4), which makes 50+ layers affordable.
The stride-2 of a downsampling bottleneck sits on the 3x3 conv (torchvision, "ResNet v1.5");
``stride_in_1x1=True`` puts it on the first 1x1 as in the paper (same parameters).

Options (all builders): ``stochastic_depth=p_L`` keeps block l's residual branch with
probability p_l = 1 - l/L (1 - p_L) in training (Huang et al. 2016 use p_L = 0.5) and uses the
full depth at test; ``zero_init_residual`` starts each block as the identity;
``se_reduction`` adds squeeze-and-excitation (see senet.py); ``shortcut="none"`` drops every
shortcut, identity and projection alike, leaving the paper's plain net (see plain.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConvnetError
from ..layers import DropPath, SqueezeExcite, linear_survival
from ._init import he_init
from ._registry import register_model


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        in_planes, out_planes, kernel_size=3, stride=stride, padding=1, groups=groups, bias=False
    )


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        *,
        drop_path: float = 0.0,
        se_reduction: int | None = None,
        stride_in_1x1: bool = False,
        residual: bool = True,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock supports only groups=1 and base_width=64 (use Bottleneck)")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SqueezeExcite(planes, se_reduction) if se_reduction else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.downsample = downsample
        self.residual = residual  # False: a plain block, relu(F(x)) with no shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        groups: int = 1,
        base_width: int = 64,
        *,
        drop_path: float = 0.0,
        se_reduction: int | None = None,
        stride_in_1x1: bool = False,
        residual: bool = True,
    ) -> None:
        super().__init__()
        # ResNeXt: `groups` paths of `base_width` channels each (32x4d: 32 groups of 4 at planes=64)
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width, stride if stride_in_1x1 else 1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, 1 if stride_in_1x1 else stride, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.se = SqueezeExcite(planes * self.expansion, se_reduction) if se_reduction else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else None
        self.downsample = downsample
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


class ResNet(nn.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool), four stages at 1/4..1/32 resolution, global pool, FC.

    Input (N, in_chans, H, W) -> logits (N, num_classes); any H, W >= 32 works.
    """

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
        in_chans: int = 3,
        *,
        groups: int = 1,
        width_per_group: int = 64,
        zero_init_residual: bool = False,
        stochastic_depth: float | None = None,
        se_reduction: int | None = None,
        stride_in_1x1: bool = False,
        shortcut: str = "B",
    ) -> None:
        super().__init__()
        _check_plain(shortcut, stochastic_depth, zero_init_residual)
        self.inplanes = 64
        self.groups, self.base_width = groups, width_per_group
        total = sum(layers)
        survival = (
            linear_survival(total, stochastic_depth)
            if stochastic_depth is not None
            else [1.0] * total
        )
        drops = iter(1.0 - p for p in survival)  # consumed block by block, stage by stage
        extra = {
            "se_reduction": se_reduction,
            "stride_in_1x1": stride_in_1x1,
            "residual": shortcut == "B",
        }
        self.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1, drops, extra)
        self.layer2 = self._make_layer(block, 128, layers[1], 2, drops, extra)
        self.layer3 = self._make_layer(block, 256, layers[2], 2, drops, extra)
        self.layer4 = self._make_layer(block, 512, layers[3], 2, drops, extra)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        he_init(self, linear_std=None)  # kaiming fan_out for convs; nn.Linear keeps its default
        if zero_init_residual:  # each block starts as the identity (Goyal et al. 2017)
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(
        self,
        block: type[BasicBlock | Bottleneck],
        planes: int,
        blocks: int,
        stride: int,
        drops: Iterator[float],
        extra: dict[str, Any],
    ) -> nn.Sequential:
        downsample = None
        if extra["residual"] and (stride != 1 or self.inplanes != planes * block.expansion):
            # projection shortcut (the paper's option B) where the shape changes
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = []
        for i in range(blocks):
            layers.append(
                block(
                    self.inplanes,
                    planes,
                    stride if i == 0 else 1,
                    downsample if i == 0 else None,
                    self.groups,
                    self.base_width,
                    drop_path=next(drops),
                    **extra,
                )
            )
            self.inplanes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _check_plain(shortcut: str, stochastic_depth: float | None, zero_init_residual: bool) -> None:
    """Refuse options that only make sense with shortcuts (a user's mistake, in one line)."""
    if shortcut not in ("B", "none"):
        raise ConvnetError(
            f"shortcut={shortcut!r}: the ImageNet ResNet takes 'B' (projection where the shape "
            "changes, torchvision's) or 'none' (the paper's plain net)"
        )
    if shortcut == "none" and stochastic_depth is not None:
        raise ConvnetError(
            "stochastic_depth drops residual branches, but shortcut='none' leaves none: a dropped "
            "plain block would zero the signal; remove one of the two options"
        )
    if shortcut == "none" and zero_init_residual:
        raise ConvnetError(
            "zero_init_residual starts each block as the identity through its shortcut; with "
            "shortcut='none' it would zero every block's output; remove one of the two options"
        )


_PAPER = "Deep Residual Learning for Image Recognition"
_TV_V1 = "torchvision IMAGENET1K_V1 weights (224 crop)"


@register_model(
    family="ResNet",
    year=2015,
    paper=_PAPER,
    params=11_689_512,
    result="ImageNet top-1 error 27.88% (10-crop)",
    torchvision_keys=True,
    top1=69.758,  # single 224 crop, as the other cards (the paper's are 10-crop)
    top5=89.078,
    accuracy_source=_TV_V1,
)
def resnet18(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, **options)


@register_model(
    family="ResNet",
    year=2015,
    paper=_PAPER,
    params=21_797_672,
    result="ImageNet top-1 / top-5 error 25.03% / 7.76% (10-crop)",
    torchvision_keys=True,
    top1=73.314,  # single 224 crop, as the other cards (the paper's are 10-crop)
    top5=91.42,
    accuracy_source=_TV_V1,
)
def resnet34(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_chans, **options)


@register_model(
    family="ResNet",
    year=2015,
    paper=_PAPER,
    params=25_557_032,
    result="ImageNet top-1 / top-5 error 22.85% / 6.71% (10-crop)",
    torchvision_keys=True,
    top1=76.13,  # single 224 crop, as the other cards (the paper's are 10-crop)
    top5=92.862,
    accuracy_source=_TV_V1,
)
def resnet50(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, **options)


@register_model(
    family="ResNet",
    year=2015,
    paper=_PAPER,
    params=44_549_160,
    result="ImageNet top-1 / top-5 error 21.75% / 6.05% (10-crop)",
    torchvision_keys=True,
    top1=77.374,  # single 224 crop, as the other cards (the paper's are 10-crop)
    top5=93.546,
    accuracy_source=_TV_V1,
)
def resnet101(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, **options)


@register_model(
    family="ResNet",
    year=2015,
    paper=_PAPER,
    params=60_192_808,
    result="ILSVRC-2015 winner: top-5 error 3.57% (ensemble); 4.49% single model",
    torchvision_keys=True,
    top1=78.312,  # single 224 crop, as the other cards (the paper's are 10-crop)
    top5=94.046,
    accuracy_source=_TV_V1,
)
def resnet152(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, in_chans, **options)


@register_model(
    family="ResNeXt",
    year=2016,
    paper="Aggregated Residual Transformations for Deep Neural Networks",
    params=25_028_904,
    result="ImageNet top-1 error 22.2% (224, single crop)",
    torchvision_keys=True,
)
def resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    return ResNet(
        Bottleneck, [3, 4, 6, 3], num_classes, in_chans, groups=32, width_per_group=4, **options
    )


@register_model(
    family="WideResNet",
    year=2016,
    paper="Wide Residual Networks",
    params=68_883_240,
    result="ImageNet top-1 / top-5 error 21.9% / 6.03% (WRN-50-2-bottleneck)",
    torchvision_keys=True,
)
def wide_resnet50_2(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    # the bottleneck's inner width doubles (128..1024); its output width is ResNet-50's
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, width_per_group=128, **options)


_RESNEXT = "Aggregated Residual Transformations for Deep Neural Networks"


@register_model(
    family="ResNeXt",
    year=2016,
    paper=_RESNEXT,
    params=88_791_336,
    result="ImageNet top-1 / top-5 error 20.7% / 5.5% with torchvision's weights (224, 1 crop)",
    torchvision_keys=True,
    top1=79.312,
    top5=94.526,
    accuracy_source=_TV_V1,  # the paper has no 32x8d row; 101-32x4d: 21.2% top-1 error
)
def resnext101_32x8d(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    # cardinality 32, 8 channels per path: twice ResNeXt-101 32x4d's inner width
    return ResNet(
        Bottleneck, [3, 4, 23, 3], num_classes, in_chans, groups=32, width_per_group=8, **options
    )


@register_model(
    family="ResNeXt",
    year=2016,
    paper=_RESNEXT,
    params=83_455_272,
    result="ImageNet top-1 / top-5 error 20.4% / 5.3% (224, single crop; the paper's table 4)",
    torchvision_keys=True,
    top1=79.6,
    top5=94.7,
    accuracy_source="Xie et al. 2016, table 4 (224x224 single crop)",
)
def resnext101_64x4d(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    # the paper's "2x complexity" model: cardinality 64 of 4 channels (inner width 256 at stage 1)
    return ResNet(
        Bottleneck, [3, 4, 23, 3], num_classes, in_chans, groups=64, width_per_group=4, **options
    )


@register_model(
    family="WideResNet",
    year=2016,
    paper="Wide Residual Networks",
    params=126_886_696,
    result="ImageNet top-1 / top-5 error 21.2% / 5.7% with torchvision's weights (224, 1 crop)",
    torchvision_keys=True,
    top1=78.848,
    top5=94.284,
    accuracy_source=_TV_V1,
)
def wide_resnet101_2(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    # ResNet-101 with every bottleneck's inner width doubled (128..1024); outputs as ResNet-101
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_chans, width_per_group=128, **options)
