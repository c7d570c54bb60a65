"""What a classifier returns, and how training, evaluation and prediction read it.

Scores or probabilities: the notes' pattern language allows ``... -> FC -> SOFTMAX``, and some
user models end in ``nn.Softmax`` or ``nn.LogSoftmax``. Training, evaluation and prediction all
want scores whose softmax is the class probabilities; for such a model those are ``log p``,
because ``softmax(log p) = p`` and cross-entropy on ``log p`` is the negative log-likelihood of
``p``. Without this, probabilities went through a second softmax (flattened towards uniform) and
the loss was computed on them as if they were logits.

Auxiliary heads: a model with auxiliary classifiers (GoogLeNet, Inception v3) returns
:class:`AuxOutputs` in training mode and plain logits in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn as nn

KINDS = ("scores", "probs", "log_probs")


def output_kind(model: nn.Module) -> str:
    """ "probs" or "log_probs" if the model's last layer is a softmax or log-softmax over the
    classes, else "scores". Looks through DistributedDataParallel / ``torch.compile`` wrappers
    and nested ``nn.Sequential`` containers; any other model is taken to return scores."""
    m = getattr(model, "module", model)
    m = getattr(m, "_orig_mod", m)
    while isinstance(m, nn.Sequential) and len(m) > 0:
        m = m[-1]
    if isinstance(m, nn.Softmax) and m.dim in (1, -1):
        return "probs"
    if isinstance(m, nn.LogSoftmax) and m.dim in (1, -1):
        return "log_probs"
    return "scores"


def as_logits(out: torch.Tensor, kind: str) -> torch.Tensor:
    """Scores whose softmax over dim 1 is the model's class probabilities (see the module)."""
    if kind == "probs":
        if out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()  # a half-precision p underflows to 0 far sooner
        return out.clamp_min(torch.finfo(out.dtype).tiny).log()
    return out


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
