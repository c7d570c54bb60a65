"""Weight initialization shared by the zoo.

He et al. 2015 ("Delving deep into rectifiers"): for conv + ReLU, weights ~ N(0, 2/fan_out)
keep the activation variance constant through depth; the ResNet recipe uses the same.
"""

from __future__ import annotations

import torch.nn as nn


def he_init(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """Kaiming-normal conv weights (fan_out, ReLU), zero biases, BN at (1, 0); Linear N(0, std)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
