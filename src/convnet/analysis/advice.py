"""The notes' layer sizing patterns as checks: where a model departs from each, at what cost.

Seeds 000, 001 and 002 ("layer sizing patterns") give four rules of thumb:

- **input**: divisible by 2 many times (32, 64, 96, 224, 384, 512); checked as: a multiple of
  the network's total stride, so that every halving along the way is exact;
- **conv**: small filters, 3x3 or at most 5x5, stride S=1, zero padding P=(F-1)/2 so that the
  size is kept (with dilation d the span is d*(F-1)+1, so P=d*(F-1)/2);
- **pool**: max pooling F=2, S=2; less often F=3, S=2; hardly ever a window above 3;
- **first layer**: a larger filter (7x7, ...) only at the first layer, the one that looks at the
  image; with a stride there it is the notes' compromise for memory (ZFNet's 7x7/2, AlexNet's
  11x11/4, ResNet's 7x7/2 stem).

The first rule is checked on the input size and the largest receptive-field jump; the others on
every sliding window the meta-device trace meets. A first layer that departs is reported as
the notes' own exception, not as a departure. A pool whose window covers its whole input
(global pooling at the top, as NIN, GoogLeNet and ResNet do instead of FC layers) is outside
these rules. A model that follows every rule gets no findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

COSTS = {
    "input": "seeds 000-002: with an input divisible by 2 many times every (W - F + 2P)/S + 1 "
    "along the way is whole; otherwise seed 002 says to pad or crop the input, and seed 001 that "
    "every stride and filter must be checked to fit",
    "conv filter": "seeds 001, 003, 004: a stack of 3x3 layers sees as far with fewer parameters "
    "and more non-linearities (one 7x7 layer: 49C^2 weights; three 3x3 layers: 27C^2)",
    "conv stride": "seed 002: stride 1 works better in practice and leaves all downsampling to "
    "the pools, the convs only transform depth; seed 001: with strides above 1 every stride and "
    "filter must be checked to fit",
    "conv padding": "seeds 000-002: without P=(F-1)/2 the volume shrinks at every conv and the "
    "information at the borders is 'washed away' too quickly",
    "pool": "seeds 001, 002: the common settings are F=2, S=2 (75% of the activations "
    "discarded) and, less often, F=3, S=2; windows above 3 pool too aggressively, lose too much "
    "information and usually perform worse",
}
RULES = {
    "input": "an input divisible by 2 many times (a multiple of the total stride)",
    "conv filter": "conv filters 3x3, at most 5x5",
    "conv stride": "conv stride S=1",
    "conv padding": "conv padding P=(F-1)/2, keeping the size",
    "pool": "pooling F=2, S=2 (F=3, S=2 at most)",
}
FIRST_LAYER = (
    "the notes' own exception (seeds 001, 002): a filter larger than 5 only at the first layer, "
    "on the image, and a stride there as the compromise for memory (ZFNet's 7x7/2, AlexNet's "
    "11x11/4)"
)


_POOL_OPS = {"max_pool2d", "avg_pool2d", "lp_pool2d"}


@dataclass(frozen=True)
class Finding:
    """One rule the model departs from: the layers that do, and what the notes say it costs.

    ``exception`` is set (and the finding is not a departure) for the first layer the notes
    themselves allow to be larger and strided.
    """

    rule: str  # a key of RULES, or "first layer"
    layers: tuple[str, ...]  # "features.0 (F=11 S=4 P=2)", or "input 227x227"
    cost: str
    exception: str | None = None
    note: str = ""  # a measured consequence, e.g. the first layer's memory saving

    def render(self) -> str:
        shown = ", ".join(self.layers[:4]) + (
            f" and {len(self.layers) - 4} more" if len(self.layers) > 4 else ""
        )
        if self.exception is not None:
            return f"- exception, {shown}: {self.exception}" + (
                f"; {self.note}" if self.note else ""
            )
        n = len(self.layers)
        what = f"{n} layer{'s' if n != 1 else ''}" if self.rule != "input" else "the input"
        return (
            f"- departs from '{RULES[self.rule]}': {what}, {shown}"
            + (f" ({self.note})" if self.note else "")
            + f"\n  cost: {self.cost}"
        )


@dataclass(frozen=True)
class _Slide:
    """One sliding-window call met by the trace."""

    kind: str  # "conv" or "pool"
    path: str
    hw: tuple[int, int]  # input height, width
    f: tuple[int, int]
    s: tuple[int, int]
    p: tuple[float, float]
    d: tuple[int, int]
    channels_out: int | None  # a conv's filters K

    def label(self) -> str:
        def one(v: tuple) -> str:
            v = tuple(int(x) if float(x).is_integer() else x for x in v)
            return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"

        extra = f" d={one(self.d)}" if self.d != (1, 1) else ""
        return f"{self.path} (F={one(self.f)} S={one(self.s)} P={one(self.p)}{extra})"


class _Collector:
    """The trace's ``check`` hook: records every conv and pool window with its input size."""

    def __init__(self) -> None:
        self.slides: list[_Slide] = []

    def __call__(self, name: str, x: Any, w: Any, path: str, module: nn.Module) -> None:
        weight = getattr(module, "weight", None)
        # a torch conv, or a user's registered windowed module that holds filters; pools hold none
        conv = name == "conv2d" or (
            name not in _POOL_OPS and isinstance(weight, torch.Tensor) and weight.dim() >= 2
        )
        k = getattr(module, "out_channels", None) or (
            weight.shape[0] if conv and weight is not None and weight.dim() == 4 else None
        )
        self.slides.append(
            _Slide(
                "conv" if conv else "pool",
                path or "input",
                (int(x.shape[2]), int(x.shape[3])),
                tuple(w.f),
                tuple(w.s),
                tuple(w.p),
                tuple(w.d),
                k if conv else None,
            )
        )


