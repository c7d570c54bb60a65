"""Network in Network (Lin, Chen, Yan 2013), the CIFAR-10 model.

Each "mlpconv" layer is a conv followed by two 1x1 convs (a small MLP slid over the image,
seed 003 figure 3.6), all with ReLU. The last mlpconv outputs one map per class and global
average pooling turns each map into that class's score: no FC layers (figure 3.7).
32x32x3 -> [5x5 192, 1x1 160, 1x1 96] -> 3x3/2 max pool -> dropout -> [5x5 192, 1x1 192,
1x1 192] -> 3x3/2 avg pool -> dropout -> [3x3 192, 1x1 192, 1x1 C] -> global avg pool.
966,986 parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ._init import he_init
from ._registry import register_model


def _mlpconv(cin: int, c: tuple[int, int, int], k: int, last_relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, c[0], k, padding=k // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(c[0], c[1], 1),
        nn.ReLU(inplace=True),
        nn.Conv2d(c[1], c[2], 1),
    ]
    if last_relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class NiN(nn.Module):
    """Input (N, in_chans, H, W), H, W >= 8 (32 in the paper) -> logits (N, num_classes)."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_mlpconv(in_chans, (192, 160, 96), 5),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),  # 32 -> 16
            nn.Dropout(dropout),
            *_mlpconv(96, (192, 192, 192), 5),
            nn.AvgPool2d(3, stride=2, ceil_mode=True),  # 16 -> 8
            nn.Dropout(dropout),
            # the class maps feed global average pooling; the original keeps a ReLU on them too
            *_mlpconv(192, (192, 192, num_classes), 3),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)


@register_model(
    family="NiN",
    year=2013,
    paper="Network In Network",
    input_size=(3, 32, 32),
    params=966_986,
    result="CIFAR-10 test error 10.41% (8.81% with augmentation)",
    num_classes=10,
)
def nin_cifar(num_classes: int = 10, in_chans: int = 3, **options) -> NiN:
    return NiN(num_classes=num_classes, in_chans=in_chans, **options)
