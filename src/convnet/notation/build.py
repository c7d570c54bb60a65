"""Tree -> ``nn.Sequential``: expand repetitions, trace shapes by arithmetic, create modules.

Shapes are traced with the notes' formula, never a forward pass: per spatial dimension

    out = floor((in + 2 P - (dilation (F - 1) + 1)) / S) + 1

so FC layers know their input size (C * H * W after the Flatten that is inserted before the
first FC) before any weight exists. Modules are created on the meta device, counted, then
materialized on the target device and initialized (He et al. 2015 for convolutions, as the
notes recommend: w ~ N(0, 2 / fan_in); PyTorch's defaults elsewhere).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from .. import arith
from ..layers.l2pool import L2Pool2d
from ..layers.locally_connected import LocallyConnected2d
from ._errors import NotationShapeError, error, problem
from ._parser import parse
from .format import format_layer, format_tree
from .tree import Layer, Net, Node

DEFAULT_INPUT = (3, 32, 32)  # (C, H, W): the notes' CIFAR-10 example, INPUT[32x32x3]
DEFAULT_CLASSES = 10  # CIFAR-10, when the last FC has no size and num_classes is not given
MAX_LAYERS = 10_000  # an expanded line longer than this is a typo in a count
MAX_VALUES = 2**40  # per volume or weight tensor; beyond is a typo (and overflows int64 math)
MAX_PARAMS = 2**31  # 8 GiB of float32; larger lines can still be built on device="meta"


@dataclass(frozen=True)
class _Placed:
    layer: Layer
    index: int  # 1-based position in the expanded line, INPUT not counted


def build(
    text: str | Net,
    input_size: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
    *,
    in_chans: int | None = None,
    counts: dict[str, int] | None = None,
    keep_optional: bool = True,
    conv_width: int = 32,
    fc_width: int = 512,
    device: str | torch.device | None = None,
) -> nn.Sequential:
    """Build the ``nn.Sequential`` a line describes.

    Args:
        text: a line (``"INPUT[32x32x3] -> [CONV3-32 -> RELU -> POOL2]*2 -> FC-10"``) or a
            parsed ``Net``.
        input_size: (C, H, W); overrides the line's ``INPUT[WxHxD]`` (note the order: the
            notes write width x height x depth, torch wants channels first). With neither,
            the notes' CIFAR-10 example 32x32x3 is used.
        num_classes: units of the last FC, overriding the size written there (as a zoo
            model's head is replaced). Without it, the written size, else 10.
        in_chans: overrides the input depth D.
        counts: values of symbolic repetitions (``{"N": 2, "M": 3, "K": 1}`` for the notes'
            ``[[CONV -> RELU]*N -> POOL?]*M``), overriding bindings written after ``;``.
        keep_optional: False drops the optional layers (``POOL?``).
        conv_width: filters of a bare ``CONV``/``LC`` (no K): ``conv_width * 2**d`` where d is
            the number of downsampling pools (S > 1) before it, at most max(512, conv_width);
            32, 64, 128, ... as in VGG-style nets.
        fc_width: units of a bare hidden ``FC`` (any FC but the last).
        device: where the weights live (default: torch's default device, normally the CPU);
            ``"meta"`` builds shapes only (no memory, no initialization).

    Returns:
        ``nn.Sequential`` of the layers (an ``nn.Flatten`` inserted before the first FC), with
        ``default_input_size`` (C, H, W) and ``notation_line`` (the canonical line) set, and on
        every module ``notation_source``, e.g. ``"layer 4 (col 17): CONV(F=3,S=2)"``.

    Raises:
        NotationError: the line does not parse, a count has no value, or a layer does not fit
            the volume that reaches it (then also a ShapeError).
    """
    tree = parse(text) if isinstance(text, str) else text
    if not isinstance(tree, Net):
        raise TypeError(f"build() takes a line or a Net, not {type(text).__name__}")
    for name, value in (("conv_width", conv_width), ("fc_width", fc_width)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    values = dict(tree.bindings)
    for key, value in (counts or {}).items():
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"counts[{key!r}] must be an int >= 0, got {value!r}")
        values[key.upper()] = value
    layers = _expand(tree.body, values, keep_optional)
    size = _input_size(layers, input_size, in_chans)
    placed = [_Placed(lay, i) for i, lay in enumerate((x for x in layers if x.kind != "INPUT"), 1)]
    last_fc = max((p.index for p in placed if p.layer.kind == "FC"), default=None)
    with torch.device("meta"):
        modules = _Tracer(size, last_fc, num_classes, conv_width, fc_width).run(placed)
    model = nn.Sequential(*modules)
    target = torch.device(device) if device is not None else torch.get_default_device()
    if target.type != "meta":
        n_params = sum(p.numel() for p in model.parameters())
        if n_params > MAX_PARAMS:
            raise problem(
                1,
                "",
                f"the line builds {n_params:,} parameters ({n_params * 4 / 2**30:.1f} GiB in float32); "
                "check the sizes, or build it on device='meta' to inspect it",
            )
        # torch.empty, not to_empty: empty_like of a meta tensor runs Python decompositions
        # that import sympy (0.7 s of a cold start); the initializers fill every tensor next
        model._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device=target))
        _initialize(model)
    model.default_input_size = size
    # The line with the counts this model was built with, so that it rebuilds the same model.
    used = {k: values[k] for k in tree.symbols() if k in values}
    model.notation_line = format_tree(Net(tree.body, tuple(sorted(used.items()))))
    return model


def _expand(nodes: tuple[Node, ...], values: dict[str, int], keep_optional: bool) -> list[Layer]:
    """The flat list of layers; a repeated body is expanded once and copied ``count`` times."""
    out: list[Layer] = []
    for node in nodes:
        if node.optional and not keep_optional:
            continue
        if isinstance(node, Layer):
            block, count = [node], 1
        else:
            count = node.count
            if isinstance(count, str):
                if count not in values:
                    raise error(
                        node.count_col,
                        count,
                        "a number after '*'",
                        f"give {count} a value: append '; {count}=2' to the line "
                        f"or pass counts={{'{count}': 2}}",
                    )
                count = values[count]
            block = _expand(node.body, values, keep_optional) if count else []
        if len(out) + len(block) * count > MAX_LAYERS:
            raise problem(
                node.col,
                node.kind if isinstance(node, Layer) else "[",
                f"the line expands to more than {MAX_LAYERS:,} layers; check the counts",
            )
        out.extend(block * count)
    return out


def _input_size(layers: list[Layer], input_size, in_chans: int | None) -> tuple[int, int, int]:
    size = DEFAULT_INPUT
    for i, lay in enumerate(layers):
        if lay.kind != "INPUT":
            continue
        if i > 0:
            raise problem(lay.col, "INPUT", "INPUT can only be the first layer of the line")
        if lay.args:
            p = lay.params
            size = (p["D"], p["H"], p["W"])
    if input_size is not None:
        if len(input_size) != 3 or not all(isinstance(v, int) and v > 0 for v in input_size):
            raise ValueError(f"input_size must be (C, H, W) positive ints, got {input_size!r}")
        size = tuple(input_size)
    if in_chans is not None:
        size = (int(in_chans), size[1], size[2])
    return size


def _wxhxd(shape: tuple[int, ...]) -> str:
    return f"[{shape[2]}x{shape[1]}x{shape[0]}]" if len(shape) == 3 else f"[{shape[0]}]"


class _Tracer:
    """Walks the expanded line, keeping the current shape: (C, H, W), or (N,) after an FC."""

    def __init__(self, size, last_fc, num_classes, conv_width, fc_width) -> None:
        self.shape: tuple[int, ...] = size
        self.last_fc, self.num_classes = last_fc, num_classes
        self.conv_width, self.fc_width = conv_width, fc_width
        self.downsamples = 0
        self.flat_at: Layer | None = None  # the first FC, once the volume is flat

    def run(self, placed: list[_Placed]) -> list[nn.Module]:
        if math.prod(self.shape) > MAX_VALUES:
            raise problem(
                1, "INPUT", f"the input {_wxhxd(self.shape)} has more than {MAX_VALUES:,} values"
            )
        modules: list[nn.Module] = []
        for p in placed:
            source = f"layer {p.index} (col {p.layer.col}): {format_layer(p.layer)}"
            if p.layer.kind == "FC" and len(self.shape) == 3:
                flat = nn.Flatten()
                flat.notation_source = f"inserted before {source}"
                modules.append(flat)
                self.shape = (math.prod(self.shape),)
            module = self.make(p)
            if math.prod(self.shape) > MAX_VALUES:
                raise problem(
                    p.layer.col,
                    p.layer.kind,
                    f"{format_layer(p.layer)} outputs {_wxhxd(self.shape)}, more than {MAX_VALUES:,} values; "
                    "check the input size and the filter counts",
                )
            module.notation_source = source
            modules.append(module)
        return modules

    def make(self, p: _Placed) -> nn.Module:
        lay, a = p.layer, p.layer.params
        kind = lay.kind
        if (
            kind in ("CONV", "LC", "POOL", "AVGPOOL", "L2POOL", "GAP", "LRN")
            and len(self.shape) == 1
        ):
            raise problem(
                lay.col,
                kind,
                f"{kind} needs a [WxHxD] volume, but the FC at col {self.flat_at.col} before it "
                "outputs a flat vector; put every CONV and POOL before the first FC",
            )
        if kind in ("CONV", "LC"):
            return self.conv(lay, a)
        if kind in ("POOL", "AVGPOOL", "L2POOL"):
            return self.pool(lay, a)
        if kind == "GAP":
            self.shape = (self.shape[0], 1, 1)
            return nn.AdaptiveAvgPool2d(1)
        if kind == "FC":
            self.flat_at = self.flat_at or lay
            if p.index == self.last_fc:
                out = self.num_classes or a.get("N", DEFAULT_CLASSES)
            else:
                out = a.get("N", self.fc_width)
            self.weights(lay, self.shape[0] * out)
            module = nn.Linear(self.shape[0], out)
            self.shape = (out,)
            return module
        if kind == "RELU":
            return nn.ReLU()
        if kind == "SOFTMAX":
            return nn.Softmax(dim=1)
        if kind == "DROPOUT":
            return nn.Dropout(a.get("p", 0.5))
        if kind == "BN":
            return (
                nn.BatchNorm2d(self.shape[0])
                if len(self.shape) == 3
                else nn.BatchNorm1d(self.shape[0])
            )
        if kind == "LRN":
            n = a.get("n", 5)
            # The paper divides by (k + alpha * sum)^beta; torch by (k + alpha/n * sum)^beta.
            return nn.LocalResponseNorm(
                n, alpha=a.get("alpha", 1e-4) * n, beta=a.get("beta", 0.75), k=a.get("k", 2.0)
            )
        raise problem(lay.col, kind, f"{kind} is not a layer build() knows")  # INPUT handled before

    def conv(self, lay: Layer, a: dict) -> nn.Module:
        c, h, w = self.shape
        f, s, dil, groups = a.get("F", 3), a.get("S", 1), a.get("dilation", 1), a.get("groups", 1)
        pad = a.get("P", dil * (f - 1) // 2)
        k = a.get(
            "K", min(self.conv_width * 2 ** min(self.downsamples, 30), max(512, self.conv_width))
        )
        if c % groups or k % groups:
            raise problem(
                lay.col,
                format_layer(lay),
                f"groups={groups} must divide both the input depth {c} and the filters K={k}",
                NotationShapeError,
            )
        oh, ow = (self.fit(lay, n, f, s, pad, dil, exact=lay.kind == "LC") for n in (h, w))
        self.weights(lay, k * (c // groups) * f * f * (oh * ow if lay.kind == "LC" else 1))
        if lay.kind == "LC":
            module = LocallyConnected2d(c, k, (h, w), f, s, pad)
        else:
            module = nn.Conv2d(c, k, f, s, pad, dilation=dil, groups=groups)
        self.shape = (k, oh, ow)
        return module

    def pool(self, lay: Layer, a: dict) -> nn.Module:
        c, h, w = self.shape
        f, s, pad = a.get("F", 2), a.get("S", 2), a.get("P", 0)
        if 2 * pad > f:
            raise problem(
                lay.col,
                format_layer(lay),
                f"{lay.kind}'s padding P={pad} is more than half its window F={f}; "
                "every window must cover at least one input value",
                NotationShapeError,
            )
        oh, ow = (self.fit(lay, n, f, s, pad) for n in (h, w))
        if s > 1:
            self.downsamples += 1
        self.shape = (c, oh, ow)
        if lay.kind == "POOL":
            return nn.MaxPool2d(f, s, pad)
        if lay.kind == "AVGPOOL":
            return nn.AvgPool2d(f, s, pad)
        return L2Pool2d(f, s, pad)

    def weights(self, lay: Layer, n: int) -> None:
        """Refuse a weight tensor too large to create even on the meta device."""
        if n > MAX_VALUES:
            raise problem(
                lay.col,
                lay.kind,
                f"{format_layer(lay)} would have {n:,} weights on input {_wxhxd(self.shape)}; "
                "check the sizes written in the line",
            )

    def fit(
        self, lay: Layer, size: int, f: int, s: int, pad: int, dil: int = 1, exact: bool = False
    ) -> int:
        """Output size floor((in - F + 2P)/S) + 1, with F dilated to d*(F-1)+1 (arith); a misfit
        that would lose the whole volume (or, for LC, any input column) raises with the layer's
        column."""
        out = arith.output_size(size, f, s, pad, dil)
        if out < 1 or (exact and not arith.fits(size, f, s, pad, dil)):
            span = arith.effective_kernel(f, dil)
            room = size + 2 * pad - span
            why = "< 0" if room < 0 else f"is not a multiple of S={s} (LC has no partial windows)"
            raise problem(
                lay.col,
                format_layer(lay),
                f"{format_layer(lay)} does not fit its input {_wxhxd(self.shape)}: "
                f"in + 2P - F = {size} + 2*{pad} - {span} = {room} {why}; "
                "change F, S or P, or remove a POOL before it",
                NotationShapeError,
            )
        return out


def _initialize(model: nn.Module) -> None:
    for m in model.modules():
        reset = getattr(m, "reset_parameters", None)
        if callable(reset):
            reset()
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
