"""``summary(model)``: the notes' layer table for any model, from one trace on the meta device.

Per layer: output volume, activations (values and bytes), weights and biases, multiply-adds,
receptive field. Totals as seed 001 adds them up for VGG-16: parameters, forward activation
memory per image (x2 for the backward pass), parameter memory with gradients and optimizer
state, and the training memory at a batch size. The notes' rules are checked on the way:
an output size (W - F + 2P)/S + 1 that is not whole, a filter larger than its padded input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..errors import ShapeError
from ._ops import Call
from .depth import counting
from .rules import Rules
from .trace import trace

DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2}  # extra fp32 copies of the parameters


@dataclass
class LayerRow:
    path: str
    type: str
    hyper: str
    output: tuple[int, ...] | None
    activations: int  # output values per image
    new_memory: bool  # False when the output reuses its input's memory (in-place op or view)
    weights: int
    biases: int
    params: int
    macs: int  # multiply-adds per image
    rf: dict[str, Any] | None  # {"size", "jump", "start"}; None where units see the whole input
    depth: int = 0
    shared: bool = False
    source: str | None = None  # position in a pattern-language line, when built from one

    @property
    def volume(self) -> str:
        """The output volume as the notes write it: WxHxD."""
        return volume(self.output)


def volume(shape: tuple[int, ...] | None) -> str:
    if shape is None:
        return "-"
    if len(shape) == 3:
        c, h, w = shape
        return f"{w}x{h}x{c}"
    if len(shape) == 1:
        return f"1x1x{shape[0]}"
    return "x".join(str(s) for s in shape)


@dataclass
class Summary:
    model: str
    input: tuple[int, ...]
    rows: list[LayerRow]
    totals: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    dtype: str = "float32"
    batch_size: int = 1
    containers: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input": list(self.input),
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "rows": [
                {
                    "path": r.path,
                    "type": r.type,
                    "hyper": r.hyper,
                    "output": list(r.output) if r.output is not None else None,
                    "activations": r.activations,
                    "new_memory": r.new_memory,
                    "weights": r.weights,
                    "biases": r.biases,
                    "params": r.params,
                    "macs": r.macs,
                    "rf": r.rf,
                    "shared": r.shared,
                }
                for r in self.rows
            ],
            "totals": dict(self.totals),
            "warnings": list(self.warnings),
        }

    def render(self, fmt: str = "table", width: int | None = None) -> str:
        from . import report

        return report.render(self, fmt, width=width)

    def __str__(self) -> str:
        return self.render("table")


def _hyper(call: Call) -> str:
    m = call.module
    w = call.window
    parts = []
    if w is not None:

        def one(v):
            return str(v[0]) if v[0] == v[1] else f"{v[0]}x{v[1]}"

        parts += [f"F={one(w.f)}", f"S={one(w.s)}", f"P={one(tuple(_num(x) for x in w.p))}"]
        if w.d != (1, 1):
            parts.append(f"d={one(w.d)}")
    if isinstance(m, nn.Conv2d) and m.groups != 1:
        parts.append(f"g={m.groups}")
    if isinstance(m, nn.Linear):
        parts.append(f"{m.in_features}->{m.out_features}")
    if isinstance(m, nn.Dropout):
        parts.append(f"p={m.p}")
    if isinstance(m, nn.LocalResponseNorm):
        parts.append(f"n={m.size} a={m.alpha:g} b={m.beta:g} k={m.k:g}")
    if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        parts.insert(0, f"out={m.output_size}")
    return " ".join(parts)


def _num(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def summary(
    model: nn.Module | str,
    input_size: tuple[int, ...] | None = None,
    batch_size: int | None = None,
    *,
    dtype: str | torch.dtype = "float32",
    optimizer: str = "momentum",
    memory_gb: float | None = None,
    strict: bool = False,
    training_memory: bool | None = None,
) -> Summary:
    """The notes' table for ``model`` (a module, a zoo name or a pattern-language line).

    ``input_size`` is (C, H, W); by default the model's own (zoo models and lines with
    ``INPUT[WxHxD]`` carry one). Nothing is computed on real weights: the trace runs on the meta
    device, so VGG-16 summarizes in well under a second.

    The memory estimates (``totals["training_bytes"]``: one simulated training step at
    ``batch_size``, default 1; ``totals["inference_bytes"]``: one forward pass without
    gradients, the notes' test time, of which ``inference_activation_bytes`` the largest set
    of activations alive at once; ``totals["max_batch"]`` and ``totals["max_inference_batch"]``:
    the largest batches within ``memory_gb``) run when asked: ``training_memory=True``, or a
    ``batch_size`` or ``memory_gb`` given. ``training_memory=False`` skips them even then. The notes' rough rule,
    ``params x (2 + optimizer state) + 2 x activations x batch``, is in every summary.
    """
    name = _display_name(model)
    if isinstance(model, str):
        from ..resolve import resolve_model

        model = resolve_model(model, meta=True).model
    input_size = _input_size(model, input_size, name)
    dtype = _check_options(dtype, optimizer, batch_size)
    if training_memory is None:
        training_memory = batch_size is not None or memory_gb is not None
    batch_size = 1 if batch_size is None else batch_size

    rules = Rules(strict)
    try:
        with counting(model) as depth:  # the papers' depth, from the same trace
            rec = trace(model, input_size, check=rules)
    except ShapeError:
        raise
    except RuntimeError as e:
        line = str(e).strip().splitlines()[0]
        raise ShapeError(f"{name} does not run on a {volume(input_size)} input: {line}") from None

    warnings = rules.report(model, input_size, rec.calls)  # one line per finding
    warnings += unknown_op_warnings(rec.unknown)
    rows = [_row(c) for c in rec.calls]
    totals = _totals(model, input_size, rows, dtype, optimizer, batch_size)
    if depth.result is not None:
        totals.update(depth.result.totals())
    if training_memory:
        warnings += _training_memory(
            totals, model, input_size, batch_size, memory_gb, optimizer, dtype
        )
    containers = {
        n: type(m).__name__ for n, m in model.named_modules() if any(True for _ in m.children())
    }
    return Summary(name, input_size, rows, totals, warnings, dtype, batch_size, containers)


def _display_name(model: nn.Module | str) -> str:
    if isinstance(model, str):
        return model
    return (
        getattr(model, "model_name", None)
        or getattr(model, "notation_line", None)
        or type(model).__name__
    )


def _input_size(model: nn.Module, input_size: tuple[int, ...] | None, name: str) -> tuple[int, ...]:
    if input_size is None:
        input_size = getattr(model, "default_input_size", None)
        if input_size is None:
            raise ShapeError(
                f"{name}: give the input size, e.g. input_size=(3, 224, 224) or --input 3x224x224"
            )
    return tuple(int(v) for v in input_size)


def _check_options(dtype: str | torch.dtype, optimizer: str, batch_size: int | None) -> str:
    """The dtype's name, once every option is known to be valid."""
    if isinstance(dtype, torch.dtype):
        dtype = next((k for k, v in DTYPES.items() if v == dtype), str(dtype))
    if dtype not in DTYPES:
        raise ShapeError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if optimizer not in OPTIMIZER_STATE:
        raise ShapeError(
            f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZER_STATE)}"
        )
    if batch_size is not None and batch_size < 1:
        raise ShapeError(f"batch size must be at least 1, got {batch_size}")
    return dtype


