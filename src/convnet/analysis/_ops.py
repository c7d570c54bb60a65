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

from .. import arith
from ..arith import RF
from ..errors import ShapeError
from .registry import Window, pair

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
    **{
        name: ("input", "p", "training", "inplace")
        for name in ("dropout", "dropout1d", "dropout2d", "alpha_dropout", "feature_alpha_dropout")
    },
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
FACTORIES = {f.__name__ for f in _device_constructors()}
SLIDING = {"conv2d", "max_pool2d", "avg_pool2d", "lp_pool2d"}
BINARY = {
    "add",
    "__add__",
    "__radd__",
    "sub",
    "__sub__",
    "rsub",
    "__rsub__",
    "mul",
    "__mul__",
    "__rmul__",
    "div",
    "__truediv__",
    "__rtruediv__",
}
REDUCTIONS = {"mean", "sum", "amax", "amin"}
# The layers whose multiply-adds the notes count (CONV, FC) and the products they reduce to.
MAC_OPS = {
    "conv2d",
    "conv_transpose2d",
    "linear",
    "einsum",
    "matmul",
    "mm",
    "bmm",
    "addmm",
    "baddbmm",
    "__matmul__",
    "__rmatmul__",
}
# Calls that do no multiply-adds the notes count: O(n) elementwise work, pooling, normalization,
# reshaping and indexing. Any other call that returns a tensor is unknown: counted as 0 MACs and
# named in a warning, so a missing cost is never silent (``register_op`` teaches the trace).
NO_MACS = (
    ELEMENTWISE
    | SHAPE_PRESERVING
    | BINARY
    | REDUCTIONS
    | SLIDING - {"conv2d"}
    | {f"{n}_" for n in ELEMENTWISE | BINARY}
    | {"__iadd__", "__isub__", "__imul__", "__itruediv__", "__neg__", "neg", "__pow__", "pow"}
    | {"sqrt", "rsqrt", "exp", "log", "abs", "clamp", "clamp_", "clamp_min", "where", "square"}
    | {"gt", "lt", "ge", "le", "eq", "ne", "__gt__", "__lt__", "__ge__", "__le__", "__eq__"}
    | {"__ne__", "__and__", "__or__", "logical_not", "masked_fill", "masked_fill_", "lerp"}
    | {"softmax", "log_softmax", "softplus", "prelu", "selu", "celu", "mish", "hardsigmoid"}
    | {"logsigmoid", "threshold", "glu", "normalize", "dropout", "dropout1d", "dropout2d"}
    | {"alpha_dropout", "feature_alpha_dropout", "bernoulli", "bernoulli_", "rand_like"}
    | {"ones_like", "zeros_like", "full_like", "empty_like", "randn_like", "clone"}
    | {"adaptive_avg_pool2d", "adaptive_max_pool2d", "max_pool1d", "avg_pool1d", "max"}
    | {"min", "var", "std", "norm", "argmax", "argmin", "topk", "sort", "logsumexp", "prod"}
    | {"view", "reshape", "flatten", "unflatten", "permute", "transpose", "t", "squeeze"}
    | {"unsqueeze", "expand", "expand_as", "repeat", "view_as", "reshape_as", "movedim"}
    | {"cat", "concat", "concatenate", "stack", "split", "chunk", "narrow", "unbind"}
    | {"__getitem__", "select", "index_select", "gather", "roll", "flip", "unfold", "pad"}
    | {"pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "interpolate", "upsample"}
    | {"upsample_nearest", "upsample_bilinear", "_is_view", "cumsum", "one_hot", "embedding"}
)


def bind(name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    names = SIGNATURES.get(name, ())
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


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


def is_known(name: str) -> bool:
    """Whether the trace knows what ``name`` costs: MACs it counts, or none by design."""
    return name in MAC_OPS or name in NO_MACS or name in QUIET or name in FACTORIES


def meta_result(
    name: str, raw: str, b: dict, args: tuple, inputs: list[torch.Tensor], window: Window | None
) -> Any:
    """The result of a call on meta tensors from its shapes alone, or None to let torch run it.

    ``raw`` is the function's own name (``name`` is its alias), ``window`` the call's sliding
    window when it has one. Torch's meta kernels are skipped where the shape is plain
    arithmetic, for start-up as much as for speed: norms and elementwise ops are decomposed in
    Python (up to 10 ms a call); the Python meta kernels of convolutions and pools call
    ``torch._check``, whose first call imports sympy (half a second); ``F.linear``, ``cat``,
    adaptive average pooling, reductions and broadcasting arithmetic go through ``torch._refs``,
    whose first call imports ``torch._dynamo`` (a second). In-place calls return their input,
    as torch does.
    """
    if not inputs or not all(t.is_meta for t in inputs):
        return None
    x = inputs[0]
    if window is not None and name in SLIDING:
        return _sliding_result(name, raw, b, x, window)
    if name in INPLACE and args and args[0] is x:
        if len(inputs) > 1 and inputs[1].shape != x.shape:
            return None
        return x
    if name in ELEMENTWISE:
        inplace = b.get("inplace", False) or any(a is True for a in args[1:])  # F.relu(x, True)
        return x if inplace else meta_like(x)
    if name in SHAPE_PRESERVING:
        return meta_like(x)
    if "out" in b:
        return None
    shaper = _SHAPES.get(name)
    if shaper is None:
        return None
    shape_dtype = shaper(b, args, inputs)
    if shape_dtype is None:
        return None
    shape, dtype = shape_dtype
    return torch.empty(shape, dtype=dtype, device="meta")


def _sliding_result(
    name: str, raw: str, b: dict, x: torch.Tensor, w: Window
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None:
    """(N, C, H, W) -> (N, K or C, H2, W2), H2 = (H - d(F-1) - 1 + 2P)/S + 1 floored (or ceiled
    for pools in ceil_mode); None where torch should say what is wrong."""
    if x.dim() != 4 or not all(isinstance(v, int) for v in (*w.f, *w.s, *w.d)):
        return None
    if name == "conv2d":
        weight, bias = b.get("weight"), b.get("bias")
        if weight.dim() != 4 or weight.dtype != x.dtype:
            return None
        if bias is not None and (bias.shape != weight.shape[:1] or bias.dtype != x.dtype):
            return None
        depth = weight.shape[0]
    else:
        depth = x.shape[1]
    if b.get("padding") == "same":
        if w.s != (1, 1):
            return None  # torch refuses padding='same' with a stride
        size = list(x.shape[2:])
    elif all(float(p).is_integer() for p in w.p):
        size = [
            arith.output_size(x.shape[2 + i], w.f[i], w.s[i], int(w.p[i]), w.d[i], w.ceil_mode)
            for i in range(2)
        ]
    else:
        return None
    if min(size) < 1 or (name != "conv2d" and any(2 * p > f for p, f in zip(w.p, w.f))):
        return None  # no window fits, or a pool padded past half its window: torch refuses
    out = torch.empty((x.shape[0], depth, *size), dtype=x.dtype, device="meta")
    if raw == "max_pool2d_with_indices":
        return out, torch.empty(out.shape, dtype=torch.long, device="meta")
    return out


def _linear_shape(b: dict, args: tuple, inputs: list[torch.Tensor]) -> tuple | None:
    """(*, in) @ (out, in)^T -> (*, out)."""
    x, w, bias = b.get("input"), b.get("weight"), b.get("bias")
    if not isinstance(x, torch.Tensor) or not isinstance(w, torch.Tensor) or w.dim() > 2:
        return None
    if x.dtype != w.dtype or (bias is not None and bias.dtype != x.dtype):
        return None
    return (*x.shape[:-1], *w.shape[:-1]), x.dtype


def _adaptive_avg_shape(b: dict, args: tuple, inputs: list[torch.Tensor]) -> tuple | None:
    """(N, C, H, W) -> (N, C, *output_size); a None entry keeps that input size."""
    x, size = inputs[0], b.get("output_size")
    if x.dim() not in (3, 4) or size is None:
        return None
    oh, ow = pair(size)
    oh, ow = x.shape[-2] if oh is None else oh, x.shape[-1] if ow is None else ow
    return (*x.shape[:-2], int(oh), int(ow)), x.dtype


def _cat_shape(b: dict, args: tuple, inputs: list[torch.Tensor]) -> tuple | None:
    """Sizes add up along ``dim``; every other size must agree (else torch says why)."""
    seq = args[0] if args else b.get("tensors")
    dim = args[1] if len(args) > 1 else b.get("dim", 0)
    if not isinstance(seq, (list, tuple)) or not isinstance(dim, int) or len(seq) != len(inputs):
        return None
    ts = [t for t in inputs if t.shape != (0,)]  # torch skips legacy empty 1-D tensors
    if not ts or any(t.dim() != ts[0].dim() for t in ts):
        return None
    d = dim % ts[0].dim()
    shape = list(ts[0].shape)
    for t in ts[1:]:
        if any(a != c for i, (a, c) in enumerate(zip(t.shape, shape)) if i != d):
            return None
        shape[d] += t.shape[d]
    dtype = ts[0].dtype
    for t in ts[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(shape), dtype


def _stack_shape(b: dict, args: tuple, inputs: list[torch.Tensor]) -> tuple | None:
    """Equal shapes stacked along a new axis ``dim``."""
    seq = args[0] if args else b.get("tensors")
    dim = args[1] if len(args) > 1 else b.get("dim", 0)
    if not isinstance(seq, (list, tuple)) or not isinstance(dim, int) or len(seq) != len(inputs):
        return None
    shape = inputs[0].shape
    n = len(shape) + 1
    if any(t.shape != shape for t in inputs) or not -n <= dim < n:
        return None
    dtype = inputs[0].dtype
    for t in inputs[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    out = list(shape)
    out.insert(dim % n, len(inputs))
    return tuple(out), dtype


def _index_shape(b: dict, args: tuple, inputs: list[torch.Tensor]) -> tuple | None:
    """``x[idx]`` or ``x[:, idx]`` with one 1-D integer index tensor: that axis gets len(idx).

    (Torch's meta kernel for tensor indexing calls ``torch._check``, which imports sympy.)
    """
    if len(args) != 2 or len(inputs) != 2:
        return None
    x, key = args
    key = key if isinstance(key, tuple) else (key,)
    full = slice(None)
    tensors = [i for i, k in enumerate(key) if isinstance(k, torch.Tensor)]
    if (
        len(tensors) != 1
        or len(key) > x.dim()
        or any(k != full for k in key if k is not key[tensors[0]])
    ):
        return None
    idx = key[tensors[0]]
    if idx.dim() != 1 or idx.dtype not in (torch.long, torch.int):
        return None
    shape = list(x.shape)
    shape[tensors[0]] = idx.shape[0]
    return tuple(shape), x.dtype


def _binary_shape(b: dict, args: tuple, inputs: list[torch.Tensor]) -> tuple | None:
    """Broadcasting arithmetic: torch.broadcast_shapes of the tensors, torch.result_type."""
    if len(args) != 2 or set(b) - {"alpha"}:
        return None
    a, c = args
    ok = (torch.Tensor, int, float, bool)
    if not isinstance(a, ok) or not isinstance(c, ok):
        return None
    shape = _broadcast([tuple(t.shape) for t in inputs])
    if shape is None:
        return None  # torch names the mismatch
    return shape, torch.result_type(a, c)


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...] | None:
    """NumPy's rule, aligned on the right: sizes agree or are 1. (``torch.broadcast_shapes``
    would import sympy on its first call.)"""
    n = max(len(sh) for sh in shapes)
    out = []
    for i in range(n):
        sizes = {sh[i - n + len(sh)] for sh in shapes if i - n + len(sh) >= 0} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _reduction_shape(b: dict, args: tuple, inputs: list[torch.Tensor]) -> tuple | None:
    """mean/sum/amax/amin of a float tensor over ``dim`` (int or tuple), keepdim or not."""
    x = inputs[0]
    if len(inputs) != 1 or not x.is_floating_point() or x.dim() == 0 or b.get("dtype"):
        return None
    if not args or args[0] is not x:
        return None
    dim = args[1] if len(args) > 1 else b.get("dim")
    keep = args[2] if len(args) > 2 else b.get("keepdim", False)
    if len(args) > 3 or not isinstance(keep, bool):
        return None
    if dim is None:
        dim = tuple(range(x.dim()))
    dim = (dim,) if isinstance(dim, int) else dim
    n = x.dim()
    if not isinstance(dim, (list, tuple)) or not dim:
        return None
    if not all(isinstance(i, int) and -n <= i < n for i in dim):
        return None  # torch names the bad dimension
    dims = {i % n for i in dim}
    shape = [1 if i in dims else n for i, n in enumerate(x.shape) if keep or i not in dims]
    return tuple(shape), x.dtype


_SHAPES: dict[str, Callable[[dict, tuple, list[torch.Tensor]], tuple | None]] = {
    "linear": _linear_shape,
    "adaptive_avg_pool2d": _adaptive_avg_shape,
    "cat": _cat_shape,
    "concat": _cat_shape,
    "concatenate": _cat_shape,
    "stack": _stack_shape,
    "__getitem__": _index_shape,
    **dict.fromkeys(BINARY, _binary_shape),
    **dict.fromkeys(REDUCTIONS, _reduction_shape),
}


def meta_like(t: torch.Tensor) -> torch.Tensor:
    """A storage-less tensor of ``t``'s shape and dtype (``empty_like`` on meta costs 100x more)."""
    return torch.empty(t.shape, dtype=t.dtype, device="meta")
