"""Inception-v3 (Szegedy, Vanhoucke, Ioffe, Shlens, Wojna 2015), with torchvision's keys.

"Rethinking the Inception Architecture": the 7x7 stem conv becomes three 3x3 convs; a 5x5
conv becomes two 3x3 (InceptionA's double-3x3 branch); an n x n conv becomes 1 x n then n x 1
(InceptionC's 1x7/7x1 at 17x17); the grid shrinks by parallel stride-2 conv and pool branches
(InceptionB, InceptionD) instead of a pool that would bottleneck the representation; the last
modules widen their outputs with parallel 1x3 and 3x1 splits (InceptionE). One auxiliary
classifier on the 17x17 grid regularizes training (the paper: it acts as a regularizer more than
it speeds up convergence). Every conv is conv (no bias) -> BN (eps 0.001) -> ReLU.

299x299x3 -> stem 35x35x192 -> Mixed_5b..5d 35x35x288 -> Mixed_6a 17x17x768 -> Mixed_6b..6e
-> Mixed_7a 8x8x1280 -> Mixed_7b, 7c 8x8x2048 -> global average pool -> dropout -> FC.
27,161,264 parameters (23,834,568 with ``aux_logits=False``). Unpadded convs in the stem need
an input of at least 75x75.

The state dict has torchvision's keys and shapes, so its ``inception_v3_google`` file loads
unchanged; those weights expect inputs scaled to [-1, 1]: with ImageNet-normalized inputs pass
``transform_input=True`` (torchvision sets it when it loads them). In training mode with the aux
head, ``forward`` returns ``AuxOutputs(logits, (aux,), 0.4)``: TF-slim, which trained the
released weights, weights the aux loss by 0.4. torchvision's aux head pools the 17x17 grid 5x5/3
to 5x5, so it fails below a 299x299 input; here a smaller grid is pooled adaptively to 5x5
instead, so small inputs train too (at 299 and above both are the same).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import BasicConv2d
from ._init import he_init
from ._registry import register_model
from .outputs import AuxOutputs


def _conv(
    cin: int, cout: int, k: int | tuple[int, int], s: int = 1, p: int | tuple[int, int] = 0
) -> BasicConv2d:
    return BasicConv2d(cin, cout, kernel_size=k, stride=s, padding=p)


def imagenet_to_tf_range(x: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalized (N, 3, H, W) -> the [-1, 1] inputs TF-trained weights expect.

    A pixel p in [0, 1] arrives as x = (p - mean) / std; returns
    2p - 1 = x * std / 0.5 + (mean - 0.5) / 0.5.
    """
    mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return x * (std / 0.5) + (mean - 0.5) / 0.5


def _pool3(x: torch.Tensor) -> torch.Tensor:
    # 3x3/1 average pool, zero padding counted (torch's default, as torchvision)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)


class InceptionA(nn.Module):
    """35x35: 1x1 64 | 1x1 48 -> 5x5 64 | 1x1 64 -> 3x3 96 -> 3x3 96 | pool -> 1x1 ``pool``."""

    def __init__(self, cin: int, pool: int) -> None:
        super().__init__()
        self.branch1x1 = _conv(cin, 64, 1)
        self.branch5x5_1 = _conv(cin, 48, 1)
        self.branch5x5_2 = _conv(48, 64, 5, p=2)
        self.branch3x3dbl_1 = _conv(cin, 64, 1)
        self.branch3x3dbl_2 = _conv(64, 96, 3, p=1)
        self.branch3x3dbl_3 = _conv(96, 96, 3, p=1)
        self.branch_pool = _conv(cin, pool, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_pool3(x))], 1)


class InceptionB(nn.Module):
    """35x35x288 -> 17x17x768: 3x3/2 384 | 1x1 64 -> 3x3 96 -> 3x3/2 96 | max pool 3x3/2."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = _conv(cin, 384, 3, 2)
        self.branch3x3dbl_1 = _conv(cin, 64, 1)
        self.branch3x3dbl_2 = _conv(64, 96, 3, p=1)
        self.branch3x3dbl_3 = _conv(96, 96, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    """17x17x768: 7x7 convs factorized into 1x7 and 7x1, ``c7`` channels inside, 192 out each."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = _conv(cin, 192, 1)
        self.branch7x7_1 = _conv(cin, c7, 1)
        self.branch7x7_2 = _conv(c7, c7, (1, 7), p=(0, 3))
        self.branch7x7_3 = _conv(c7, 192, (7, 1), p=(3, 0))
        self.branch7x7dbl_1 = _conv(cin, c7, 1)
        self.branch7x7dbl_2 = _conv(c7, c7, (7, 1), p=(3, 0))
        self.branch7x7dbl_3 = _conv(c7, c7, (1, 7), p=(0, 3))
        self.branch7x7dbl_4 = _conv(c7, c7, (7, 1), p=(3, 0))
        self.branch7x7dbl_5 = _conv(c7, 192, (1, 7), p=(0, 3))
        self.branch_pool = _conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            d = conv(d)
        d = self.branch7x7dbl_5(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_pool3(x))], 1)


