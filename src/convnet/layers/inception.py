"""GoogLeNet's Inception module (Szegedy et al. 2014), with torchvision's attribute names.

Four parallel branches on the same input, concatenated along channels:
    branch1: 1x1 conv -> ch1x1
    branch2: 1x1 conv -> ch3x3red, 3x3 conv (pad 1) -> ch3x3
    branch3: 1x1 conv -> ch5x5red, kxk conv (pad k//2) -> ch5x5   (k = 5 in the paper;
             torchvision's implementation, and its weight files, use k = 3 here)
    branch4: 3x3 max pool (stride 1, pad 1), 1x1 conv -> pool_proj
Output channels: ch1x1 + ch3x3 + ch5x5 + pool_proj. The 1x1 "reduce" convs are what keep the
3x3 and 5x5 convs cheap.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class BasicConv2d(nn.Module):
    """conv -> (batch norm) -> ReLU. With ``bn`` the conv has no bias (BN's beta replaces it)."""

    def __init__(self, in_channels: int, out_channels: int, bn: bool = True, **conv_kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=not bn, **conv_kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001) if bn else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.relu(x)


class Inception(nn.Module):
    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        large_kernel: int = 5,
        bn: bool = True,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, bn, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, bn, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, bn, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, bn, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, bn, kernel_size=large_kernel, padding=large_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, bn, kernel_size=1),
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)
