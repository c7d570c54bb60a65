"""The convolution a Linear becomes: an ``nn.Conv2d`` whose filter covers the map the Linear read.

Its numbers are ``F.conv2d``'s. On CPU it computes them as one matrix product over the unfolded
windows, ``W (K, C*F*F) @ cols (C*F*F, h'*w')``, which is what the Linear did on a batch of
crops: oneDNN's direct convolution is about 2x slower for this shape (VGG-16's F = 7,
512 -> 4096 head on a 12x12 map: 0.98 s vs 0.51 s on 2 cores; its 1x1, 4096 -> 4096 layer on
the 6x6 map: 0.22 s vs 0.12 s), and the head is a third of a dense pass.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

_MAX_COLS_BYTES = (
    256 * 2**20
)  # beyond this the unfolded windows cost more memory than they save time


class FCConv2d(nn.Conv2d):
    """``nn.Conv2d`` (stride 1, no padding) converted from a Linear; same weights and state dict."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kernel_size
        n, c, h, w = x.shape
        oh, ow = h - kh + 1, w - kw + 1
        cols_bytes = n * c * kh * kw * max(oh, 0) * max(ow, 0) * x.element_size()
        if (
            x.device.type != "cpu"
            or kh * kw == 1
            or oh < 1
            or ow < 1
            or cols_bytes > _MAX_COLS_BYTES
        ):
            return super().forward(x)
        cols = F.unfold(x, (kh, kw))  # (N, C*kh*kw, oh*ow), the same (c, y, x) order as the weight
        out = self.weight.reshape(self.out_channels, -1) @ cols  # (N, K, oh*ow)
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out.reshape(n, self.out_channels, oh, ow)
