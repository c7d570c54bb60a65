"""Plain nets (He, Zhang, Ren, Sun 2015): the ResNets' layers without a single shortcut.

The paper's control experiment (its figures 4 and 6; seed 003, figure 3.8): a plain-N is
ResNet-N with every shortcut removed, so each block computes relu(F(x)) instead of
relu(F(x) + x), and nothing else changes. Deeper plain nets train *worse* (higher training
error, not only test error: the degradation problem), while their residual twins do not.

- ``plain20/32/44/56/110``: the CIFAR-10 nets of section 4.2 (depth 6n + 2, 3x3 convs of 16, 32
  and 64 filters). Option A shortcuts have no parameters, so each has exactly the parameters of
  ``resnet{N}``.
- ``plain18/34``: the ImageNet nets of table 1 and figure 3 (middle). They lack ResNet-18/34's
  three 1x1 projection shortcuts (torchvision's option B), 173,824 parameters fewer.

Both reuse the ResNet modules with ``shortcut="none"``, so a state dict's keys are the ResNet's
minus the shortcut ones.
"""

from __future__ import annotations

from ._registry import register_model
from .cifar_resnet import CifarResNet
from .resnet import BasicBlock, ResNet

_PAPER = "Deep Residual Learning for Image Recognition"
# depth: parameters (= resnet{depth} with option A, whose shortcuts have none)
_CIFAR = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
_CIFAR_RESULT = (
    "CIFAR-10: training and test error grow with depth, 20 < 32 < 44 < 56 "
    "(the paper's figure 6, left; plain-110's error is above 60%)"
)


def _register_cifar() -> None:
    for depth, params in _CIFAR.items():

        def builder(
            num_classes: int = 10, in_chans: int = 3, _depth=depth, **options
        ) -> CifarResNet:
            return CifarResNet(_depth, num_classes, in_chans, shortcut="none", **options)

        name = f"plain{depth}"
        builder.__name__ = builder.__qualname__ = name
        builder.__doc__ = f"CIFAR plain-{depth}: resnet{depth}'s {depth} layers, no shortcuts."
        register_model(
            family="Plain (CIFAR)",
            year=2015,
            paper=_PAPER,
            input_size=(3, 32, 32),
            params=params,
            result=_CIFAR_RESULT,
            num_classes=10,
            name=name,
        )(builder)
        globals()[name] = builder


_register_cifar()


@register_model(
    family="Plain",
    year=2015,
    paper=_PAPER,
    params=11_515_688,
    result="ImageNet top-1 error 27.94% (10-crop; the paper's table 2; ResNet-18: 27.88%)",
    top1=72.06,
    accuracy_source="He et al. 2015, table 2 (10-crop testing)",
)
def plain18(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, in_chans, shortcut="none", **options)


@register_model(
    family="Plain",
    year=2015,
    paper=_PAPER,
    params=21_623_848,
    result="ImageNet top-1 error 28.54% (10-crop; the paper's table 2): worse than plain-18",
    top1=71.46,
    accuracy_source="He et al. 2015, table 2 (10-crop testing)",
)
def plain34(num_classes: int = 1000, in_chans: int = 3, **options) -> ResNet:
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, in_chans, shortcut="none", **options)
