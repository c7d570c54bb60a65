"""Highway networks (Srivastava, Greff, Schmidhuber 2015), the MNIST experiment.

Each layer mixes a transform and a carry, y = H(x) T(x) + x (1 - T(x)) (layers/highway.py),
with the transform gate biased negative so a deep stack starts near the identity; this is
what let the paper optimize 100-layer nets where plain nets of the same depth stall, and
what ResNet's identity shortcut later made parameter-free (seed 003).

Flattened 28x28 digits -> a plain layer (784 -> width, ReLU) to set the width -> depth - 1
highway layers of ``width`` units -> a linear classifier. The paper's MNIST nets are 50 units
wide; ``depth`` counts the hidden layers (10 by default; try 100). The transform gates start
at bias -2, or -4 from depth 100 on: the paper recommends negative values of this order,
more negative for deeper nets, so that every layer starts by carrying its input.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import Highway
from ._registry import register_model


class HighwayNet(nn.Module):
    """Input (N, in_chans, 28, 28) (any H, W; flattened) -> logits (N, num_classes)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 1,
        depth: int = 10,
        width: int = 50,
        gate_bias: float | None = None,
        input_size: tuple[int, int] = (28, 28),
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"highway depth must be >= 1, got {depth}")
        bias = gate_bias if gate_bias is not None else (-4.0 if depth >= 100 else -2.0)
        self.flatten = nn.Flatten()
        self.stem = nn.Sequential(
            nn.Linear(in_chans * input_size[0] * input_size[1], width), nn.ReLU(inplace=True)
        )
        self.layers = nn.Sequential(
            *[Highway(width, "linear", gate_bias=bias) for _ in range(depth - 1)]
        )
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():  # He init for the ReLU transforms; gates keep their biases
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m is not self.fc and not any(m is h.gate for h in self.layers):
                    nn.init.zeros_(m.bias)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layers(self.stem(self.flatten(x))))


@register_model(
    family="Highway",
    year=2015,
    paper="Training Very Deep Networks",
    input_size=(1, 28, 28),
    params=85_660,
    result="MNIST: 100-layer highway nets optimize where plain nets of that depth stall (fig. 1)",
    num_classes=10,
)
def highway(num_classes: int = 10, in_chans: int = 1, **options) -> HighwayNet:
    return HighwayNet(num_classes=num_classes, in_chans=in_chans, **options)
