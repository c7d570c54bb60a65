"""What a classifier returns: raw scores, or probabilities because it ends in a softmax.

The notes' pattern language allows ``... -> FC -> SOFTMAX``, and some user models end in
``nn.Softmax`` or ``nn.LogSoftmax``. Training, evaluation and prediction all want scores whose
softmax is the class probabilities; for such a model those are ``log p``, because
``softmax(log p) = p`` and cross-entropy on ``log p`` is the negative log-likelihood of ``p``.
Without this, probabilities went through a second softmax (flattened towards uniform) and the
loss was computed on them as if they were logits.
"""

from __future__ import annotations

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
