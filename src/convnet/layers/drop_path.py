"""Drop-path: drop a whole residual branch (stochastic depth) or a fractal column.

Stochastic depth (Huang et al. 2016) keeps block l's residual branch with survival probability
p_l and otherwise passes the shortcut alone, so the expected depth in training shrinks while
the full network is used at test time. We use the "inverted" form: a kept branch is scaled by
1/p_l in training, so evaluation needs no rescaling and the eval-mode network is exactly the
plain one (its weights load into, and come from, a model without stochastic depth).
"""

from __future__ import annotations

import torch
import torch.nn as nn


def drop_path(x: torch.Tensor, p_drop: float, training: bool, mode: str = "batch") -> torch.Tensor:
    """Zero ``x`` with probability ``p_drop`` (per batch or per sample), scaling survivors by 1/(1-p).

    ``mode="batch"`` draws one coin for the whole mini-batch (the paper); ``"row"`` one per sample.
    """
    if not training or p_drop <= 0.0:
        return x
    keep = 1.0 - p_drop
    shape = (1,) * x.dim() if mode == "batch" else (x.shape[0],) + (1,) * (x.dim() - 1)
    mask = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """``drop_path`` as a module; ``p_drop`` = 1 - survival probability."""

    def __init__(self, p_drop: float = 0.0, mode: str = "batch") -> None:
        super().__init__()
        if not 0.0 <= p_drop < 1.0:
            raise ValueError(f"DropPath: p_drop must be in [0, 1), got {p_drop}")
        if mode not in ("batch", "row"):
            raise ValueError(f"DropPath: mode must be 'batch' or 'row', got {mode!r}")
        self.p_drop = float(p_drop)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p_drop, self.training, self.mode)

    def extra_repr(self) -> str:
        return f"p_drop={self.p_drop:.4g}, mode={self.mode!r}"


def linear_survival(num_blocks: int, final: float = 0.5) -> list[float]:
    """The linear decay rule p_l = 1 - (l / L) (1 - p_L) for blocks l = 1..L (p_L = ``final``)."""
    return [1.0 - (i / num_blocks) * (1.0 - final) for i in range(1, num_blocks + 1)]
