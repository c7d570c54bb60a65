"""LeNet-5 (LeCun, Bottou, Bengio, Haffner 1998), on 32x32x1 digits.

C1 6@5x5 -> S2 -> C3 16@5x5 -> S4 -> C5/F 120 -> F6 84 -> 10. ``lenet5`` connects C3 fully to
S2 (61,706 parameters) with ReLU and max pooling, the form people train today.

``lenet5_1998`` is the paper's own network: C3 reads S2 through the partial connection table of
Table I (1,516 parameters instead of 2,416), S2/S4 are trainable subsampling layers (a
coefficient and a bias per map), and every layer is squashed by f(a) = 1.7159 tanh(2a/3).
Up to F6 that is the paper's 60,000 trainable parameters exactly. The paper's output layer is
a set of Euclidean RBF units with fixed, hand-designed 7x12 bitmap codes; here it is a
trainable linear layer (84 * 10 + 10 = 850 parameters, 60,850 in all) so the model fits the
zoo's contract (any ``num_classes``, logits out, cross-entropy loss).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import LENET5_C3_TABLE, ConnectionTableConv2d, Subsampling2d
from ._init import he_init
from ._registry import register_model


class LeNet5(nn.Module):
    def __init__(
        self, num_classes: int = 10, in_chans: int = 1, activation: str = "relu", pool: str = "max"
    ):
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
    family="LeNet",
    year=1998,
    paper="Gradient-Based Learning Applied to Document Recognition",
    input_size=(1, 32, 32),
    params=61_706,
    result="MNIST test error 0.95%",
    num_classes=10,
)
def lenet5(num_classes: int = 10, in_chans: int = 1, **options) -> LeNet5:
    return LeNet5(num_classes=num_classes, in_chans=in_chans, **options)


class ScaledTanh(nn.Module):
    """LeCun's squashing function f(a) = A tanh(S a) with A = 1.7159, S = 2/3 (so f(+-1) = +-1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(x * (2.0 / 3.0))


class LeNet5Original(nn.Module):
    """LeNet-5 as in the 1998 paper (partial C3, trainable subsampling, scaled tanh)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 6, kernel_size=5),  # C1: 32 -> 28, 156 params
            ScaledTanh(),
            Subsampling2d(6),  # S2: 28 -> 14, 12 params
            ScaledTanh(),
            ConnectionTableConv2d(6, LENET5_C3_TABLE, kernel_size=5),  # C3: 14 -> 10, 1,516 params
            ScaledTanh(),
            Subsampling2d(16),  # S4: 10 -> 5, 32 params
            ScaledTanh(),
            nn.Conv2d(16, 120, kernel_size=5),  # C5: 5 -> 1, 48,120 params
            ScaledTanh(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(120, 84),  # F6: 10,164 params
            ScaledTanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model(
    family="LeNet",
    year=1998,
    paper="Gradient-Based Learning Applied to Document Recognition",
    input_size=(1, 32, 32),
    params=60_850,
    result="MNIST test error 0.95% (0.8% with distortions)",
    num_classes=10,
)
def lenet5_1998(num_classes: int = 10, in_chans: int = 1) -> LeNet5Original:
    return LeNet5Original(num_classes=num_classes, in_chans=in_chans)
