"""All-CNN-C (Springenberg, Dosovitskiy, Brox, Riedmiller 2014, "Striving for Simplicity").

Max pooling replaced by 3x3 convs of stride 2, FC layers by 1x1 convs and global averaging:
a network of nothing but convolutions and ReLUs. On 32x32x3 (paper's Table 2, model C):
dropout 0.2 on the input; 3x3 96, 3x3 96, 3x3 96 stride 2 (-> 16x16); dropout 0.5;
3x3 192, 3x3 192, 3x3 192 stride 2 (-> 8x8); dropout 0.5; 3x3 192 unpadded (-> 6x6);
1x1 192; 1x1 C; global average pool. 1,369,738 parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ._init import he_init
from ._registry import register_model


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, padding: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=padding), nn.ReLU(inplace=True)]


class AllConvNet(nn.Module):
    """Input (N, in_chans, H, W), H, W >= 9 (32 in the paper) -> logits (N, num_classes)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        input_dropout: float = 0.2,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.features = nn.Sequential(
            nn.Dropout(input_dropout),
            *_conv(in_chans, 96),
            *_conv(96, 96),
            *_conv(96, 96, stride=2),  # replaces a 3x3/2 max pool
            nn.Dropout(dropout),
            *_conv(96, 192),
            *_conv(192, 192),
            *_conv(192, 192, stride=2),
            nn.Dropout(dropout),
            *_conv(192, 192, padding=0),
            *_conv(192, 192, k=1, padding=0),
            *_conv(192, num_classes, k=1, padding=0),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)


@register_model(
    family="All-CNN",
    year=2014,
    paper="Striving for Simplicity: The All Convolutional Net",
    input_size=(3, 32, 32),
    params=1_369_738,
    result="CIFAR-10 test error 9.08% (7.25% with augmentation)",
    num_classes=10,
)
def allconv(num_classes: int = 10, in_chans: int = 3, **options) -> AllConvNet:
    return AllConvNet(num_classes=num_classes, in_chans=in_chans, **options)
