"""Structured outputs for models with auxiliary classifiers (GoogLeNet's aux heads)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch


class AuxOutputs(NamedTuple):
    """What a model with auxiliary heads returns in training mode (in eval mode: plain logits).

    ``logits``: (N, num_classes) from the main head; ``aux``: one (N, num_classes) tensor per
    auxiliary head, shallowest first; ``aux_weight``: the weight the paper gives each aux loss
    (0.3 for GoogLeNet). The training loss is ``loss(criterion, target)``:
        L = criterion(logits, target) + aux_weight * sum_i criterion(aux_i, target)
    """

    logits: torch.Tensor
    aux: tuple[torch.Tensor, ...]
    aux_weight: float = 0.3

    def loss(
        self, criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        total = criterion(self.logits, target)
        for a in self.aux:
            total = total + self.aux_weight * criterion(a, target)
        return total
