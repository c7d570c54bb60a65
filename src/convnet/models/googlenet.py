"""GoogLeNet / Inception-v1 (Szegedy et al. 2014), ILSVRC-2014 winner, 22 layers deep.

Nine Inception modules (layers/inception.py) between a conventional stem and a global average
pool; no big FC layers, so ~6.6M parameters against AlexNet's 61M. Two auxiliary classifiers on
inception4a and inception4d add gradient signal to the middle of the network during training
(loss weight 0.3); they are not used at test time.

``googlenet`` matches torchvision (batch norm after each conv, its keys and shapes; 13,004,888
parameters with the aux heads, 6,624,904 with ``aux_logits=False``). Note that torchvision's
"5x5" branch is really a 3x3 conv, as in its published weights. ``googlenet_paper`` follows the
paper: true 5x5 branches, no batch norm, LRN in the stem, aux heads of 5x5/3 average pool ->
1x1 conv 128 -> FC 1024 -> dropout 0.7 -> FC, and dropout 0.4 before the last FC.

In training mode with aux heads, ``forward`` returns ``AuxOutputs(logits, (aux1, aux2), 0.3)``;
in eval mode (or with ``aux_logits=False``) it returns the logits tensor.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ShapeError
from ..layers import BasicConv2d, Inception, local_response_norm
from ._init import he_init
from ._registry import register_model
from .outputs import AuxOutputs

# (in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj): the paper's Table 1
_TABLE = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class InceptionAux(nn.Module):
    """Aux head: pool to 4x4 -> 1x1 conv 128 -> FC 1024 -> ReLU -> dropout 0.7 -> FC num_classes."""

    def __init__(
        self, in_channels: int, num_classes: int, bn: bool = True, paper_pool: bool = False
    ) -> None:
        super().__init__()
        self.paper_pool = paper_pool
        self.conv = BasicConv2d(in_channels, 128, bn, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=0.7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.paper_pool:
            # the paper's 5x5 average pool, stride 3: 14x14 -> 4x4 at 224x224 input
            if min(x.shape[-2:]) < 5:
                raise ShapeError(
                    f"googlenet_paper's aux heads need a 4a/4d map of at least 5x5, got {tuple(x.shape[-2:])}; "
                    "use inputs of at least 80x80 or aux_logits=False"
                )
            x = F.avg_pool2d(x, 5, stride=3)
        x = F.adaptive_avg_pool2d(x, (4, 4))  # identity after the paper's pool at 224x224
        x = torch.flatten(self.conv(x), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))


class GoogLeNet(nn.Module):
    """Input (N, in_chans, H, W), H, W >= 32 (224 in the paper) -> logits or AuxOutputs."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        aux_logits: bool = True,
        transform_input: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
        paper: bool = False,
    ) -> None:
        super().__init__()
        self.aux_logits = aux_logits
        # torchvision's weights were trained on inputs scaled to [-1, 1]: with its file and
        # ImageNet-normalized inputs, pass transform_input=True (torchvision does the same)
        self.transform_input = transform_input
        bn = not paper
        kernel = 5 if paper else 3
        self.conv1 = BasicConv2d(in_chans, 64, bn, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = local_response_norm() if paper else None
        self.conv2 = BasicConv2d(64, 64, bn, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, bn, kernel_size=3, padding=1)
        self.lrn2 = local_response_norm() if paper else None
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        for name in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"):
            setattr(self, f"inception{name}", Inception(*_TABLE[name], large_kernel=kernel, bn=bn))
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # the paper pools 3x3/2 here; torchvision (and its weights) 2x2/2, same 7x7 output at 224
        self.maxpool4 = (
            nn.MaxPool2d(3, stride=2, ceil_mode=True)
            if paper
            else nn.MaxPool2d(2, stride=2, ceil_mode=True)
        )
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, bn, paper_pool=paper)
            self.aux2 = InceptionAux(528, num_classes, bn, paper_pool=paper)
            self.aux1.dropout.p = self.aux2.dropout.p = dropout_aux
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)
        he_init(self)

    @property
    def head_names(self) -> tuple[str, ...]:
        """The layers sized by num_classes: re-initialized when fine-tuning to other classes."""
        return ("fc", "aux1.fc2", "aux2.fc2") if self.aux1 is not None else ("fc",)

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Without aux heads, ignore a file's aux1/aux2 weights (torchvision's file has them)."""
        if self.aux1 is not None:
            return state
        return {k: v for k, v in state.items() if not k.startswith(("aux1.", "aux2."))}

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transform_input:
            return x
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        chans = [x[:, i : i + 1] * (std[i] / 0.5) + (mean[i] - 0.5) / 0.5 for i in range(3)]
        return torch.cat(chans, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutputs:
        x = self.maxpool1(self.conv1(self._transform_input(x)))
        if self.lrn1 is not None:
            x = self.lrn1(x)
        x = self.conv3(self.conv2(x))
        if self.lrn2 is not None:
            x = self.lrn2(x)
        x = self.inception3b(self.inception3a(self.maxpool2(x)))
        x = self.inception4a(self.maxpool3(x))
        use_aux = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if use_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if use_aux else None
        x = self.inception4e(x)
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        logits = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))
        if use_aux:
            return AuxOutputs(logits, (aux1, aux2), 0.3)
        return logits


_PAPER = "Going Deeper with Convolutions"
_RESULT = "ILSVRC-2014 winner: top-5 error 6.67% (7 nets, 144 crops); 10.07% single net, 1 crop"


@register_model(
    family="GoogLeNet",
    year=2014,
    paper=_PAPER,
    params=13_004_888,
    result=_RESULT,
    torchvision_keys=True,
    top1=69.778,  # the paper reports top-5 only; these are torchvision's weights, same keys
    top5=89.530,
    accuracy_source="torchvision IMAGENET1K_V1 weights (224 crop)",
)
def googlenet(num_classes: int = 1000, in_chans: int = 3, **options) -> GoogLeNet:
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, **options)


@register_model(family="GoogLeNet", year=2014, paper=_PAPER, params=13_378_280, result=_RESULT)
def googlenet_paper(num_classes: int = 1000, in_chans: int = 3, **options) -> GoogLeNet:
    options.setdefault("dropout", 0.4)
    return GoogLeNet(num_classes=num_classes, in_chans=in_chans, paper=True, **options)
