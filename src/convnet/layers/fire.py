"""SqueezeNet's Fire module (Iandola et al. 2016), with torchvision's attribute names.

squeeze: 1x1 conv C_in -> s, ReLU; expand: a 1x1 conv s -> e1 and a 3x3 conv (pad 1) s -> e3 in
parallel, each with ReLU, concatenated to e1 + e3 channels. Parameters:
C_in s + s + s e1 + e1 + 9 s e3 + e3.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class Fire(nn.Module):
    def __init__(self, in_channels: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.inplanes = in_channels
        self.squeeze = nn.Conv2d(in_channels, squeeze, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [
                self.expand1x1_activation(self.expand1x1(x)),
                self.expand3x3_activation(self.expand3x3(x)),
            ],
            1,
        )
