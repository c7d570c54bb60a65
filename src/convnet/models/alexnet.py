"""AlexNet (Krizhevsky, Sutskever, Hinton 2012), in torchvision's single-GPU layout.

Five conv layers (11x11/4, 5x5, 3x3 x3) with max pools, then three FC layers with dropout 0.5.
State-dict keys and shapes are exactly torchvision's, so its weight files load unchanged.
"""

from __future__ import annotations

import torch.nn as nn

from ..layers import local_response_norm
from ._fc_head import FeaturesPoolClassifier, fc_head
from ._init import he_init
from ._registry import register_model


class AlexNet(FeaturesPoolClassifier):
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


@register_model(
    family="AlexNet",
    year=2012,
    paper="ImageNet Classification with Deep Convolutional Neural Networks",
    params=61_100_840,
    result="ILSVRC-2012 top-5 error 15.3% (7-net ensemble)",
    torchvision_keys=True,
    top1=56.522,  # torchvision's one-GPU variant (the layers above), single 224 crop
    top5=79.066,
    accuracy_source="torchvision IMAGENET1K_V1 weights (224 crop)",
)
def alexnet(num_classes: int = 1000, in_chans: int = 3, **options) -> AlexNet:
    return AlexNet(num_classes=num_classes, in_chans=in_chans, **options)


class AlexNetOriginal(FeaturesPoolClassifier):
    """AlexNet as in the paper and seed 003's table 3.1: 227x227x3 input, LRN, two GPU groups.

    conv2, conv4 and conv5 only see the half of the previous layer on "their" GPU, which is a
    grouped convolution with groups=2; conv3 and the FC layers communicate across both. LRN
    (k=2, n=5, alpha=1e-4, beta=0.75) follows the first two pools, in table 3.1's order.
    Shapes: 227 -> conv1 55x55x96 -> pool 27 -> conv2 27x27x256 -> pool 13 -> conv3/4 13x13x384
    -> conv5 13x13x256 -> pool 6x6x256 -> FC 4096 -> FC 4096 -> FC C.
    """

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, dropout: float = 0.5, groups: int = 2
    ):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 96, kernel_size=11, stride=4),  # 227 -> 55
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 55 -> 27 (overlapping pooling)
            local_response_norm(n=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=groups),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 27 -> 13
            local_response_norm(n=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=groups),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 13 -> 6
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))  # identity at 227x227; lets other sizes run
        self.classifier = fc_head(256 * 6 * 6, num_classes, dropout)
        he_init(self)


@register_model(
    family="AlexNet",
    year=2012,
    paper="ImageNet Classification with Deep Convolutional Neural Networks",
    input_size=(3, 227, 227),
    params=60_965_224,
    result="ILSVRC-2012 top-5 error 18.2% (1 net), 16.4% (5 nets), 15.4% (7 nets; 15.3% on "
    "the test set): the paper's table 2, validation set",
)
def alexnet_original(num_classes: int = 1000, in_chans: int = 3, **options) -> AlexNetOriginal:
    return AlexNetOriginal(num_classes=num_classes, in_chans=in_chans, **options)
