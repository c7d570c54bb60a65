"""The convolution a Linear becomes: an ``nn.Conv2d`` whose filter covers the map the Linear read.

Its numbers are ``F.conv2d``'s. On CPU it computes them as one matrix product over the unfolded
windows, ``W (K, C*F*F) @ cols (C*F*F, h'*w')``, which is what the Linear did on a batch of
crops. oneDNN's direct convolution is slower for these shapes (VGG-16's F = 7, 512 -> 4096 head
on a 12x12 channels-last map: 171 ms vs 63 ms on 2 cores; its 1x1, 4096 -> 4096 layer on the 6x6
map: 32 ms vs 10 ms, a 1x1 filter being one GEMM over a view of the map), and the head is a
quarter of a dense pass.
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
        if x.device.type == "cpu" and kh * kw == 1:
            return self._pointwise(x)
        if x.device.type != "cpu" or oh < 1 or ow < 1 or cols_bytes > _MAX_COLS_BYTES:
            return super().forward(x)
        k = self.out_channels
        if self.weight.is_contiguous():
            # unfold gathers from NCHW several times faster than from channels-last (0.18 s vs
            # 0.59 s for AlexNet's head); the map here is small, so the copy is cheap.
            cols = F.unfold(
                x.contiguous(), (kh, kw)
            )  # (N, C*kh*kw, oh*ow), the weight's (c, y, x) order
            out = self.weight.reshape(k, -1) @ cols  # (N, K, oh*ow)
            if self.bias is not None:
                out = out + self.bias[:, None]
            return out.reshape(n, k, oh, ow)
        # Channels-last weights hold (K, kh, kw, C) in memory: flatten both sides in (y, x, c)
        # order instead, so the big weight is a view and never copied.
        w_mat = self.weight.permute(0, 2, 3, 1).reshape(k, -1)
        win = x.permute(0, 2, 3, 1).unfold(1, kh, 1).unfold(2, kw, 1)  # (N, oh, ow, C, kh, kw)
        cols = win.permute(0, 1, 2, 4, 5, 3).reshape(n, oh * ow, kh * kw * c)
        out = cols @ w_mat.T  # (N, oh*ow, K)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(n, oh, ow, k).permute(0, 3, 1, 2)  # channels-last, like the weights

    def _pointwise(self, x: torch.Tensor) -> torch.Tensor:
        """A 1x1 filter is the Linear itself at every position: one GEMM over a view of ``x``."""
        n, c, h, w = x.shape
        k = self.out_channels
        w_mat = self.weight.reshape(k, c)
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            out = x.permute(0, 2, 3, 1).reshape(n * h * w, c) @ w_mat.T  # (N*h*w, K)
            if self.bias is not None:
                out = out + self.bias
            return out.reshape(n, h, w, k).permute(0, 3, 1, 2)
        out = w_mat @ x.reshape(n, c, h * w)  # (N, K, h*w)
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out.reshape(n, k, h, w)
