"""Local response normalization with the AlexNet paper's constants (seed 003, formula 3.1).

The paper normalizes across n adjacent channels:
    b[d] = a[d] / (k + alpha * sum_{d'=max(0, d-n/2)}^{min(N-1, d+n/2)} a[d']^2) ^ beta
``torch.nn.LocalResponseNorm`` divides alpha by n inside the sum (Caffe's convention), so the
paper's alpha = 1e-4 corresponds to torch's alpha = n * 1e-4.
"""

from __future__ import annotations

import torch.nn as nn


def local_response_norm(
    n: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
) -> nn.LocalResponseNorm:
    """A ``nn.LocalResponseNorm`` computing the paper's formula with the paper's (k, n, alpha, beta)."""
    return nn.LocalResponseNorm(size=n, alpha=alpha * n, beta=beta, k=k)
