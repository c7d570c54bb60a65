"""LeNet-5's trainable subsampling layer (S2, S4).

Each map sums a non-overlapping k x k window, multiplies by one trainable coefficient and
adds one trainable bias: y[c] = w[c] * sum_window x[c] + b[c]. Two parameters per map
(S2: 12, S4: 32).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Subsampling2d(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        window_sum = F.avg_pool2d(x, k, k) * (k * k)
        return window_sum * self.weight[:, None, None] + self.bias[:, None, None]

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, kernel_size={self.kernel_size}"
