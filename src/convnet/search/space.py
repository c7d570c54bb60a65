"""Search spaces: a fixed list of categorical decisions, decoded into a network.

Every controller sees a space the same way: ``space.decisions`` is a list of
:class:`Decision` (a name and its choices), a sample is one choice index per decision, and
``space.decode(sample)`` turns it into a :class:`Child`: the network as text that
``convnet train`` rebuilds, its parameters and multiply-adds, or the reason it is invalid.

``pattern`` is the notes' ``INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC``
with ``0 <= N <= 3``, ``0 <= M <= 3``, ``0 <= K < 3`` and per conv layer a filter size F, a
number of filters and a stride S (padding P = (F - 1) / 2, the notes' rule that keeps the size
at S = 1). A sample is *invalid*, and rejected before anything is built, when a layer does not
fit the volume that reaches it by the notes' rule: (W - F + 2P) / S + 1 must be a whole number
of at least 1 (``convnet.arith.fits``), for every CONV and POOL (F = 2, S = 2).

``nasnet`` is NASNet's cell space (Zoph et al. 2018, section 3): a normal and a reduction cell
of B blocks, each block choosing two inputs among the hidden states before it, two of the
paper's 13 operations and a combination (add or concat), stacked by
:func:`convnet.models.nasnet.build_nasnet` into a small CIFAR-stem network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .. import arith
from ..errors import ConvnetError

SPACES = ("pattern", "nasnet")

# pattern: the notes' ranges ("N >= 0, usually N <= 3; M >= 0; K >= 0, usually K < 3") and
# the notes' layer-size advice (small filters, 3x3 or at most 5x5, a 7x7 only in front).
MAX_M = 3
MAX_N = 3
MAX_K = 2
FILTER_SIZES = (1, 3, 5, 7)
FILTER_COUNTS = (4, 8, 16, 32, 64)
STRIDES = (1, 2)
FC_WIDTHS = (16, 32, 64, 128, 256)

# nasnet: a child small enough to train in seconds on a CPU (the paper searched with N = 2,
# F = 32 on CIFAR-10; we keep its space and shrink the child).
NASNET_BLOCKS = 2
NASNET_CELLS = 1  # normal cells per stack
NASNET_CHANNELS = 8  # F, filters per hidden state in the first stack
NASNET_STEM = 16


class SearchError(ConvnetError):
    """A search that cannot start or continue as asked (the message says how to fix it)."""


@dataclass(frozen=True)
class Decision:
    """One categorical decision: ``name`` and the values it chooses among."""

    name: str
    choices: tuple[Any, ...]


@dataclass
class Child:
    """A decoded sample: ``text`` rebuilds it (a pattern line, or a NASNet cell pair as JSON),
    ``params`` and ``macs`` (multiply-adds at the data's input size), or ``invalid``: why the
    notes' rule rejects it (then the counts are 0)."""

    text: str
    params: int = 0
    macs: int = 0
    invalid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class PatternSpace:
    """The notes' pattern language as decisions (see the module docstring)."""

    name = "pattern"

    def __init__(self, input_size: tuple[int, int, int], num_classes: int) -> None:
        self.input_size, self.num_classes = tuple(input_size), num_classes
        d = [Decision("M", tuple(range(MAX_M + 1)))]
        for m in range(MAX_M):
            d.append(Decision(f"N{m}", tuple(range(MAX_N + 1))))
            d.append(Decision(f"pool{m}", (True, False)))
            for n in range(MAX_N):
                d.append(Decision(f"F{m}{n}", FILTER_SIZES))
                d.append(Decision(f"K{m}{n}", FILTER_COUNTS))
                d.append(Decision(f"S{m}{n}", STRIDES))
        d.append(Decision("K", tuple(range(MAX_K + 1))))
        d += [Decision(f"fc{k}", FC_WIDTHS) for k in range(MAX_K)]
        self.decisions = d

    def values(self, sample: list[int]) -> dict[str, Any]:
        """Choice indices -> {decision name: chosen value}."""
        if len(sample) != len(self.decisions):
            raise SearchError(
                f"a sample has {len(sample)} choices, the space {len(self.decisions)}"
            )
        return {d.name: d.choices[i] for d, i in zip(self.decisions, sample)}

    def decode(self, sample: list[int]) -> Child:
        """The line, with parameters and MACs traced by the notes' arithmetic, or the first layer
        that does not fit. Shapes: a volume (D, H, W) through CONV (P = (F-1)/2) and POOL
        (F = 2, S = 2), then FC layers on the flattened D*H*W values."""
        v = self.values(sample)
        depth, h, w = self.input_size
        parts = [f"INPUT[{w}x{h}x{depth}]"]
        params = macs = 0
        for m in range(v["M"]):
            for n in range(v[f"N{m}"]):
                f, k, s = v[f"F{m}{n}"], v[f"K{m}{n}"], v[f"S{m}{n}"]
                p = (f - 1) // 2
                conv = f"CONV(F={f},S={s},P={p},K={k})"
                bad = _misfit(conv, h, w, f, s, p)
                if bad:
                    return Child(" -> ".join([*parts, conv]), invalid=bad)
                h, w = arith.output_size(h, f, s, p), arith.output_size(w, f, s, p)
                params += sum(arith.conv_params(f, f, depth, k))
                macs += arith.conv_macs(h, w, k, f, f, depth)
                depth = k
                parts += [conv, "RELU"]
            if v[f"pool{m}"]:
                bad = _misfit("POOL(F=2,S=2)", h, w, 2, 2, 0)
                if bad:
                    return Child(" -> ".join([*parts, "POOL"]), invalid=bad)
                h, w = arith.output_size(h, 2, 2), arith.output_size(w, 2, 2)
                parts.append("POOL")
        n_in = depth * h * w
        for k in range(v["K"]):
            width = v[f"fc{k}"]
            params += sum(arith.fc_params(n_in, width))
            macs += arith.fc_macs(n_in, width)
            parts += [f"FC-{width}", "RELU"]
            n_in = width
        params += sum(arith.fc_params(n_in, self.num_classes))
        macs += arith.fc_macs(n_in, self.num_classes)
        parts.append(f"FC-{self.num_classes}")
        return Child(" -> ".join(parts), params, macs)

    def model_text(self, child: Child) -> str:
        """What ``convnet train`` takes to rebuild the child: the line itself."""
        return child.text

    def build(self, child: Child):
        from ..notation import build

        return build(child.text, num_classes=self.num_classes)


def _misfit(layer: str, h: int, w: int, f: int, s: int, p: int) -> str | None:
    """The notes' rule, (W - F + 2P)/S + 1 whole and >= 1, on both axes; None when it fits."""
    for axis, size in (("height", h), ("width", w)):
        if not arith.fits(size, f, s, p):
            exact = arith.output_size_exact(size, f, s, p)
            return (
                f"{layer} does not fit the input {axis} {size}: "
                f"({size} - {f} + 2*{p})/{s} + 1 = {float(exact):g}"
            )
    return None


class NasnetSpace:
    """NASNet's cells as decisions: per cell (normal, reduction) and block b, two inputs in
    0..b+1, two operations and a combination; decoded and stacked by ``build_nasnet``."""

    name = "nasnet"

    def __init__(
        self, input_size: tuple[int, int, int], num_classes: int, blocks: int = NASNET_BLOCKS
    ) -> None:
        from ..layers.nasnet_cells import COMBINATIONS, OPS

        self.input_size, self.num_classes, self.blocks = tuple(input_size), num_classes, blocks
        d = []
        for cell in ("normal", "reduction"):
            for b in range(blocks):
                inputs = tuple(range(b + 2))
                d += [Decision(f"{cell}{b}_in0", inputs), Decision(f"{cell}{b}_in1", inputs)]
                d += [Decision(f"{cell}{b}_op0", OPS), Decision(f"{cell}{b}_op1", OPS)]
                d.append(Decision(f"{cell}{b}_comb", COMBINATIONS))
        self.decisions = d

    def cells(self, sample: list[int]) -> dict[str, list[list[Any]]]:
        """{"normal": blocks, "reduction": blocks}, each block [in0, in1, op0, op1, combine]."""
        if len(sample) != len(self.decisions):
            raise SearchError(
                f"a sample has {len(sample)} choices, the space {len(self.decisions)}"
            )
        v = {d.name: d.choices[i] for d, i in zip(self.decisions, sample)}
        keys = ("in0", "in1", "op0", "op1", "comb")
        return {
            cell: [[v[f"{cell}{b}_{k}"] for k in keys] for b in range(self.blocks)]
            for cell in ("normal", "reduction")
        }

    def decode(self, sample: list[int]) -> Child:
        """The cell pair as JSON; parameters and MACs from ``convnet.analysis.summary``. Two
        reductions halve the input twice: an input side below 4 is rejected (nothing fits)."""
        cells = self.cells(sample)
        text = json.dumps(cells, separators=(",", ":"))
        _, h, w = self.input_size
        if min(h, w) < 4:
            return Child(
                text, invalid=f"two reduction cells need an input of at least 4x4, got {h}x{w}"
            )
        from ..analysis import summary

        try:
            totals = summary(self.build(Child(text)), self.input_size).totals
        except ConvnetError as e:
            return Child(text, invalid=str(e))
        return Child(text, int(totals["params"]), int(totals["macs"]))

    def build(self, child: Child):
        return build_nasnet_child(json.loads(child.text), self.num_classes, self.input_size[0])

    def model_text(self, child: Child) -> str:
        """The NASNet child as a ``file.py:Net`` model is written by the study (see ``study``)."""
        return child.text


def build_nasnet_child(cells: dict[str, list[list[Any]]], num_classes: int, in_chans: int):
    """The searched cell pair stacked as the search's child: one normal cell per stack,
    F = 8, a CIFAR stem of 16 filters (input (N, in_chans, H, W) -> logits (N, num_classes))."""
    from ..layers.nasnet_cells import NASNetCellSpec
    from ..models.nasnet import build_nasnet

    normal = NASNetCellSpec(blocks=tuple(tuple(b) for b in cells["normal"]))
    reduction = NASNetCellSpec(blocks=tuple(tuple(b) for b in cells["reduction"]))
    return build_nasnet(
        normal,
        reduction,
        num_cells=NASNET_CELLS,
        channels=NASNET_CHANNELS,
        stem="cifar",
        stem_channels=NASNET_STEM,
        num_classes=num_classes,
        in_chans=in_chans,
    )


def make_space(name: str, input_size: tuple[int, int, int], num_classes: int):
    """The space ``name`` ("pattern" or "nasnet") for inputs (C, H, W) and ``num_classes``."""
    if name == "pattern":
        return PatternSpace(input_size, num_classes)
    if name == "nasnet":
        return NasnetSpace(input_size, num_classes)
    raise SearchError(f"unknown search space {name!r}; give one of {', '.join(SPACES)}")
