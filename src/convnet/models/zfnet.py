"""ZFNet (Zeiler & Fergus 2013): AlexNet with a 7x7 stride-2 first layer, found by visualizing it.

Their deconvnet showed AlexNet's 11x11/4 first layer left dead filters and aliasing, so they
used 7x7/2 and stride 2 in conv2 as well. Ungrouped (one GPU), contrast normalization after
the first two pools. At 224x224: conv1 110x110x96 -> pool 55 -> conv2 26x26x256 -> pool 13 ->
conv3/4 13x13x384 -> conv5 13x13x256 -> pool 6x6x256 -> FC 4096 -> FC 4096 -> FC C.
62,357,608 parameters. ``filters=(512, 1024, 512)`` gives the wider conv3-5 of the "ZF Net"
variant the cs231n notes describe (seed 004): 107,627,624 parameters, most of them in the
first FC layer, which now sees 6x6x512.
"""

from __future__ import annotations

import torch.nn as nn

from ..layers import local_response_norm
from ._fc_head import FeaturesPoolClassifier, fc_head
from ._init import he_init
from ._registry import register_model


class ZFNet(FeaturesPoolClassifier):
    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        dropout: float = 0.5,
        filters: tuple[int, int, int] = (384, 384, 256),
    ):
        super().__init__()
        c3, c4, c5 = filters
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 96, kernel_size=7, stride=2, padding=1),  # 224 -> 110
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # 110 -> 55
            local_response_norm(n=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.Conv2d(96, 256, kernel_size=5, stride=2),  # 55 -> 26
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),  # 26 -> 13
            local_response_norm(n=5, alpha=1e-4, beta=0.75, k=2.0),
            nn.Conv2d(256, c3, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 13 -> 6
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))  # identity at 224x224
        self.classifier = fc_head(c5 * 6 * 6, num_classes, dropout)
        he_init(self)


@register_model(
    family="ZFNet",
    year=2013,
    paper="Visualizing and Understanding Convolutional Networks",
    params=62_357_608,
    result="ILSVRC-2013 top-5 test error 14.8% (6-net ensemble; the paper's table 2, where "
    "AlexNet's 5 nets score 16.4%); the 2013 winner, Clarifai's entry, 11.7%",
)
def zfnet(num_classes: int = 1000, in_chans: int = 3, **options) -> ZFNet:
    return ZFNet(num_classes=num_classes, in_chans=in_chans, **options)
