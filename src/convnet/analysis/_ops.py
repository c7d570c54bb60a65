"""What the meta-device trace knows about torch calls: names, hyperparameters, MACs, checks.

Kept apart from the recorder so that the tables of operations read on their own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.utils._device import _device_constructors

from ..arith import RF
from ..errors import ShapeError

QUIET = {
    "size",
    "dim",
    "numel",
    "__get__",
    "__len__",
    "__format__",
    "__repr__",
    "__bool__",
    "__index__",
    "type",
    "to",
    "float",
    "half",
    "bfloat16",
    "contiguous",
    "detach",
    "requires_grad_",
    "is_floating_point",
    "__setitem__",
    "__set__",
    "stride",
    "data_ptr",
    "storage_offset",
    "element_size",
    "get_device",
}

# Positional parameter names of the calls whose hyperparameters matter.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv_transpose2d": (
        "input",
        "weight",
        "bias",
        "stride",
        "padding",
        "output_padding",
        "groups",
        "dilation",
    ),
    "max_pool2d": (
        "input",
        "kernel_size",
        "stride",
        "padding",
        "dilation",
        "ceil_mode",
        "return_indices",
    ),
    "avg_pool2d": (
        "input",
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    ),
    "lp_pool2d": ("input", "norm_type", "kernel_size", "stride", "ceil_mode"),
    "adaptive_avg_pool2d": ("input", "output_size"),
    "adaptive_max_pool2d": ("input", "output_size", "return_indices"),
    "linear": ("input", "weight", "bias"),
    "pad": ("input", "pad", "mode", "value"),
    "unfold": ("input", "kernel_size", "dilation", "padding", "stride"),
    "einsum": ("equation",),
}
ALIASES = {
    "_max_pool2d": "max_pool2d",
    "max_pool2d_with_indices": "max_pool2d",
    "adaptive_max_pool2d_with_indices": "adaptive_max_pool2d",
    "_adaptive_max_pool2d": "adaptive_max_pool2d",
}
SHAPE_PRESERVING = {
    "batch_norm",
    "layer_norm",
    "group_norm",
    "instance_norm",
    "local_response_norm",
}
# Elementwise activations: same shape out; the in-place forms return their input.
ELEMENTWISE = {
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "gelu",
    "silu",
    "sigmoid",
    "tanh",
    "hardtanh",
    "hardswish",
}
INPLACE = {f"{n}_" for n in ELEMENTWISE} | {"__iadd__", "add_", "__imul__", "mul_"}
BINARY = {"add", "__add__", "sub", "__sub__", "mul", "__mul__"}
FACTORIES = {f.__name__ for f in _device_constructors()}
SLIDING = {"conv2d", "max_pool2d", "avg_pool2d", "lp_pool2d"}


def op_name(func: Callable) -> str:
    name = getattr(func, "__name__", str(func))
    return ALIASES.get(name, name)


def bind(name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    names = SIGNATURES.get(name, ())
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


def pair(v: Any, default: int | None = None) -> tuple[Any, Any]:
    if v is None:
        v = default
    if isinstance(v, (list, tuple, torch.Size)):
        return (v[0], v[-1]) if len(v) else (default, default)
    return (v, v)


@dataclass
class Window:
    """A sliding window's hyperparameters along H and W, as the notes write F, S, P."""

    f: tuple[int, int]
    s: tuple[int, int]
    p: tuple[float, float]
    d: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    @classmethod
    def of(cls, name: str, b: dict, weight_hw: tuple[int, int] | None = None) -> Window:
        if name == "conv2d":
            f = weight_hw
            s, d = pair(b.get("stride"), 1), pair(b.get("dilation"), 1)
            pad = b.get("padding", 0)
            if pad == "valid":
                p = (0, 0)
            elif pad == "same":
                p = tuple((di * (fi - 1)) / 2 for fi, di in zip(f, d))
            else:
                p = pair(pad, 0)
            return cls(tuple(f), tuple(s), tuple(p), tuple(d))
        f = pair(b.get("kernel_size"))
        s = pair(b.get("stride") or None, None)
        s = tuple(si if si else fi for si, fi in zip(s, f))  # pooling stride defaults to F
        p = pair(b.get("padding", 0), 0)
        d = pair(b.get("dilation", 1), 1)
        return cls(tuple(f), s, p, d, bool(b.get("ceil_mode", False)))


