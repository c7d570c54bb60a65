"""The FC head shared by ZFNet, VGG and the two-GPU AlexNet, and their common forward.

FC-4096 -> ReLU -> dropout, twice, then FC-num_classes: the head the notes count in VGG-16's
table (7*7*512*4096 = 102,760,448 weights in the first layer alone). The Sequential's indices
0..6 are torchvision's ``classifier.*`` keys, so weight files load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def fc_head(
    in_features: int, num_classes: int, dropout: float = 0.5, hidden: int = 4096
) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(hidden, num_classes),
    )


class FeaturesPoolClassifier(nn.Module):
    """``features`` -> adaptive ``avgpool`` -> flatten -> ``classifier``, torchvision's layout."""

    features: nn.Module
    avgpool: nn.Module
    classifier: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))
