"""One forward pass on the meta device that records what the notes tabulate.

No weight is allocated and nothing is computed: parameters are swapped for meta tensors with
``torch.func.functional_call`` (the user's module is left untouched) and a ``TorchFunctionMode``
sees every torch call. Module hooks say which layer is running, so each call is attributed to a
layer: its output volume, its multiply-adds, and the receptive field of its units, which flows
from tensor to tensor through branches and merges (concat, add) as well as through plain stacks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

from ..errors import ShapeError
from .formulas import RF

# Calls that are bookkeeping, not layers: they never become rows of their own.
_QUIET = {
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
_SIGNATURES: dict[str, tuple[str, ...]] = {
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
_ALIASES = {
    "_max_pool2d": "max_pool2d",
    "max_pool2d_with_indices": "max_pool2d",
    "adaptive_max_pool2d_with_indices": "adaptive_max_pool2d",
    "_adaptive_max_pool2d": "adaptive_max_pool2d",
}
_SHAPE_PRESERVING = {
    "batch_norm",
    "layer_norm",
    "group_norm",
    "instance_norm",
    "local_response_norm",
}
# Elementwise activations: same shape out; the in-place forms return their input.
_ELEMENTWISE = {
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
_INPLACE = {f"{n}_" for n in _ELEMENTWISE} | {"__iadd__", "add_", "__imul__", "mul_"}
_BINARY = {"add", "__add__", "sub", "__sub__", "mul", "__mul__"}
_FACTORIES = {f.__name__ for f in _device_constructors()}
SLIDING = {"conv2d", "max_pool2d", "avg_pool2d", "lp_pool2d"}


def op_name(func: Callable) -> str:
    name = getattr(func, "__name__", str(func))
    return _ALIASES.get(name, name)


def bind(name: str, args: tuple, kwargs: dict) -> dict[str, Any]:
    names = _SIGNATURES.get(name, ())
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


def _tensors(x: Any) -> list[torch.Tensor]:
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
            out.extend(_tensors(v))
    return out


def _first(x: Any) -> torch.Tensor | None:
    ts = _tensors(x)
    return ts[0] if ts else None


def _adaptive_window(n_in: int, n_out: int) -> tuple[int, int]:
    """(kernel, stride) of an adaptive pool: windows [floor(i*in/out), ceil((i+1)*in/out))."""
    if n_out <= 0:
        return n_in, 1
    kernel = max(math.ceil((i + 1) * n_in / n_out) - (i * n_in) // n_out for i in range(n_out))
    stride = n_in // n_out if n_out > 1 else 1
    return kernel, max(1, stride)


class SkipInit(TorchFunctionMode):
    """Makes in-place initializers no-ops on meta tensors: there are no values to initialize,
    and torch's meta path for ``normal_`` and friends costs a millisecond a call."""

    _INIT = {
        "normal_",
        "uniform_",
        "zero_",
        "fill_",
        "ones_",
        "constant_",
        "trunc_normal_",
        "copy_",
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if (
            getattr(func, "__name__", "") in self._INIT
            and args
            and isinstance(args[0], torch.Tensor)
            and args[0].is_meta
        ):
            return args[0]
        return func(*args, **(kwargs or {}))


class Recorder(TorchFunctionMode):
    """Attributes every torch call to the innermost running module and records layer calls.

    ``check`` is called before each sliding-window call with (name, input, window, path) so the
    notes' rules can be applied while the shapes are at hand.
    """

    def __init__(self, model: nn.Module, check: Callable[..., None] | None = None):
        super().__init__()
        self.model = model
        self.check = check
        self.calls: list[Call] = []
        self.stack: list[tuple[str, nn.Module, Call | None]] = []
        self.rf: dict[int, tuple[torch.Tensor, tuple[RF, RF] | None]] = {}
        self.seen_params: set[int] = set()
        self.counters: dict[str, int] = {}
        self.names = {id(m): n for n, m in model.named_modules()}

    # --- receptive fields -------------------------------------------------------------------
    def rf_of(self, t: torch.Tensor) -> tuple[RF, RF] | None:
        hit = self.rf.get(id(t))
        return hit[1] if hit is not None and hit[0] is t else None

    def set_rf(self, t: torch.Tensor, rf: tuple[RF, RF] | None) -> None:
        self.rf[id(t)] = (t, rf)

    def _merged_rf(self, inputs: list[torch.Tensor]) -> tuple[RF, RF] | None:
        known = [self.rf_of(t) for t in inputs if t.dim() == 4]
        known = [r for r in known if r is not None]
        if not known:
            return None
        return max(known, key=lambda r: (r[0].size * r[1].size, r[0].jump))

    def _propagate(
        self, name: str, b: dict, inputs: list[torch.Tensor], out: torch.Tensor
    ) -> tuple[RF, RF] | None:
        x = inputs[0] if inputs else None
        if x is None or x.dim() != 4 or out.dim() != 4:
            return None
        rf = self.rf_of(x)
        if rf is None:
            return None
        if name in SLIDING:
            w = Window.of(name, b, tuple(b["weight"].shape[-2:]) if name == "conv2d" else None)
            return tuple(r.through(w.f[i], w.s[i], w.p[i], w.d[i]) for i, r in enumerate(rf))
        if name in ("adaptive_avg_pool2d", "adaptive_max_pool2d"):
            kk = [_adaptive_window(x.shape[2 + i], out.shape[2 + i]) for i in range(2)]
            return tuple(r.through(k, s) for r, (k, s) in zip(rf, kk))
        if name == "pad":
            pads = list(b.get("pad", ())) + [0, 0, 0, 0]
            left, top = pads[0], pads[2]
            return (
                RF(rf[0].size, rf[0].jump, rf[0].start - top * rf[0].jump),
                RF(rf[1].size, rf[1].jump, rf[1].start - left * rf[1].jump),
            )
        if tuple(out.shape[2:]) == tuple(x.shape[2:]):
            return self._merged_rf(inputs)
        if name == "__getitem__" and all(out.shape[2 + i] <= x.shape[2 + i] for i in range(2)):
            # strided slicing such as x[:, :, ::2, ::2] (option-A shortcuts): a 1x1 window of stride k
            steps = [max(1, round(x.shape[2 + i] / max(1, out.shape[2 + i]))) for i in range(2)]
            return tuple(r.through(1, s) for r, s in zip(rf, steps))
        return None

    # --- module bookkeeping -----------------------------------------------------------------
    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        path = self.names.get(id(module), "?")
        call = None
        if not any(True for _ in module.children()):
            call = Call(
                path=path, type=type(module).__name__, output=None, new_memory=True, module=module
            )
            call.depth = path.count(".") + (1 if path else 0)
            call.source = getattr(module, "notation_source", None)
            own = dict(module.named_parameters(recurse=False))
            call.shared = bool(own) and all(id(p) in self.seen_params for p in own.values())
            for pname, p in own.items():
                if id(p) not in self.seen_params:
                    call.params[pname] = p.numel()
                    self.seen_params.add(id(p))
            x = _first(args)
            call.input_rf = self.rf_of(x) if x is not None else None  # type: ignore[attr-defined]
            call.inputs = _tensors(args)  # type: ignore[attr-defined]
        self.stack.append((path, module, call))

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        path, _, call = self.stack.pop()
        if call is None:
            return
        out = _first(output)
        if out is not None:
            call.output = tuple(out.shape[1:])
            call.new_memory = not any(out is t for t in call.inputs) and not out._is_view()  # type: ignore[attr-defined]
            rf = self.rf_of(out)
            if rf is None and call.input_rf is not None and hasattr(module, "kernel_size"):  # type: ignore[attr-defined]
                # a windowed layer built from unfold/einsum (e.g. a locally connected layer)
                f = pair(module.kernel_size)
                s = pair(getattr(module, "stride", 1), 1)
                p = pair(getattr(module, "padding", 0), 0)
                d = pair(getattr(module, "dilation", 1), 1)
                rf = tuple(r.through(f[i], s[i], p[i], d[i]) for i, r in enumerate(call.input_rf))  # type: ignore[attr-defined]
                self.set_rf(out, rf)
                if call.window is None:
                    call.window = Window(tuple(f), tuple(s), tuple(p), tuple(d))
            call.rf = rf
        del call.inputs, call.input_rf  # type: ignore[attr-defined]
        self.calls.append(call)

    # --- every torch call -------------------------------------------------------------------
    @staticmethod
    def _shortcut(
        name: str, b: dict, args: tuple, inputs: list[torch.Tensor]
    ) -> torch.Tensor | None:
        """The result of a shape-preserving call on meta tensors, without torch's meta kernels.

        Those kernels decompose norms and elementwise ops in Python (up to 10 ms a call); the
        outcome is only ever a tensor of the input's shape, or the input itself when in place.
        """
        if not inputs or not inputs[0].is_meta:
            return None
        x = inputs[0]
        if name in _INPLACE and args and args[0] is x:
            if len(inputs) > 1 and inputs[1].shape != x.shape:
                return None
            return x
        if name in _ELEMENTWISE:
            inplace = b.get("inplace", False) or any(a is True for a in args[1:])  # F.relu(x, True)
            return x if inplace else _meta_like(x)
        if name in _SHAPE_PRESERVING:
            return _meta_like(x)
        if name in _BINARY and len(inputs) == 2 and inputs[1].shape == x.shape and args[0] is x:
            return _meta_like(x)  # a residual add of two equal volumes
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = op_name(func)
        b = bind(name, args, kwargs)
        inputs = _tensors(args)
        if kwargs:
            inputs += _tensors(kwargs)
        top = self.stack[-1] if self.stack else ("", self.model, None)
        window = None
        if name in SLIDING and inputs and inputs[0].dim() == 4:
            window = Window.of(name, b, tuple(b["weight"].shape[-2:]) if name == "conv2d" else None)
            if self.check is not None:
                self.check(name, inputs[0], window, top[0], top[1])
        _check_inputs(name, b, inputs, top)
        out = self._shortcut(name, b, args, inputs)
        if out is None:
            if name in _FACTORIES and kwargs.get("device") is None:
                kwargs["device"] = "meta"  # tensors a forward creates join the meta trace
            out = func(*args, **kwargs)
        result = _first(out) if name not in _QUIET else None
        if result is None:
            return out
        macs = _macs(name, b, inputs, result)
        if self.rf_of(result) is None or result is not (inputs[0] if inputs else None):
            self.set_rf(result, self._propagate(name, b, inputs, result))
        leaf_call = top[2]
        if leaf_call is not None:
            leaf_call.macs += macs
            if window is not None and leaf_call.window is None:
                leaf_call.window = window
        elif top[1] is not None:
            # a torch function called in a container's forward: a layer of its own (merges, pools)
            key = f"{top[0]}.{name}" if top[0] else name
            n = self.counters.get(key, 0)
            self.counters[key] = n + 1
            call = Call(
                path=key if n == 0 else f"{key}#{n}",
                type=name,
                output=tuple(result.shape[1:]),
                new_memory=not any(result is t for t in inputs) and not result._is_view(),
                macs=macs,
                window=window,
                rf=self.rf_of(result),
                depth=top[0].count(".") + (2 if top[0] else 1),
            )
            self.calls.append(call)
        return out


def _check_inputs(name: str, b: dict, inputs: list[torch.Tensor], top: tuple) -> None:
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


def _macs(name: str, b: dict, inputs: list[torch.Tensor], out: torch.Tensor) -> int:
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
        return _einsum_macs(b, inputs)
    if name in ("matmul", "mm", "bmm", "addmm", "baddbmm", "__matmul__", "__rmatmul__"):
        mats = [t for t in inputs if t.dim() >= 2]
        if len(mats) >= 2:
            return out.numel() * mats[-2].shape[-1]
        if len(inputs) >= 2:
            return out.numel() * inputs[0].shape[-1]
    return 0


def _einsum_macs(b: dict, inputs: list[torch.Tensor]) -> int:
    """An einsum costs the product of the sizes of all its distinct indices (two operands)."""
    eq = b.get("equation")
    if not isinstance(eq, str) or "->" not in eq:
        return 0
    sizes: dict[str, int] = {}
    for spec, t in zip(eq.split("->")[0].split(","), inputs):
        for letter, n in zip(spec.strip(), t.shape):
            sizes[letter] = n
    return math.prod(sizes.values()) if len(inputs) >= 2 else 0


def _meta_like(t: torch.Tensor) -> torch.Tensor:
    """A storage-less tensor of ``t``'s shape and dtype (``empty_like`` on meta costs 100x more)."""
    return torch.empty(t.shape, dtype=t.dtype, device="meta")


def trace(
    model: nn.Module, input_size: tuple[int, ...], check: Callable[..., None] | None = None
) -> Recorder:
    """Run ``model`` once on a meta tensor of shape (1, *input_size); return the recorder."""
    meta = {k: _meta_like(v) for k, v in model.state_dict(keep_vars=True).items()}
    rec = Recorder(model, check)
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(rec.pre_hook))
        handles.append(m.register_forward_hook(rec.post_hook, always_call=True))
    was_training = model.training
    model.eval()  # batch-1 trace: BN needs eval; aux heads and dropout are training-only paths
    try:
        x = torch.empty((1, *input_size), device="meta")
        with rec:
            rec.set_rf(x, (RF(), RF()))
            out = torch.func.functional_call(model, meta, (x,), tie_weights=True, strict=False)
        rec.output = out  # type: ignore[attr-defined]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return rec
