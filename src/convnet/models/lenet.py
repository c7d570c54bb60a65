"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998), on 32x32x1 digits.

C1 6@5x5 -> S2 -> C3 16@5x5 -> S4 -> C5/F 120 -> F6 84 -> 10. ``lenet5`` connects C3 fully to
S2 (61,706 parameters) with ReLU and max pooling, the form people train today.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ._init import he_init
from ._registry import register_model


class LeNet5(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 1, activation: str = "relu", pool: str = "max"):
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        pool_layer = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}[pool]
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5),  # 32 -> 28
            act(),
            pool_layer(2, 2),  # 28 -> 14
            nn.Conv2d(6, 16, kernel_size=5),  # 14 -> 10
            act(),
            pool_layer(2, 2),  # 10 -> 5
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            act(),
            nn.Linear(120, 84),
            act(),
            nn.Linear(84, num_classes),
        )
        he_init(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(
    family="LeNet", year=1998, paper="Gradient-Based Learning Applied to Document Recognition",
    input_size=(1, 32, 32), params=61_706, result="MNIST test error 0.95%", num_classes=10,
)
def lenet5(num_classes: int = 10, in_chans: int = 1, **options) -> LeNet5:
    return LeNet5(num_classes=num_classes, in_chans=in_chans, **options)