def sizing_advice(model: nn.Module, input_size: tuple[int, ...]) -> list[Finding]:
    """Where ``model`` departs from the notes' sizing rules at input (C, H, W).

    Runs one trace on the meta device. Returns the first-layer exception (if the first conv is
    larger or strided), then one finding per rule departed from, naming its layers in order.
    """
    from .trace import trace

    collect = _Collector()
    rec = trace(model, tuple(input_size), check=collect)
    findings: list[Finding] = []
    h, w = int(input_size[-2]), int(input_size[-1])
    jumps = [call.rf for call in rec.calls if getattr(call, "rf", None) is not None]
    stride = (
        max((int(r[0].jump) for r in jumps), default=1),
        max((int(r[1].jump) for r in jumps), default=1),
    )
    convs = [sl for sl in collect.slides if sl.kind == "conv"]
    first = convs[0] if convs and _large_or_strided(convs[0]) else None
    if first is not None:
        findings.append(_first_layer(first))
    if h % stride[0] or w % stride[1]:
        total = stride[0] if stride[0] == stride[1] else f"{stride[0]}x{stride[1]}"
        findings.append(
            Finding(
                "input",
                (f"{h}x{w}",),
                COSTS["input"],
                note=f"the network's total stride is {total}: {_halvings(h, w)}",
            )
        )
    by_rule: dict[str, list[_Slide]] = {r: [] for r in RULES if r != "input"}
    for sl in collect.slides:
        if sl is first:
            continue
        for rule in _broken(sl):
            by_rule[rule].append(sl)
    for rule, slides in by_rule.items():
        if slides:
            labels = tuple(sl.label() for sl in slides)
            findings.append(Finding(rule, labels, COSTS[rule], note=_settings(rule, slides)))
    return findings


def _settings(rule: str, slides: list[_Slide]) -> str:
    """For pools: the distinct F, S met and why each departs."""
    if rule != "pool":
        return ""
    seen = []
    for sl in slides:
        f, s = max(sl.f), max(sl.s)
        why = "does not downsample" if s == 1 else "window above 3" if f > 3 else "unusual"
        text = f"F={f} S={s}: {why}"
        if text not in seen:
            seen.append(text)
    return "; ".join(seen)


