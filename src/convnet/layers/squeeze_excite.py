"""Squeeze-and-excitation (Hu et al. 2018): reweight channels by a gate computed from their means.

For x of shape (N, C, H, W):  s = sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2),  y = x * s[:, :, None, None]
with W1: (C/r, C), W2: (C, C/r). Parameters: 2 C^2 / r + C / r + C (reduction r = 16 in the paper).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        # 1x1 convs act as the paper's two FC layers on the (N, C, 1, 1) squeezed vector
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.relu(self.fc1(s))))
