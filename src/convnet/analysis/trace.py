"""One forward pass on the meta device that records what the notes tabulate.

No weight is allocated and nothing is computed: parameters are swapped for meta tensors with
``torch.func.functional_call`` (the user's module is left untouched) and a ``TorchFunctionMode``
sees every torch call. Module hooks say which layer is running, so each call is attributed to a
layer: its output volume, its multiply-adds, and the receptive field of its units, which flows
from tensor to tensor through branches and merges (concat, add) as well as through plain stacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from ..arith import RF
from ._ops import (
    BINARY,
    ELEMENTWISE,
    FACTORIES,
    INPLACE,
    QUIET,
    SHAPE_PRESERVING,
    SLIDING,
    Call,
    Window,
    adaptive_window,
    bind,
    check_inputs,
    first_tensor,
    macs_of,
    meta_like,
    op_name,
    pair,
    tensors_in,
)


# Calls that are bookkeeping, not layers: they never become rows of their own.
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
            kk = [adaptive_window(x.shape[2 + i], out.shape[2 + i]) for i in range(2)]
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
            x = first_tensor(args)
            call.input_rf = self.rf_of(x) if x is not None else None  # type: ignore[attr-defined]
            call.inputs = tensors_in(args)  # type: ignore[attr-defined]
        self.stack.append((path, module, call))

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        path, _, call = self.stack.pop()
        if call is None:
            return
        out = first_tensor(output)
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
        if name in INPLACE and args and args[0] is x:
            if len(inputs) > 1 and inputs[1].shape != x.shape:
                return None
            return x
        if name in ELEMENTWISE:
            inplace = b.get("inplace", False) or any(a is True for a in args[1:])  # F.relu(x, True)
            return x if inplace else meta_like(x)
        if name in SHAPE_PRESERVING:
            return meta_like(x)
        if name in BINARY and len(inputs) == 2 and inputs[1].shape == x.shape and args[0] is x:
            return meta_like(x)  # a residual add of two equal volumes
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = op_name(func)
        b = bind(name, args, kwargs)
        inputs = tensors_in(args)
        if kwargs:
            inputs += tensors_in(kwargs)
        top = self.stack[-1] if self.stack else ("", self.model, None)
        window = None
        if name in SLIDING and inputs and inputs[0].dim() == 4:
            window = Window.of(name, b, tuple(b["weight"].shape[-2:]) if name == "conv2d" else None)
            if self.check is not None:
                self.check(name, inputs[0], window, top[0], top[1])
        check_inputs(name, b, inputs, top)
        out = self._shortcut(name, b, args, inputs)
        if out is None:
            if name in FACTORIES and kwargs.get("device") is None:
                kwargs["device"] = "meta"  # tensors a forward creates join the meta trace
            out = func(*args, **kwargs)
        result = first_tensor(out) if name not in QUIET else None
        if result is None:
            return out
        macs = macs_of(name, b, inputs, result)
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


def trace(
    model: nn.Module, input_size: tuple[int, ...], check: Callable[..., None] | None = None
) -> Recorder:
    """Run ``model`` once on a meta tensor of shape (1, *input_size); return the recorder."""
    meta = {k: meta_like(v) for k, v in model.state_dict(keep_vars=True).items()}
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