def _halvings(h: int, w: int) -> str:
    """'227 is odd', '224 = 2^5 x 7'."""

    def one(n: int) -> str:
        k = (n & -n).bit_length() - 1
        return f"{n} is odd" if k == 0 else f"{n} = 2^{k} x {n >> k}"

    return one(h) if h == w else f"{one(h)}, {one(w)}"


def _keeps_size(sl: _Slide) -> bool:
    """2P = d*(F-1) on both axes: a stride-1 window that leaves the size as it is."""
    return all(2 * sl.p[i] == sl.d[i] * (sl.f[i] - 1) for i in range(2))


def _large_or_strided(conv: _Slide) -> bool:
    """What the notes allow the first layer: a filter above 5, a stride (its padding goes with
    them). A first layer that is only unpadded departs like any other conv."""
    return max(conv.f) > 5 or max(conv.s) > 1


def _broken(sl: _Slide) -> list[str]:
    if sl.kind == "conv":
        rules = []
        if max(sl.f) > 5:
            rules.append("conv filter")
        if max(sl.s) > 1:
            rules.append("conv stride")
        if not _keeps_size(sl):
            rules.append("conv padding")
        return rules
    span = [sl.d[i] * (sl.f[i] - 1) + 1 for i in range(2)]
    if all(span[i] >= sl.hw[i] + 2 * sl.p[i] for i in range(2)):
        return []  # global pooling at the top: outside the sizing rules
    if not (sl.f[0] == sl.f[1] and sl.s[0] == sl.s[1] and (sl.f[0], sl.s[0]) in ((2, 2), (3, 2))):
        return ["pool"]
    return []


def _first_layer(conv: _Slide) -> Finding:
    """The first conv, larger or strided: what it saves against a 3x3/1 layer of as many filters."""
    out = [
        (conv.hw[i] + 2 * int(conv.p[i]) - conv.d[i] * (conv.f[i] - 1) - 1) // conv.s[i] + 1
        for i in range(2)
    ]
    note = ""
    if conv.channels_out:
        k = conv.channels_out
        have, kept = out[0] * out[1] * k, conv.hw[0] * conv.hw[1] * k
        if have < kept:
            note = (
                f"its {out[1]}x{out[0]}x{k} output holds {have:,} values per image, "
                f"{kept / have:.1f}x fewer than a 3x3/1 layer's {conv.hw[1]}x{conv.hw[0]}x{k} "
                f"({kept:,})"
            )
    return Finding("first layer", (conv.label(),), FIRST_LAYER, exception=FIRST_LAYER, note=note)


def render_advice(findings: list[Finding]) -> str:
    """One line per finding (departures with a second line on their cost); "" if none."""
    return "\n".join(f.render() for f in findings)


def advice_text(model: nn.Module, input_size: tuple[int, ...], fmt: str = "text") -> str:
    """What ``convnet summary MODEL --advice`` prints: the findings as text (markdown is the
    same bullets) or JSON; "" for a model that follows every rule."""
    from ..errors import ConvnetError

    if fmt == "csv":
        raise ConvnetError(
            "--advice prints a list, not a table: use --format text, markdown or json"
        )
    findings = sizing_advice(model, input_size)
    if fmt == "json":
        import json

        return json.dumps(advice_dicts(findings), indent=2)
    return render_advice(findings)


def advice_dicts(findings: list[Finding]) -> list[dict[str, Any]]:
    """The findings as plain dicts (for JSON)."""
    return [
        {
            "rule": f.rule,
            "layers": list(f.layers),
            "exception": f.exception is not None,
            "note": f.note,
            "cost": f.cost,
        }
        for f in findings
    ]


__all__ = ["Finding", "advice_dicts", "advice_text", "render_advice", "sizing_advice"]