@dataclass
class Call:
    """One recorded layer call: a leaf module, or a torch function called from a container."""

    path: str
    type: str
    output: tuple[int, ...] | None
    new_memory: bool
    macs: int = 0
    module: nn.Module | None = None
    window: Window | None = None
    rf: tuple[RF, RF] | None = None
    depth: int = 0
    params: dict[str, int] = field(default_factory=dict)
    shared: bool = False
    source: str | None = None


def tensors_in(x: Any) -> list[torch.Tensor]:
    """The tensors in ``x`` and in the lists, tuples and dicts it holds."""
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, dict):
        x = list(x.values())
    if not isinstance(x, (list, tuple)):
        return []
    out = []
    for v in x:
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (list, tuple, dict)):
            out.extend(tensors_in(v))
    return out


def first_tensor(x: Any) -> torch.Tensor | None:
    ts = tensors_in(x)
    return ts[0] if ts else None


def adaptive_window(n_in: int, n_out: int) -> tuple[int, int]:
    """(kernel, stride) of an adaptive pool: windows [floor(i*in/out), ceil((i+1)*in/out))."""
    if n_out <= 0:
        return n_in, 1
    kernel = max(math.ceil((i + 1) * n_in / n_out) - (i * n_in) // n_out for i in range(n_out))
    stride = n_in // n_out if n_out > 1 else 1
    return kernel, max(1, stride)


def check_inputs(name: str, b: dict, inputs: list[torch.Tensor], top: tuple) -> None:
    """Explain the two shape errors users meet most: wrong input depth, wrong flattened size."""
    where = f"{top[0] or 'input'} ({type(top[1]).__name__})" if top[0] else name
    src = getattr(top[1], "notation_source", None)
    where += f" at {src}" if src else ""
    if name == "conv2d" and inputs and inputs[0].dim() == 4:
        want = b["weight"].shape[1] * int(b.get("groups", 1) or 1)
        if inputs[0].shape[1] != want:
            raise ShapeError(
                f"{where} expects an input of depth {want}, got {inputs[0].shape[1]}; "
                f"give an input with {want} channels (e.g. --input {want}x...)"
            )
    if name == "linear" and inputs and inputs[0].shape[-1] != b["weight"].shape[-1]:
        raise ShapeError(
            f"{where} expects {b['weight'].shape[-1]:,} inputs but the volume before it has "
            f"{inputs[0].shape[-1]:,} values; the model was built for another input size"
        )


def macs_of(name: str, b: dict, inputs: list[torch.Tensor], out: torch.Tensor) -> int:
    """Multiply-adds of one call, for the whole batch in the call."""
    if name == "conv2d":
        w = b["weight"]
        return out.numel() * w.shape[1] * w.shape[2] * w.shape[3]
    if name == "conv_transpose2d":
        w = b["weight"]
        return inputs[0].numel() * w.shape[1] * w.shape[2] * w.shape[3]
    if name == "linear":
        return out.numel() * b["weight"].shape[-1]
    if name == "einsum":
        return einsum_macs(b, inputs)
    if name in ("matmul", "mm", "bmm", "addmm", "baddbmm", "__matmul__", "__rmatmul__"):
        mats = [t for t in inputs if t.dim() >= 2]
        if len(mats) >= 2:
            return out.numel() * mats[-2].shape[-1]
        if len(inputs) >= 2:
            return out.numel() * inputs[0].shape[-1]
    return 0


def einsum_macs(b: dict, inputs: list[torch.Tensor]) -> int:
    """An einsum costs the product of the sizes of all its distinct indices (two operands)."""
    eq = b.get("equation")
    if not isinstance(eq, str) or "->" not in eq:
        return 0
    sizes: dict[str, int] = {}
    for spec, t in zip(eq.split("->")[0].split(","), inputs):
        for letter, n in zip(spec.strip(), t.shape):
            sizes[letter] = n
    return math.prod(sizes.values()) if len(inputs) >= 2 else 0


def meta_like(t: torch.Tensor) -> torch.Tensor:
    """A storage-less tensor of ``t``'s shape and dtype (``empty_like`` on meta costs 100x more)."""
    return torch.empty(t.shape, dtype=t.dtype, device="meta")
