"""L2-norm pooling: each output is the L2 norm of its window, sqrt(sum of squares).

The notes (seed 000, pooling layer) list L2-norm pooling beside max and average pooling.
We take the norm itself, not the root-mean-square: for a window R of size kh x kw,

    out[n, c, i, j] = sqrt( sum_{(u, v) in R(i, j)} x[n, c, u, v]^2 )

which is ``torch.nn.LPPool2d(2, ...)`` on a zero-padded input (RMS would be this divided by
sqrt(kh * kw)). Zero padding adds nothing to the sum. Output size per dimension, as for every
pool: out = floor((in + 2 P - F) / S) + 1.

Why not ``F.lp_pool2d``: its square root has an infinite slope at a window of zeros (e.g. after
a ReLU), which turns the gradient into NaN. Here a window whose sum is 0 gets gradient 0, a
valid subgradient of the norm at the origin, and every other window the exact x / out.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


class L2Pool2d(nn.Module):
    """(N, C, H, W) -> (N, C, out_h, out_w), out = sqrt(sum of squares over each window).

    Args:
        kernel_size: F, int or (kh, kw).
        stride: S, defaults to ``kernel_size`` (non-overlapping windows, as torch pools do).
        padding: P, zero padding on each side (at most half the kernel, as for max pooling).
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride) if stride is not None else self.kernel_size
        self.padding = _pair(padding)
        for k, p in zip(self.kernel_size, self.padding):
            if p < 0 or 2 * p > k:
                raise ValueError(f"L2Pool2d: padding {p} must be between 0 and half the kernel {k}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        area = self.kernel_size[0] * self.kernel_size[1]
        # avg_pool2d counts the zero padding (count_include_pad=True), so mean * area is the sum.
        sq = F.avg_pool2d(x * x, self.kernel_size, self.stride, self.padding) * area
        positive = sq > 0
        # sqrt of 1 where the window is all zeros keeps the backward pass finite; masked to 0 below.
        root = torch.sqrt(torch.where(positive, sq, torch.ones_like(sq)))
        return torch.where(positive, root, torch.zeros_like(root))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