def _totals(
    model: nn.Module,
    input_size: tuple[int, ...],
    rows: list[LayerRow],
    dtype: str,
    optimizer: str,
    batch_size: int,
) -> dict[str, Any]:
    """Seed 001's sums: parameters, MACs, activation memory, the notes' training-memory rule."""
    itemsize = torch.empty((), dtype=DTYPES[dtype]).element_size()
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    activations = math.prod(input_size) + sum(r.activations for r in rows if r.new_memory)
    forward_bytes = activations * itemsize
    param_bytes = n_params * 4  # fp32 master weights, also under bf16 autocast
    macs = sum(r.macs for r in rows)
    return {
        "params": n_params,
        "trainable_params": trainable,
        "frozen_params": n_params - trainable,
        "weights": sum(r.weights for r in rows),
        "biases": sum(r.biases for r in rows),
        "activations": activations,
        "macs": macs,
        "flops": 2 * macs,
        "forward_bytes": forward_bytes,
        "forward_backward_bytes": 2 * forward_bytes,
        "param_bytes": param_bytes,
        "param_grad_optimizer_bytes": param_bytes * (2 + OPTIMIZER_STATE[optimizer]),
        "notes_training_bytes": param_bytes * (2 + OPTIMIZER_STATE[optimizer])
        + 2 * forward_bytes * batch_size,
        "training_bytes": None,
        "max_batch": None,
        "inference_bytes": None,
        "inference_activation_bytes": None,
        "max_inference_batch": None,
    }


