"""AlexNet (Krizhevsky, Sutskever, Hinton 2012), in torchvision's single-GPU layout.

Five conv layers (11x11/4, 5x5, 3x3 x3) with max pools, then three FC layers with dropout 0.5.
State-dict keys and shapes are exactly torchvision's, so its weight files load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ._init import he_init
from ._registry import register_model


class AlexNet(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


@register_model(
    family="AlexNet", year=2012, paper="ImageNet Classification with Deep Convolutional Neural Networks",
    params=61_100_840, result="ILSVRC-2012 top-5 error 15.3% (7-net ensemble)", torchvision_keys=True,
)
def alexnet(num_classes: int = 1000, in_chans: int = 3, **options) -> AlexNet:
    return AlexNet(num_classes=num_classes, in_chans=in_chans, **options)