class InceptionD(nn.Module):
    """17x17x768 -> 8x8x1280: 1x1 -> 3x3/2 320 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 192 | max pool."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = _conv(cin, 192, 1)
        self.branch3x3_2 = _conv(192, 320, 3, 2)
        self.branch7x7x3_1 = _conv(cin, 192, 1)
        self.branch7x7x3_2 = _conv(192, 192, (1, 7), p=(0, 3))
        self.branch7x7x3_3 = _conv(192, 192, (7, 1), p=(3, 0))
        self.branch7x7x3_4 = _conv(192, 192, 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    """8x8 -> 8x8x2048: the 3x3 branches end in parallel 1x3 and 3x1 convs, concatenated."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch1x1 = _conv(cin, 320, 1)
        self.branch3x3_1 = _conv(cin, 384, 1)
        self.branch3x3_2a = _conv(384, 384, (1, 3), p=(0, 1))
        self.branch3x3_2b = _conv(384, 384, (3, 1), p=(1, 0))
        self.branch3x3dbl_1 = _conv(cin, 448, 1)
        self.branch3x3dbl_2 = _conv(448, 384, 3, p=1)
        self.branch3x3dbl_3a = _conv(384, 384, (1, 3), p=(0, 1))
        self.branch3x3dbl_3b = _conv(384, 384, (3, 1), p=(1, 0))
        self.branch_pool = _conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(a),
                self.branch3x3_2b(a),
                self.branch3x3dbl_3a(d),
                self.branch3x3dbl_3b(d),
                self.branch_pool(_pool3(x)),
            ],
            1,
        )


class InceptionAux(nn.Module):
    """17x17x768 -> 5x5/3 average pool -> 1x1 conv 128 -> 5x5 conv 768 -> pool -> FC."""

    def __init__(self, cin: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = _conv(cin, 128, 1)
        self.conv1 = _conv(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) >= 17:  # 5x5/3 gives at least the 5x5 the unpadded 5x5 conv needs
            x = F.avg_pool2d(x, kernel_size=5, stride=3)
        else:  # inputs under 299x299 (see the module docstring)
            x = F.adaptive_avg_pool2d(x, 5)
        x = self.conv1(self.conv0(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Inception3(nn.Module):
    """Input (N, in_chans, H, W), H, W >= 75 (299 in the paper) -> logits or AuxOutputs."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.transform_input = transform_input
        self.Conv2d_1a_3x3 = _conv(in_chans, 32, 3, 2)  # 299 -> 149
        self.Conv2d_2a_3x3 = _conv(32, 32, 3)  # -> 147
        self.Conv2d_2b_3x3 = _conv(32, 64, 3, p=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2)  # -> 73
        self.Conv2d_3b_1x1 = _conv(64, 80, 1)
        self.Conv2d_4a_3x3 = _conv(80, 192, 3)  # -> 71
        self.maxpool2 = nn.MaxPool2d(3, stride=2)  # -> 35x35x192
        self.Mixed_5b = InceptionA(192, pool=32)  # -> 256
        self.Mixed_5c = InceptionA(256, pool=64)  # -> 288
        self.Mixed_5d = InceptionA(288, pool=64)
        self.Mixed_6a = InceptionB(288)  # -> 17x17x768
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.AuxLogits = InceptionAux(768, num_classes) if aux_logits else None
        self.Mixed_7a = InceptionD(768)  # -> 8x8x1280
        self.Mixed_7b = InceptionE(1280)  # -> 2048
        self.Mixed_7c = InceptionE(2048)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2048, num_classes)
        he_init(self, linear_std=None)

    @property
    def head_names(self) -> tuple[str, ...]:
        """The layers sized by num_classes: re-initialized when fine-tuning to other classes."""
        return ("fc", "AuxLogits.fc") if self.AuxLogits is not None else ("fc",)

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Without the aux head, ignore a file's AuxLogits weights (torchvision's file has them)."""
        if self.AuxLogits is not None:
            return state
        return {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutputs:
        if self.transform_input:
            x = imagenet_to_tf_range(x)
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1"):
            x = getattr(self, name)(x)
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6a(x)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
        aux = self.AuxLogits(x) if self.training and self.AuxLogits is not None else None
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if aux is not None:
            return AuxOutputs(logits, (aux,), 0.4)
        return logits


@register_model(
    family="Inception",
    year=2015,
    paper="Rethinking the Inception Architecture for Computer Vision",
    input_size=(3, 299, 299),
    params=27_161_264,
    result="ImageNet top-1 / top-5 error 21.2% / 5.6% (one model, one 299x299 crop)",
    torchvision_keys=True,
    top1=78.8,
    top5=94.4,
    accuracy_source="Szegedy et al. 2015, abstract (single model, single crop, ILSVRC-2012 val)",
)
def inception_v3(num_classes: int = 1000, in_chans: int = 3, **options) -> Inception3:
    return Inception3(num_classes=num_classes, in_chans=in_chans, **options)
