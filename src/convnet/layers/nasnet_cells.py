"""NASNet's convolutional cell (Zoph, Vasudevan, Shlens, Le 2018), for any cell the search finds.

A cell takes the outputs of the two cells before it, h_{i-1} and h_i, and builds B blocks. Block
b picks two hidden states among those built so far (0: h_{i-1}, 1: h_i, 2 + j: block j's
output), applies one operation from the paper's list to each, and combines the two results by
elementwise addition or by concatenation along depth; its result is hidden state 2 + b. The
cell's output is the depth concatenation of chosen hidden states (by default the ones no block
used). A *reduction* cell applies its operations to h_{i-1} and h_i with stride 2, halving
height and width; a *normal* cell keeps them.

Every hidden state has F channels (``channels``): h_i passes through ReLU-1x1 conv-BN first,
and h_{i-1} too, or, when it is twice h_i's size (the cell after a reduction), through the
factorized reduction (two 1x1 convs of F/2 on the input and on the input shifted by one pixel,
both subsampled by 2, concatenated, BN), so no pixel is simply dropped. The convolutions are
ReLU-conv-BN; a depthwise-separable conv is applied twice (stride on the first), as the paper
found better. Pools pad without counting the padding. Each operation's output but identity's
can be dropped per example (drop-path, ``layers/drop_path.py``), the paper's ScheduledDropPath
when the caller raises the probability over training.

The parameter names (``conv_1x1``, ``conv_prev_1x1``, ``path_1``, ``comb_iter_{b}_left``,
``separable_1.depthwise_conv2d``, ``bn_sep_2``, ...) are those of timm's ``nasnetalarge``, so
NASNet-A built from :data:`NASNET_A_NORMAL` and :data:`NASNET_A_REDUCTION` loads its weights.
Spatial padding is TensorFlow's ``SAME`` (``layers/same_padding.py``), as in those weights.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from ..errors import CellSpecError
from .drop_path import DropPath
from .same_padding import SameConv2d, SamePool2d

# The operations of the paper's search space (section 3), by name.
OPS: tuple[str, ...] = (
    "identity",
    "conv_1x3_3x1",  # 1x3 then 3x1 convolution
    "conv_1x7_7x1",  # 1x7 then 7x1 convolution
    "dil_conv_3x3",  # 3x3 dilated convolution (dilation 2)
    "avg_pool_3x3",
    "max_pool_3x3",
    "max_pool_5x5",
    "max_pool_7x7",
    "conv_1x1",
    "conv_3x3",
    "sep_conv_3x3",  # depthwise-separable, applied twice
    "sep_conv_5x5",
    "sep_conv_7x7",
)
COMBINATIONS: tuple[str, ...] = ("add", "concat")

BN_EPS = 0.001  # TensorFlow's batch-norm epsilon in NASNet (and in the published weights)


# --- the cell as data ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CellBlock:
    """One block: ``combine(ops[0](h[inputs[0]]), ops[1](h[inputs[1]]))``."""

    inputs: tuple[int, int]
    ops: tuple[str, str]
    combine: str = "add"


@dataclass(frozen=True)
class NASNetCellSpec:
    """A cell of B blocks and the hidden states its output concatenates.

    ``blocks`` holds :class:`CellBlock` objects or plain ``(in_0, in_1, op_0, op_1[, combine])``
    tuples. Hidden state 0 is h_{i-1} (the cell two back), 1 is h_i (the previous cell) and
    2 + b is block b's result, so block b may use states 0 .. b + 1. ``concat`` lists the
    states the output concatenates, in order; None takes the blocks' results no block uses
    (the paper's rule). An invalid spec raises :class:`CellSpecError` naming the block.
    """

    blocks: tuple[CellBlock, ...]
    concat: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        blocks = tuple(_as_block(b, i) for i, b in enumerate(self.blocks))
        if not blocks:
            raise CellSpecError("a NASNet cell spec needs at least one block")
        object.__setattr__(self, "blocks", blocks)
        for b, block in enumerate(blocks):
            _check_block(b, block)
        if self.concat is not None:
            concat = tuple(int(i) for i in self.concat)
            n = 2 + len(blocks)
            bad = [i for i in concat if not 0 <= i < n]
            if not concat or bad or len(set(concat)) != len(concat):
                raise CellSpecError(
                    f"cell concat {list(self.concat)} must list distinct hidden states in "
                    f"0..{n - 1} (0: h_(i-1), 1: h_i, 2+b: block b); give at least one"
                )
            object.__setattr__(self, "concat", concat)

    @property
    def num_states(self) -> int:
        return 2 + len(self.blocks)

    def outputs(self) -> tuple[int, ...]:
        """The hidden states the cell's output concatenates, in order."""
        if self.concat is not None:
            return self.concat
        used = {i for block in self.blocks for i in block.inputs}
        return tuple(i for i in range(2, self.num_states) if i not in used)

    def as_lists(self) -> dict:
        """A JSON-ready form; ``NASNetCellSpec(**spec.as_lists())`` rebuilds the spec."""
        return {
            "blocks": [[*b.inputs, *b.ops, b.combine] for b in self.blocks],
            "concat": list(self.concat) if self.concat is not None else None,
        }


def _as_block(b: CellBlock | Sequence, index: int) -> CellBlock:
    if isinstance(b, CellBlock):
        return CellBlock(tuple(b.inputs), tuple(b.ops), b.combine)
    if isinstance(b, (list, tuple)) and len(b) in (4, 5):
        return CellBlock((b[0], b[1]), (b[2], b[3]), b[4] if len(b) == 5 else "add")
    raise CellSpecError(
        f"cell block {index}: {b!r} is not a CellBlock or (input_0, input_1, op_0, op_1[, combine])"
    )


def _check_block(b: int, block: CellBlock) -> None:
    for i in block.inputs:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= b + 1:
            raise CellSpecError(
                f"cell block {b}: input {i!r} is not a hidden state built before it; block {b} "
                f"may use 0..{b + 1} (0: h_(i-1), 1: h_i, 2+j: block j)"
            )
    for op in block.ops:
        if op not in OPS:
            raise CellSpecError(
                f"cell block {b}: unknown operation {op!r}; one of {', '.join(OPS)}"
            )
    if block.combine not in COMBINATIONS:
        raise CellSpecError(
            f"cell block {b}: unknown combination {block.combine!r}; 'add' or 'concat'"
        )


# NASNet-A (figure 4 of the paper; TensorFlow-slim's nasnet_utils). Both published cells also
# concatenate one state a block uses (h_(i-1) in the normal cell, block 1 in the reduction
# cell), so their ``concat`` is given rather than the unused-states default.
NASNET_A_NORMAL = NASNetCellSpec(
    blocks=(
        (1, 0, "sep_conv_5x5", "sep_conv_3x3"),
        (0, 0, "sep_conv_5x5", "sep_conv_3x3"),
        (1, 0, "avg_pool_3x3", "identity"),
        (0, 0, "avg_pool_3x3", "avg_pool_3x3"),
        (1, 1, "sep_conv_3x3", "identity"),
    ),
    concat=(0, 2, 3, 4, 5, 6),
)
NASNET_A_REDUCTION = NASNetCellSpec(
    blocks=(
        (1, 0, "sep_conv_5x5", "sep_conv_7x7"),
        (1, 0, "max_pool_3x3", "sep_conv_7x7"),
        (1, 0, "avg_pool_3x3", "sep_conv_5x5"),
        (3, 2, "identity", "avg_pool_3x3"),
        (2, 1, "sep_conv_3x3", "max_pool_3x3"),
    ),
    concat=(3, 4, 5, 6),
)


# --- operations ---------------------------------------------------------------------------------


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class ActConvBn(nn.Module):
    """ReLU -> conv (SAME padding, no bias) -> BN: (N, C_in, H, W) -> (N, C_out, H/S, W/S)."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int = 1, stride: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        self.act = nn.ReLU()  # not in place: the input is another block's or cell's output too
        self.conv = SameConv2d(cin, cout, kernel_size, stride, dilation)
        self.bn = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.act(x)))


class SeparableConv2d(nn.Module):
    """Depthwise kxk conv (one filter per channel) then pointwise 1x1 conv C_in -> C_out.

    Weights k*k*C_in + C_in*C_out instead of a full conv's k*k*C_in*C_out; no biases (BN follows).
    """

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise_conv2d = SameConv2d(cin, cin, kernel_size, stride, groups=cin)
        self.pointwise_conv2d = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv2d(self.depthwise_conv2d(x))


class BranchSeparables(nn.Module):
    """The paper's separable op: (ReLU -> separable kxk -> BN) twice, the stride on the first."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.act_1 = nn.ReLU()
        self.separable_1 = SeparableConv2d(cin, cout, kernel_size, stride)
        self.bn_sep_1 = _bn(cout)
        self.act_2 = nn.ReLU(inplace=True)  # its input is this branch's own
        self.separable_2 = SeparableConv2d(cout, cout, kernel_size, 1)
        self.bn_sep_2 = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_sep_1(self.separable_1(self.act_1(x)))
        return self.bn_sep_2(self.separable_2(self.act_2(x)))


class FactorizedConv(nn.Module):
    """ReLU -> 1xk conv -> kx1 conv -> BN: a kxk receptive field for 2k*C*C weights, not k*k*C*C."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.act = nn.ReLU()
        self.conv_1 = SameConv2d(cin, cout, (1, kernel_size), (1, stride))
        self.conv_2 = SameConv2d(cout, cout, (kernel_size, 1), (stride, 1))
        self.bn = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv_2(self.conv_1(self.act(x))))


def make_op(name: str, cin: int, cout: int, stride: int = 1) -> nn.Module:
    """The module of operation ``name`` (one of :data:`OPS`): (N, cin, H, W) -> (N, cout, H/s, W/s).

    Identity and pools keep depth, so where ``cin != cout`` (or identity strides) a 1x1 conv
    and BN bring the result to ``cout``, as TensorFlow's NASNet does.
    """
    if name not in OPS:
        raise CellSpecError(f"unknown operation {name!r}; one of {', '.join(OPS)}")
    if name == "identity":
        return nn.Identity() if stride == 1 and cin == cout else ActConvBn(cin, cout, 1, stride)
    kind, k = name[: name.index("_", 4)], int(name[-1])  # "max_pool_5x5" -> ("max_pool", 5)
    if name in ("conv_1x3_3x1", "conv_1x7_7x1"):
        return FactorizedConv(cin, cout, int(name[-3]), stride)
    if kind in ("avg_pool", "max_pool"):
        pool = SamePool2d(kind[:3], k, stride)
        if cin == cout:
            return pool
        proj = nn.Conv2d(cin, cout, 1, bias=False)
        return nn.Sequential(OrderedDict(pool=pool, conv=proj, bn=_bn(cout)))
    if kind == "sep_conv":
        return BranchSeparables(cin, cout, k, stride)
    if kind == "dil_conv":
        return ActConvBn(cin, cout, k, stride, dilation=2)
    return ActConvBn(cin, cout, k, stride)  # conv_1x1, conv_3x3


# --- the factorized reduction -------------------------------------------------------------------


def factorized_paths(cin: int, cout: int) -> tuple[nn.Sequential, nn.Sequential, nn.BatchNorm2d]:
    """The two strided 1x1 paths of the factorized reduction and the BN after their concat.

    Path 1 sees pixels (2i, 2j), path 2 pixels (2i+1, 2j+1) (the input shifted up-left by one,
    zero at the far edge), each a 1x1 conv to half of ``cout``; H x W -> ceil(H/2) x ceil(W/2).
    """
    half = cout // 2
    path_1 = nn.Sequential(
        OrderedDict(
            avgpool=nn.AvgPool2d(1, stride=2, count_include_pad=False),
            conv=nn.Conv2d(cin, half, 1, bias=False),
        )
    )
    path_2 = nn.Sequential(
        OrderedDict(
            pad=nn.ZeroPad2d((-1, 1, -1, 1)),
            avgpool=nn.AvgPool2d(1, stride=2, count_include_pad=False),
            conv=nn.Conv2d(cin, cout - half, 1, bias=False),
        )
    )
    return path_1, path_2, _bn(cout)


class FactorizedReduce(nn.Module):
    """(N, C_in, H, W) -> (N, C_out, ceil(H/2), ceil(W/2)) through :func:`factorized_paths`;
    with ``stride=1`` a 1x1 conv and BN that only change the depth."""

    def __init__(self, cin: int, cout: int, stride: int = 2) -> None:
        super().__init__()
        self.stride = stride
        if stride == 2:
            self.path_1, self.path_2, self.final_path_bn = factorized_paths(cin, cout)
        else:
            self.conv = nn.Conv2d(cin, cout, 1, bias=False)
            self.bn = _bn(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return self.bn(self.conv(x))
        return self.final_path_bn(torch.cat([self.path_1(x), self.path_2(x)], 1))


# --- the cell -----------------------------------------------------------------------------------


class NASNetCell(nn.Module):
    """One cell: (h_(i-1), h_i) -> (N, len(spec.outputs()) * channels, H', W').

    ``prev_prev_channels=None`` makes h_(i-1) the raw input h_i itself (the first cell of a
    network, which has only one earlier output); ``prev_prev_reduced`` says h_(i-1) is twice
    h_i's size. ``reduction`` halves the size: H' = ceil(H/2), else H' = H. ``drop_path`` is the
    probability of dropping each operation's output per example in training.
    """

    def __init__(
        self,
        spec: NASNetCellSpec,
        prev_prev_channels: int | None,
        prev_channels: int,
        channels: int,
        *,
        reduction: bool = False,
        prev_prev_reduced: bool = False,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.spec, self.reduction = spec, reduction
        self.conv_1x1 = ActConvBn(prev_channels, channels)
        self.prev_mode = self._init_prev(prev_prev_channels, channels, prev_prev_reduced)
        depth = [prev_channels if self.prev_mode == "raw" else channels, channels]
        for b, block in enumerate(spec.blocks):
            for side, i, op in zip(("left", "right"), block.inputs, block.ops):
                stride = 2 if reduction and i < 2 else 1
                setattr(self, f"comb_iter_{b}_{side}", make_op(op, depth[i], channels, stride))
            depth.append(channels * (2 if block.combine == "concat" else 1))
        # every concatenated state is brought to the output's size and to F channels
        for i in spec.outputs():
            stride = 2 if reduction and i < 2 else 1
            if stride == 2 or depth[i] != channels:
                setattr(self, f"reduce_state_{i}", FactorizedReduce(depth[i], channels, stride))
        self.out_channels = len(spec.outputs()) * channels
        self.drop_path = DropPath(drop_path, mode="row")

    def _init_prev(self, prev_prev_channels: int | None, channels: int, reduced: bool) -> str:
        if prev_prev_channels is None:
            return "raw"
        if reduced:
            self.act = nn.ReLU()
            self.path_1, self.path_2, self.final_path_bn = factorized_paths(
                prev_prev_channels, channels
            )
            return "reduce"
        if prev_prev_channels != channels:
            self.conv_prev_1x1 = ActConvBn(prev_prev_channels, channels)
            return "project"
        return "same"

    def _h0(self, prev_prev: torch.Tensor | None, prev: torch.Tensor) -> torch.Tensor:
        if self.prev_mode == "raw":
            return prev
        if prev_prev is None:
            raise ValueError("this NASNet cell was built for two inputs; give h_(i-1)")
        if self.prev_mode == "reduce":
            x = self.act(prev_prev)
            return self.final_path_bn(torch.cat([self.path_1(x), self.path_2(x)], 1))
        if self.prev_mode == "project":
            return self.conv_prev_1x1(prev_prev)
        return prev_prev

    def forward(self, prev_prev: torch.Tensor | None, prev: torch.Tensor) -> torch.Tensor:
        states = [self._h0(prev_prev, prev), self.conv_1x1(prev)]
        for b, block in enumerate(self.spec.blocks):
            out = []
            for side, i, op in zip(("left", "right"), block.inputs, block.ops):
                y = getattr(self, f"comb_iter_{b}_{side}")(states[i])
                out.append(y if op == "identity" else self.drop_path(y))
            states.append(out[0] + out[1] if block.combine == "add" else torch.cat(out, 1))
        return torch.cat([self._output(i, states[i]) for i in self.spec.outputs()], 1)

    def _output(self, i: int, h: torch.Tensor) -> torch.Tensor:
        reduce = getattr(self, f"reduce_state_{i}", None)
        return h if reduce is None else reduce(h)
