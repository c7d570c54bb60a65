"""Highway layer (Srivastava, Greff, Schmidhuber 2015): a learned gate between transform and carry.

    y = H(x) * T(x) + x * (1 - T(x)),   H(x) = relu(W_H x + b_H),   T(x) = sigmoid(W_T x + b_T)

The carry gate is tied, C = 1 - T. A negative transform-gate bias (-1 to -3 in the paper,
more for deeper nets) starts every layer close to the identity, which is what lets a
100-layer highway network train where a plain one does not. Works on vectors (Linear) or
feature maps (3x3 Conv2d with padding, so H and T keep the size).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class Highway(nn.Module):
    def __init__(
        self, features: int, kind: str = "linear", gate_bias: float = -2.0, kernel_size: int = 3
    ) -> None:
        super().__init__()
        if kind == "linear":
            self.transform, self.gate = nn.Linear(features, features), nn.Linear(features, features)
        elif kind == "conv":
            pad = kernel_size // 2
            self.transform = nn.Conv2d(features, features, kernel_size, padding=pad)
            self.gate = nn.Conv2d(features, features, kernel_size, padding=pad)
        else:
            raise ValueError(f"Highway: kind must be 'linear' or 'conv', got {kind!r}")
        self.gate_bias = float(gate_bias)
        self.reset_gate()

    def reset_gate(self) -> None:
        """Set the transform gate's bias to ``gate_bias`` (negative: carry by default)."""
        nn.init.constant_(self.gate.bias, self.gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(x))
        h = torch.relu(self.transform(x))
        return h * t + x * (1.0 - t)
