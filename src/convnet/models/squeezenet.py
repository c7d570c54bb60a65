"""SqueezeNet (Iandola et al. 2016): AlexNet-level accuracy with 50x fewer parameters.

Three ideas: replace most 3x3 filters by 1x1, squeeze the channels entering the 3x3s (Fire
modules, layers/fire.py), and downsample late so the convs work on large maps. No FC layers:
a final 1x1 conv to num_classes maps, ReLU, global average pool. Keys as torchvision's.
v1.1 starts with a 3x3 conv of 64 and pools earlier: 2.4x less computation, same accuracy.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import Fire
from ._init import he_init
from ._registry import register_model


class SqueezeNet(nn.Module):
    """Input (N, in_chans, H, W), H, W >= 32 (224 in the paper) -> logits (N, num_classes)."""

    def __init__(
        self, version: str = "1_0", num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        pool = lambda: nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)  # noqa: E731
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(in_chans, 96, kernel_size=7, stride=2),
                nn.ReLU(inplace=True),
                pool(),
                Fire(96, 16, 64, 64),
                Fire(128, 16, 64, 64),
                Fire(128, 32, 128, 128),
                pool(),
                Fire(256, 32, 128, 128),
                Fire(256, 48, 192, 192),
                Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256),
                pool(),
                Fire(512, 64, 256, 256),
            )
        elif version == "1_1":
            self.features = nn.Sequential(
                nn.Conv2d(in_chans, 64, kernel_size=3, stride=2),
                nn.ReLU(inplace=True),
                pool(),
                Fire(64, 16, 64, 64),
                Fire(128, 16, 64, 64),
                pool(),
                Fire(128, 32, 128, 128),
                Fire(256, 32, 128, 128),
                pool(),
                Fire(256, 48, 192, 192),
                Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256),
                Fire(512, 64, 256, 256),
            )
        else:
            raise ValueError(f"SqueezeNet version must be '1_0' or '1_1', got {version!r}")
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
        )
        he_init(self)
        nn.init.normal_(final_conv.weight, mean=0.0, std=0.01)  # small scores at the start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


_PAPER = "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size"


@register_model(
    family="SqueezeNet",
    year=2016,
    paper=_PAPER,
    params=1_248_424,
    torchvision_keys=True,
    result="ImageNet top-1 / top-5 accuracy 57.5% / 80.3% (AlexNet's with 50x fewer parameters)",
)
def squeezenet1_0(num_classes: int = 1000, in_chans: int = 3, **options) -> SqueezeNet:
    return SqueezeNet("1_0", num_classes, in_chans, **options)


@register_model(
    family="SqueezeNet",
    year=2016,
    paper=_PAPER,
    params=1_235_496,
    torchvision_keys=True,
    result="SqueezeNet 1.0's accuracy with 2.4x less computation",
)
def squeezenet1_1(num_classes: int = 1000, in_chans: int = 3, **options) -> SqueezeNet:
    return SqueezeNet("1_1", num_classes, in_chans, **options)