def _training_memory(
    totals: dict[str, Any],
    model: nn.Module,
    input_size: tuple[int, ...],
    batch_size: int,
    memory_gb: float | None,
    optimizer: str,
    dtype: str,
) -> list[str]:
    """Fill ``training_bytes`` and ``inference_bytes`` (and ``max_batch``,
    ``max_inference_batch``) from a simulated training step and forward pass; return any notes.

    Inference is the notes' test time: no gradients, so each activation is freed once the
    layers that read it have run; the peak is parameters + buffers + batch + the largest set
    of activations alive at one moment (a layer's input and output, and whatever a branch still
    holds: a shortcut, an Inception module's finished paths, a DenseNet block's features).
    """
    from .memory import estimate_inference_memory, estimate_training_memory, max_batch

    budget = None if memory_gb is None else int(memory_gb * 2**30)
    inference = estimate_inference_memory(model, input_size, batch_size, dtype=DTYPES[dtype])
    totals["inference_bytes"] = inference.peak_bytes
    totals["inference_activation_bytes"] = inference.activations_bytes
    if budget is not None:
        totals["max_inference_batch"] = max_batch(
            model, input_size, budget, inference=True, dtype=DTYPES[dtype]
        )
    if totals["trainable_params"] == 0:
        return ["no trainable parameters, so there is no training step to estimate memory for"]
    options = {"optimizer": optimizer, "dtype": DTYPES[dtype]}
    est = estimate_training_memory(model, input_size, batch_size, **options)
    totals["training_bytes"] = est.peak_bytes
    if budget is not None:
        totals["max_batch"] = max_batch(model, input_size, budget, **options)
    return []


def unknown_op_warnings(unknown: dict[str, list[str]]) -> list[str]:
    """One line per torch function whose multiply-adds the trace does not know (counted as 0)."""
    lines = []
    for name, places in unknown.items():
        more = len(places) - 1
        where = places[0] + (f" and {more} more place{'s' * (more > 1)}" if more else "")
        lines.append(
            f"convnet does not know the multiply-adds of torch's {name} (called in {where}), "
            f"so it counts 0 MACs for it; tell it with convnet.analysis.register_op({name!r}, "
            "macs=lambda out, *args, **kwargs: ...), or macs=0 if it has none"
        )
    return lines


def _row(c: Call) -> LayerRow:
    weights = sum(v for k, v in c.params.items() if not k.endswith("bias"))
    biases = sum(v for k, v in c.params.items() if k.endswith("bias"))
    rf = None
    if c.rf is not None:
        h, w = c.rf
        rf = {
            "size": _num(h.size) if h.size == w.size else [_num(h.size), _num(w.size)],
            "jump": _num(h.jump) if h.jump == w.jump else [_num(h.jump), _num(w.jump)],
            "start": _num(h.start) if h.start == w.start else [_num(h.start), _num(w.start)],
        }
    return LayerRow(
        path=c.path,
        type=c.type,
        hyper=_hyper(c),
        output=c.output,
        activations=math.prod(c.output) if c.output else 0,
        new_memory=c.new_memory,
        weights=weights,
        biases=biases,
        params=weights + biases,
        macs=c.macs,
        rf=rf,
        depth=c.depth,
        shared=c.shared,
        source=c.source,
    )


__all__ = ["LayerRow", "Summary", "summary", "volume"]
