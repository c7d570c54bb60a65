"""DenseNet (Huang, Liu, van der Maaten, Weinberger 2017), with torchvision's keys.

Inside a dense block every layer gets the concatenation of all earlier feature maps and adds
k (the growth rate) new ones: layer l sees k_0 + (l - 1) k channels. Each layer is
BN -> ReLU -> 1x1 conv (4k, the bottleneck) -> BN -> ReLU -> 3x3 conv (k). Between blocks a
transition (BN -> ReLU -> 1x1 conv halving the channels -> 2x2 average pool) shrinks the maps.

torchvision's published files predate its current names and spell the dense layers'
``norm1``/``relu1``/``conv1`` as ``norm.1``/``relu.1``/``conv.1``; ``adapt_state_dict`` maps
those keys (``load_weights`` calls it), and files without BN's ``num_batches_tracked`` load too.
``memory_efficient=True`` recomputes the concatenation + bottleneck in the backward pass
(gradient checkpointing) instead of storing it: the same numbers, much less activation memory.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp

from ._init import he_init
from ._registry import register_model

_LEGACY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class _DenseLayer(nn.Module):
    def __init__(
        self,
        in_features: int,
        growth_rate: int,
        bn_size: int,
        drop_rate: float,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_features)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_features, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False
        )
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def _bottleneck(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and self.training and any(t.requires_grad for t in inputs):
            bottleneck = cp.checkpoint(self._bottleneck, *inputs, use_reentrant=False)
        else:
            bottleneck = self._bottleneck(*inputs)
        out = self.conv2(self.relu2(self.norm2(bottleneck)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class _DenseBlock(nn.ModuleDict):
    def __init__(
        self,
        num_layers: int,
        in_features: int,
        bn_size: int,
        growth_rate: int,
        drop_rate: float,
        memory_efficient: bool,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = _DenseLayer(
                in_features + i * growth_rate, growth_rate, bn_size, drop_rate, memory_efficient
            )
            self.add_module(f"denselayer{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class _Transition(nn.Sequential):
    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_features)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNet(nn.Module):
    """Input (N, in_chans, H, W), H, W >= 32 (224 in the paper) -> logits (N, num_classes)."""

    def __init__(
        self,
        growth_rate: int = 32,
        block_config: tuple[int, int, int, int] = (6, 12, 24, 16),
        num_init_features: int = 64,
        bn_size: int = 4,
        drop_rate: float = 0.0,
        num_classes: int = 1000,
        in_chans: int = 3,
        memory_efficient: bool = False,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                [
                    (
                        "conv0",
                        nn.Conv2d(
                            in_chans,
                            num_init_features,
                            kernel_size=7,
                            stride=2,
                            padding=3,
                            bias=False,
                        ),
                    ),
                    ("norm0", nn.BatchNorm2d(num_init_features)),
                    ("relu0", nn.ReLU(inplace=True)),
                    ("pool0", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                ]
            )
        )
        c = num_init_features
        for i, num_layers in enumerate(block_config):
            block = _DenseBlock(num_layers, c, bn_size, growth_rate, drop_rate, memory_efficient)
            self.features.add_module(f"denseblock{i + 1}", block)
            c += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", _Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, num_classes)
        he_init(self, linear_std=None)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.features(x), inplace=True)
        x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
        return self.classifier(x)

    @staticmethod
    def adapt_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename legacy dense-layer keys: ``...denselayer1.norm.1.weight`` -> ``...denselayer1.norm1.weight``."""
        out = {}
        for key, value in state.items():
            m = _LEGACY.match(key)
            out[m.group(1) + m.group(2) if m else key] = value
        return out


def _densenet(
    growth: int,
    blocks: tuple[int, int, int, int],
    init: int,
    num_classes: int,
    in_chans: int,
    **options,
) -> DenseNet:
    return DenseNet(growth, blocks, init, num_classes=num_classes, in_chans=in_chans, **options)


_PAPER = "Densely Connected Convolutional Networks"


@register_model(
    family="DenseNet",
    year=2017,
    paper=_PAPER,
    params=7_978_856,
    torchvision_keys=True,
    result="ImageNet top-1 / top-5 error 25.02% / 7.71% (single crop)",
)
def densenet121(num_classes: int = 1000, in_chans: int = 3, **options) -> DenseNet:
    return _densenet(32, (6, 12, 24, 16), 64, num_classes, in_chans, **options)


@register_model(
    family="DenseNet",
    year=2017,
    paper=_PAPER,
    params=28_681_000,
    torchvision_keys=True,
    result="ImageNet top-1 / top-5 accuracy 77.14% / 93.56% (torchvision's weights, k=48)",
)
def densenet161(num_classes: int = 1000, in_chans: int = 3, **options) -> DenseNet:
    return _densenet(48, (6, 12, 36, 24), 96, num_classes, in_chans, **options)


@register_model(
    family="DenseNet",
    year=2017,
    paper=_PAPER,
    params=14_149_480,
    torchvision_keys=True,
    result="ImageNet top-1 / top-5 error 23.80% / 6.85% (single crop)",
)
def densenet169(num_classes: int = 1000, in_chans: int = 3, **options) -> DenseNet:
    return _densenet(32, (6, 12, 32, 32), 64, num_classes, in_chans, **options)


@register_model(
    family="DenseNet",
    year=2017,
    paper=_PAPER,
    params=20_013_928,
    torchvision_keys=True,
    result="ImageNet top-1 / top-5 error 22.58% / 6.34% (single crop)",
)
def densenet201(num_classes: int = 1000, in_chans: int = 3, **options) -> DenseNet:
    return _densenet(32, (6, 12, 48, 32), 64, num_classes, in_chans, **options)
