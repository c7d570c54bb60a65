"""VGG (Simonyan & Zisserman 2014), configurations A, B, D, E as a table, torchvision's keys.

Every conv is 3x3, stride 1, pad 1 (keeps the size); every pool is 2x2, stride 2 (halves it).
Most of VGG-16's 138M parameters sit in the first FC layer: 7*7*512*4096 = 102,760,448.
"""

from __future__ import annotations

import torch.nn as nn

from ._fc_head import FeaturesPoolClassifier, fc_head
from ._init import he_init
from ._registry import register_model

# Filter counts per conv, "M" for a 2x2 max pool (the paper's Table 1).
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}


def make_layers(cfg: list[int | str], in_chans: int = 3, batch_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = in_chans
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(c, int(v), kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(v)))
            layers.append(nn.ReLU(inplace=True))
            c = int(v)
    return nn.Sequential(*layers)


class VGG(FeaturesPoolClassifier):
    def __init__(self, features: nn.Sequential, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = fc_head(512 * 7 * 7, num_classes, dropout)
        he_init(self)


def _vgg(cfg: str, batch_norm: bool, num_classes: int, in_chans: int, **options) -> VGG:
    return VGG(make_layers(CONFIGS[cfg], in_chans, batch_norm), num_classes=num_classes, **options)


_PAPER = "Very Deep Convolutional Networks for Large-Scale Image Recognition"
_COUNTS = {  # (plain, with batch norm)
    "vgg11": ("A", 132_863_336, 132_868_840, "top-5 10.4% (single net, multi-scale eval)"),
    "vgg13": ("B", 133_047_848, 133_053_736, "top-5 9.9%"),
    "vgg16": (
        "D",
        138_357_544,
        138_365_992,
        "ILSVRC-2014 2nd; top-5 8.8% single net, 7.3% ensemble",
    ),
    "vgg19": ("E", 143_667_240, 143_678_248, "top-5 9.0%"),
}
# Single 224 crop top-1 / top-5 (%) of torchvision's IMAGENET1K_V1 weights, whose keys ours share:
# the paper gives no single-crop top-1 for the 224 centre crop the other cards use.
_ACCURACY = {
    "vgg11": (69.020, 88.628),
    "vgg11_bn": (70.370, 89.810),
    "vgg13": (69.928, 89.246),
    "vgg13_bn": (71.586, 90.374),
    "vgg16": (71.592, 90.382),
    "vgg16_bn": (73.360, 91.516),
    "vgg19": (72.376, 90.876),
    "vgg19_bn": (74.218, 91.842),
}


def _register_all() -> None:
    for name, (cfg, plain, bn, result) in _COUNTS.items():
        for suffix, batch_norm, count in (("", False, plain), ("_bn", True, bn)):

            def builder(
                num_classes: int = 1000, in_chans: int = 3, _cfg=cfg, _bn=batch_norm, **options
            ) -> VGG:
                return _vgg(_cfg, _bn, num_classes, in_chans, **options)

            builder.__name__ = builder.__qualname__ = name + suffix
            builder.__doc__ = f"VGG configuration {cfg}{' with batch norm' if batch_norm else ''}."
            register_model(
                family="VGG",
                year=2014,
                paper=_PAPER,
                params=count,
                result=result,
                torchvision_keys=True,
                name=name + suffix,
                top1=_ACCURACY[name + suffix][0],
                top5=_ACCURACY[name + suffix][1],
                accuracy_source="torchvision IMAGENET1K_V1 weights (224 crop)",
            )(builder)
            globals()[name + suffix] = builder


_register_all()
