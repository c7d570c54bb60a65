"""The vocabulary: every layer name, its parameters, their defaults and short written forms.

Parameter letters follow the notes: F (receptive field, the kernel size), S (stride),
P (zero padding), K (number of filters), N (units of an FC layer).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Param:
    """One hyperparameter: canonical ``name`` (as format writes it), type, allowed range."""

    name: str
    kind: type  # int or float
    minimum: float
    below: float | None = None  # exclusive upper bound
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayerSpec:
    """A layer name and how it may be written.

    ``digits``: the parameter written glued to the name (CONV3 -> F=3, FC4096 -> N=4096);
    ``dash``: the parameter written after a dash (CONV3-64 -> K=64, FC-10 -> N=10);
    ``positional``: the parameter a bare number in parentheses sets (FC(10), DROPOUT(0.5)).
    """

    name: str
    params: tuple[Param, ...] = ()
    digits: str | None = None
    dash: str | None = None
    positional: str | None = None
    spatial: bool = False  # needs a (C, H, W) volume, so it cannot follow an FC
    doc: str = ""

    def param(self, written: str) -> Param | None:
        w = written.upper()
        for p in self.params:
            if w == p.name.upper() or w in p.aliases:
                return p
        return None


MAX_INT = 2**31 - 1  # larger values are typos, and overflow the backends' int32 sizes

_F = Param("F", int, 1, aliases=("KERNEL", "KERNEL_SIZE"))
_S = Param("S", int, 1, aliases=("STRIDE",))
_P = Param("P", int, 0, aliases=("PAD", "PADDING"))
_K = Param("K", int, 1, aliases=("FILTERS",))
_POOL = (_F, _S, _P)

SPECS: dict[str, LayerSpec] = {
    s.name: s
    for s in (
        LayerSpec(
            "INPUT",
            (
                Param("W", int, 1, aliases=("WIDTH",)),
                Param("H", int, 1, aliases=("HEIGHT",)),
                Param("D", int, 1, aliases=("DEPTH",)),
            ),
            doc="the image volume; INPUT[WxHxD], width x height x depth as the notes write it",
        ),
        LayerSpec(
            "CONV",
            (_F, _S, _P, _K, Param("dilation", int, 1), Param("groups", int, 1)),
            digits="F",
            dash="K",
            spatial=True,
            doc="convolution; F=3 S=1 P=dilation*(F-1)/2 (keeps the size); K see build()",
        ),
        LayerSpec("RELU", doc="max(0, x), elementwise"),
        LayerSpec("POOL", _POOL, digits="F", spatial=True, doc="max pooling, F=2 S=2 P=0"),
        LayerSpec("AVGPOOL", _POOL, digits="F", spatial=True, doc="average pooling, F=2 S=2 P=0"),
        LayerSpec("L2POOL", _POOL, digits="F", spatial=True, doc="L2-norm pooling, F=2 S=2 P=0"),
        LayerSpec("GAP", spatial=True, doc="global average pooling to 1x1"),
        LayerSpec(
            "FC",
            (Param("N", int, 1, aliases=("UNITS", "OUT")),),
            digits="N",
            dash="N",
            positional="N",
            doc="fully connected; the last one has num_classes units",
        ),
        LayerSpec(
            "DROPOUT",
            (Param("p", float, 0.0, below=1.0),),
            positional="p",
            doc="dropout, p=0.5 the probability of dropping a unit",
        ),
        LayerSpec("BN", doc="batch normalization (2d on volumes, 1d after FC)"),
        LayerSpec(
            "LRN",
            (
                Param("k", float, 0.0),
                Param("n", int, 1),
                Param("alpha", float, 0.0),
                Param("beta", float, 0.0),
            ),
            spatial=True,
            doc="local response normalization (AlexNet): x / (k + alpha*sum_n x^2)^beta",
        ),
        LayerSpec(
            "LC",
            (_F, _S, _P, _K),
            digits="F",
            dash="K",
            spatial=True,
            doc="locally connected: a conv whose filters are not shared; defaults as CONV",
        ),
        LayerSpec("SOFTMAX", doc="softmax over the channels"),
    )
}

ALIASES = {"MAXPOOL": "POOL", "BATCHNORM": "BN", "AVG_POOL": "AVGPOOL", "MAX_POOL": "POOL"}

# Defaults the text may leave out (CONV's P and K, FC's N depend on context: see build.py).
DEFAULTS: dict[str, dict[str, int | float]] = {
    "CONV": {"F": 3, "S": 1, "dilation": 1, "groups": 1},
    "LC": {"F": 3, "S": 1},
    "POOL": {"F": 2, "S": 2, "P": 0},
    "AVGPOOL": {"F": 2, "S": 2, "P": 0},
    "L2POOL": {"F": 2, "S": 2, "P": 0},
    "DROPOUT": {"p": 0.5},
    # AlexNet's values (Krizhevsky et al. 2012, section 3.3), as the notes quote them.
    "LRN": {"k": 2.0, "n": 5, "alpha": 1e-4, "beta": 0.75},
}

KNOWN = sorted([*SPECS, *ALIASES])
