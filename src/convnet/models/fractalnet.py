"""FractalNet (Larsson, Maire, Shakhnarovich 2016): ultra-deep networks without residuals.

The expansion rule f_1(z) = conv(z), f_{C+1}(z) = join(conv(z), f_C(f_C(z))) gives a block of C
columns of depths 1, 2, 4, ..., 2^(C-1); a join averages the columns that meet at the same depth.
Here a block keeps the columns separate until they meet, so each join is one mean over all
columns arriving there (the paper's figure 1), and every conv is 3x3 conv -> BN -> ReLU.

Drop-path regularizes training: per mini-batch, either "local" (each join drops each input
with probability 0.15, keeping at least one) or "global" (one column is chosen for the whole
network, so that column alone must classify), half the batches each. At test time all paths
are averaged. The CIFAR model: 5 blocks of C = 3 columns (20 layers deep), 64, 128, 256, 512,
512 channels, each block followed by 2x2 max pooling, then a linear classifier:
33,724,618 parameters.
"""

from __future__ import annotations

import random

import torch
import torch.nn as nn

from ._init import he_init
from ._registry import register_model


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Fractal(nn.Module):
    """f_C before its final join: forward returns C column outputs (shallowest first).

    ``column`` (global drop-path) selects the only column to compute; the others come back None.
    """

    def __init__(self, cin: int, cout: int, columns: int, p_local: float) -> None:
        super().__init__()
        self.columns, self.p_local = columns, p_local
        self.conv = ConvBNReLU(cin, cout)
        if columns > 1:
            self.inner = Fractal(cin, cout, columns - 1, p_local)
            self.outer = Fractal(cout, cout, columns - 1, p_local)

    def forward(
        self, z: torch.Tensor, column: int | None = None, rng: random.Random | None = None
    ) -> list[torch.Tensor | None]:
        if self.columns == 1:
            return [self.conv(z)]
        if column is not None:  # global drop-path: one column through every join
            if column == 0:
                return [self.conv(z)] + [None] * (self.columns - 1)
            mid = self.inner(z, column - 1)[column - 1]
            return [None] + self.outer(mid, column - 1)
        mid = join(self.inner(z, rng=rng), self.p_local if self.training else 0.0, rng)
        return [self.conv(z)] + self.outer(mid, rng=rng)


def join(
    paths: list[torch.Tensor | None], p_drop: float = 0.0, rng: random.Random | None = None
) -> torch.Tensor:
    """Mean of the paths, each dropped with probability ``p_drop`` (local drop-path; one survives)."""
    alive = [p for p in paths if p is not None]
    if p_drop > 0 and len(alive) > 1:
        rng = rng or random.Random()
        keep = [p for p in alive if rng.random() >= p_drop]
        alive = keep or [rng.choice(alive)]
    return alive[0] if len(alive) == 1 else torch.stack(alive).mean(0)


class FractalNet(nn.Module):
    """Input (N, in_chans, H, W), H, W >= 32 for 5 blocks -> logits (N, num_classes)."""

    def __init__(
        self,
        num_classes: int = 10,
        in_chans: int = 3,
        channels: tuple[int, ...] = (64, 128, 256, 512, 512),
        columns: int = 3,
        p_local: float = 0.15,
        global_fraction: float = 0.5,
        dropout: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        self.columns, self.p_local, self.global_fraction = columns, p_local, global_fraction
        self._rng: random.Random | None = None
        # per-block dropout rates (applied after the block's pool); the paper's "with dropout"
        # runs increase them with depth: 0, .1, .2, .3, .4
        dropout = dropout or (0.0,) * len(channels)
        self.blocks = nn.ModuleList()
        self.pools = nn.ModuleList()
        c = in_chans
        for cout, p in zip(channels, dropout):
            self.blocks.append(Fractal(c, cout, columns, p_local))
            self.pools.append(
                nn.Sequential(nn.MaxPool2d(2), nn.Dropout(p)) if p > 0 else nn.MaxPool2d(2)
            )
            c = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        he_init(self, linear_std=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        column, rng = None, None
        if self.training:
            # path choices are host-side coin flips (no tensor ops, so meta/fake tracing works),
            # seeded from torch's seed on the first training step so torch.manual_seed repeats them
            if self._rng is None:
                self._rng = random.Random(torch.initial_seed())
            rng = self._rng
            if rng.random() < self.global_fraction:
                column = rng.randrange(self.columns)  # global drop-path for this mini-batch
        for block, pool in zip(self.blocks, self.pools):
            local = self.p_local if self.training and column is None else 0.0
            x = pool(join(block(x, column, rng), local, rng))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_model(
    family="FractalNet",
    year=2016,
    paper="FractalNet: Ultra-Deep Neural Networks without Residuals",
    input_size=(3, 32, 32),
    params=33_724_618,
    result="CIFAR-10 test error 5.22% with augmentation (4.60% adding dropout and drop-path), 20 layers",
    num_classes=10,
)
def fractalnet_cifar(num_classes: int = 10, in_chans: int = 3, **options) -> FractalNet:
    return FractalNet(num_classes=num_classes, in_chans=in_chans, **options)
