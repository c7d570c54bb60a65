"""NASNet (Zoph, Vasudevan, Shlens, Le 2018): a searched cell, stacked into a network.

The notes end where hand design ends: a controller learns to write the network. NASNet searches
only a *cell* on CIFAR-10, a normal cell that keeps the size and a reduction cell that halves
it (``layers/nasnet_cells.py``), and builds networks of any size by stacking them:

    stem -> [N normal cells -> reduction cell] x 2 -> N normal cells -> ReLU -> pool -> FC

Filters double at each reduction. Each cell reads the outputs of the two cells before it.
The paper names a network "NASNet-A (N @ P)" with P the penultimate layer's filters: with
NASNet-A's 6-way concatenation, P = 6 * 4F for F filters per hidden state in the first stack.

- ImageNet stem: 3x3/2 conv (no padding) -> BN, then two reduction cells with F/4 and F/2
  filters (the first reads the stem conv's output twice, the second also the stem conv's).
- CIFAR stem: 3x3 conv -> BN; the first cell reads that output twice.

``build_nasnet`` stacks any pair of :class:`~convnet.layers.NASNetCellSpec`, so a searched cell
becomes a network in one call; NASNet-A is one such pair. ``nasnet_a_large`` has the state-dict
keys and shapes of timm's ``nasnetalarge`` (88,753,150 parameters): its files load unchanged
(they expect inputs scaled to [-1, 1]).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from ..errors import ConvnetError
from ..layers.nasnet_cells import (
    BN_EPS,
    NASNET_A_NORMAL,
    NASNET_A_REDUCTION,
    NASNetCell,
    NASNetCellSpec,
)
from ._init import he_init
from ._registry import register_model

PAPER = "Learning Transferable Architectures for Scalable Image Recognition"


class NASNet(nn.Module):
    """Input (N, in_chans, H, W) -> logits (N, num_classes); see :func:`build_nasnet`.

    ``wiring[k]`` = (cell name, index of its h_(i-1) or None, index of its h_i) into the list of
    outputs [stem conv, cell 0, cell 1, ...]; cells run in that order.
    """

    def __init__(
        self,
        stem: nn.Module,
        cells: list[tuple[str, NASNetCell, int | None, int]],
        num_classes: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.conv0 = stem
        for name, cell, _, _ in cells:
            self.add_module(name, cell)
        self.wiring = [(name, pp, p) for name, _, pp, p in cells]
        # after cell k, drop the outputs no later cell reads (keeps training memory at a few cells)
        last = {}
        for k, (_, pp, p) in enumerate(self.wiring, start=1):
            for j in (pp, p):
                if j is not None:
                    last[j] = k
        self._free = [[j for j, k2 in last.items() if k2 == k] for k in range(1, len(cells) + 1)]
        self.num_features = cells[-1][1].out_channels
        self.act = nn.ReLU()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(dropout)
        self.last_linear = nn.Linear(self.num_features, num_classes)
        he_init(self, linear_std=None)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> the last cell's output after ReLU, (N, P, H/32, W/32) on ImageNet."""
        outs = {0: self.conv0(x)}
        for k, (name, pp, p) in enumerate(self.wiring, start=1):
            outs[k] = getattr(self, name)(outs[pp] if pp is not None else None, outs[p])
            for j in self._free[k - 1]:
                del outs[j]
        return self.act(outs[len(self.wiring)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.global_pool(self.forward_features(x)), 1)
        return self.last_linear(self.head_drop(x))

    def set_drop_path(self, p_final: float) -> None:
        """Drop-path probability p_final * (k + 1) / K for cell k of K (the paper's linear rule);
        raise ``p_final`` from 0 over training for ScheduledDropPath."""
        if not 0.0 <= p_final < 1.0:
            raise ConvnetError(f"NASNet drop_path={p_final!r}: give a probability in [0, 1)")
        cells = [getattr(self, name) for name, _, _ in self.wiring]
        for k, cell in enumerate(cells):
            cell.drop_path.p_drop = p_final * (k + 1) / len(cells)


def _stem_conv(in_chans: int, channels: int, stride: int) -> nn.Sequential:
    pad = 0 if stride == 2 else 1  # ImageNet: 'VALID' 3x3/2 (331 -> 165); CIFAR: 'SAME' 3x3
    conv = nn.Conv2d(in_chans, channels, 3, stride, pad, bias=False)
    return nn.Sequential(OrderedDict(conv=conv, bn=nn.BatchNorm2d(channels, eps=BN_EPS)))


def build_nasnet(
    normal_spec: NASNetCellSpec,
    reduction_spec: NASNetCellSpec,
    *,
    num_cells: int = 6,
    channels: int = 32,
    stem: str = "cifar",
    stem_channels: int = 96,
    num_classes: int = 10,
    in_chans: int = 3,
    skip_reduction_input: bool = False,
    drop_path: float = 0.0,
    dropout: float = 0.0,
) -> NASNet:
    """Stack ``normal_spec`` and ``reduction_spec`` cells into a NASNet.

    ``num_cells`` (N) normal cells per stack, three stacks, a reduction cell between stacks;
    ``channels`` (F) filters per hidden state in the first stack, doubled at each reduction.
    ``stem`` is ``"imagenet"`` (3x3/2 conv and two reduction cells with F/4 and F/2 filters:
    /32 in all) or ``"cifar"`` (3x3 conv: /4 in all); ``stem_channels`` is the stem conv's
    depth. ``skip_reduction_input``: the first normal cell after a reduction reads, as its
    h_(i-1), the reduction cell's own h_(i-1) instead of its h_i (NASNet-A Large does this).
    ``drop_path``: probability of dropping an operation's output in the last cell, scaled
    linearly over the cells (:meth:`NASNet.set_drop_path`); ``dropout`` before the classifier.
    """
    _check_options(stem, num_cells, channels, stem_channels, drop_path)
    plan = _plan(num_cells, channels, stem, skip_reduction_input)
    depth, level = [stem_channels], [0]  # per output: channels and times halved after the stem
    cells = []
    for name, reduction, filters, pp, p in plan:
        spec = reduction_spec if reduction else normal_spec
        cell = NASNetCell(
            spec,
            depth[pp] if pp is not None else None,
            depth[p],
            filters,
            reduction=reduction,
            prev_prev_reduced=pp is not None and level[pp] < level[p],
        )
        cells.append((name, cell, pp, p))
        depth.append(cell.out_channels)
        level.append(level[p] + (1 if reduction else 0))
    stem_module = _stem_conv(in_chans, stem_channels, 2 if stem == "imagenet" else 1)
    model = NASNet(stem_module, cells, num_classes, dropout)
    model.set_drop_path(drop_path)
    return model


def _check_options(
    stem: str, num_cells: int, channels: int, stem_channels: int, drop_path: float
) -> None:
    """Refuse options that cannot build a network, in one line naming the option and the fix."""
    if stem not in ("imagenet", "cifar"):
        raise ConvnetError(
            f"NASNet stem={stem!r}: give 'imagenet' (3x3/2 conv and two reduction "
            "cells, /32) or 'cifar' (3x3 conv, /4)"
        )
    # the first stem cell has channels // 4 filters, which a factorized reduction halves
    least = 8 if stem == "imagenet" else 1
    for name, value, low in (
        ("num_cells", num_cells, 1),
        ("channels", channels, least),
        ("stem_channels", stem_channels, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConvnetError(f"NASNet {name}={value!r}: give a whole number of at least {low}")
    if not 0.0 <= drop_path < 1.0:  # checked here too so a bad value fails before building
        raise ConvnetError(f"NASNet drop_path={drop_path!r}: give a probability in [0, 1)")


def _plan(
    num_cells: int, channels: int, stem: str, skip_reduction_input: bool
) -> list[tuple[str, bool, int, int | None, int]]:
    """(name, is reduction, filters, index of h_(i-1) or None, index of h_i) per cell, in order;
    output 0 is the stem conv's, output k the k-th cell's (TensorFlow-slim's nasnet.py order)."""
    plan: list[tuple[str, bool, int, int | None, int]] = []
    prevs: list[int | None] = [None, 0]  # outputs so far; None: nothing before the stem conv

    def add(name: str, reduction: bool, filters: int, pp: int | None) -> None:
        plan.append((name, reduction, filters, pp, prevs[-1]))
        prevs.append(len(plan))

    if stem == "imagenet":  # TF scales the stem cells' filters by 1/4 and 1/2, rounding down
        add("cell_stem_0", True, int(channels * 0.25), prevs[-2])
        add("cell_stem_1", True, int(channels * 0.5), prevs[-2])
    scale = 1
    for n in range(3 * num_cells):
        before = prevs[-2]  # the h_(i-1) this cell would read if no reduction came first
        if n and n % num_cells == 0:
            scale *= 2
            add(f"reduction_cell_{n // num_cells - 1}", True, channels * scale, prevs[-2])
        add(f"cell_{n}", False, channels * scale, before if skip_reduction_input else prevs[-2])
    return plan


@register_model(
    family="NASNet",
    year=2018,
    paper=PAPER,
    input_size=(3, 224, 224),
    params=5_289_978,
    result="ImageNet top-1 / top-5 74.0% / 91.6% (NASNet-A 4 @ 1056: 5.3M parameters, 564M "
    "multiply-adds at 224x224)",
    top1=74.0,
    top5=91.6,
    accuracy_source="Zoph et al. 2018, table 3 (mobile setting, 224x224, single crop)",
)
def nasnet_a_mobile(num_classes: int = 1000, in_chans: int = 3, **options) -> NASNet:
    """NASNet-A (4 @ 1056): F = 44, ImageNet stem of 32 filters, dropout 0.5."""
    kw = dict(num_cells=4, channels=44, stem="imagenet", stem_channels=32, dropout=0.5)
    return build_nasnet(
        NASNET_A_NORMAL,
        NASNET_A_REDUCTION,
        num_classes=num_classes,
        in_chans=in_chans,
        **(kw | options),
    )


@register_model(
    family="NASNet",
    year=2018,
    paper=PAPER,
    input_size=(3, 331, 331),
    params=88_753_150,
    result="ImageNet top-1 / top-5 82.7% / 96.2% (NASNet-A 6 @ 4032: 88.9M parameters, 23.8B "
    "multiply-adds at 331x331)",
    top1=82.7,
    top5=96.2,
    accuracy_source="Zoph et al. 2018, table 2 (331x331, single crop)",
    timm_keys=True,
)
def nasnet_a_large(num_classes: int = 1000, in_chans: int = 3, **options) -> NASNet:
    """NASNet-A (6 @ 4032): F = 168, ImageNet stem of 96 filters, timm's ``nasnetalarge`` keys."""
    kw = dict(
        num_cells=6,
        channels=168,
        stem="imagenet",
        stem_channels=96,
        skip_reduction_input=True,
        dropout=0.5,
    )
    return build_nasnet(
        NASNET_A_NORMAL,
        NASNET_A_REDUCTION,
        num_classes=num_classes,
        in_chans=in_chans,
        **(kw | options),
    )


@register_model(
    family="NASNet",
    year=2018,
    paper=PAPER,
    input_size=(3, 32, 32),
    num_classes=10,
    params=3_346_538,
    result="CIFAR-10 test error 2.65% with cutout, 3.41% without (NASNet-A 6 @ 768: 3.3M "
    "parameters)",
    top1=97.35,
    accuracy_source="Zoph et al. 2018, table 1 (NASNet-A 6 @ 768 + cutout; 100 - 2.65)",
)
def nasnet_a_cifar(num_classes: int = 10, in_chans: int = 3, **options) -> NASNet:
    """NASNet-A (6 @ 768): F = 32, CIFAR stem of 96 filters (3 x 32)."""
    kw = dict(num_cells=6, channels=32, stem="cifar", stem_channels=96)
    return build_nasnet(
        NASNET_A_NORMAL,
        NASNET_A_REDUCTION,
        num_classes=num_classes,
        in_chans=in_chans,
        **(kw | options),
    )
