"""SE-ResNet (Hu, Shen, Sun 2018): ResNet whose blocks reweight their channels before the sum.

A squeeze-and-excitation gate (reduction 16) on each bottleneck's output, before the identity
is added; ILSVRC-2017 winner. The layout otherwise is resnet.py's.
"""

from __future__ import annotations

from ._registry import register_model
from .resnet import Bottleneck, ResNet


@register_model(
    family="SENet",
    year=2017,
    paper="Squeeze-and-Excitation Networks",
    params=28_088_024,
    result="ImageNet top-1 / top-5 error 23.29% / 6.62% (single crop); SENet won ILSVRC-2017 (2.25% top-5)",
)
def seresnet50(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    options.setdefault("se_reduction", 16)
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_chans, **options)
