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
    FACTORIES,
    QUIET,
    SLIDING,
    Call,
    Window,
    adaptive_window,
    bind,
    check_inputs,
    first_tensor,
    is_known,
    macs_of,
    meta_like,
    meta_result,
    pair,
    tensors_in,
)
from .registry import ModuleRule, module_rule, op_name, op_rule


# Calls that are bookkeeping, not layers: they never become rows of their own.
class SkipInit(TorchFunctionMode):
    """Makes in-place initializers no-ops on meta tensors: there are no values to initialize.

    Besides costing a millisecond a call, torch's meta path for ``normal_`` and friends runs
    through ``torch._refs``, whose first call imports ``torch._dynamo`` (a second of start-up).
    ``torch.nn.init`` functions reach a mode with the tensor as the keyword ``tensor=`` and no
    positional arguments; ``Tensor`` methods (``w.normal_()``) with the tensor first.
    """

    _INIT = {
        # Tensor methods
        "normal_",
        "uniform_",
        "zero_",
        "fill_",
        "copy_",
        "bernoulli_",
        "exponential_",
        "random_",
        # torch.nn.init
        "ones_",
        "zeros_",
        "constant_",
        "trunc_normal_",
        "eye_",
        "dirac_",
        "xavier_uniform_",
        "xavier_normal_",
        "kaiming_uniform_",
        "kaiming_normal_",
        "orthogonal_",
        "sparse_",
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self._INIT:
            t = args[0] if args else kwargs.get("tensor")
            if isinstance(t, torch.Tensor) and t.is_meta:
                return t
        return func(*args, **kwargs)


class MetaShapes(TorchFunctionMode):
    """Runs torch calls on meta tensors from their shapes alone where the trace knows how
    (:func:`meta_result`), else lets torch run them: a shape pass without the Python meta
    kernels and decompositions whose first call imports ``torch._dynamo`` or sympy (seconds).
    ``convnet.surgery`` propagates shapes through a traced graph under it."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = op_name(func)
        inputs = tensors_in(args) + (tensors_in(kwargs) if kwargs else [])
        if not inputs or not all(t.is_meta for t in inputs):
            return func(*args, **kwargs)
        b = bind(name, args, kwargs)
        if name in _DROPOUTS:  # torch's meta dropout runs through torch._refs
            return inputs[0] if b.get("inplace") else meta_like(inputs[0])
        window = Window.of(name, b) if inputs[0].dim() == 4 and name in SLIDING else None
        out = meta_result(name, getattr(func, "__name__", ""), b, args, inputs, window)
        return func(*args, **kwargs) if out is None else out


_DROPOUTS = {"dropout", "dropout1d", "dropout2d", "alpha_dropout", "feature_alpha_dropout"}


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
        self.stack: list[tuple[str, nn.Module, Call | None, ModuleRule | None]] = []
        self.rf: dict[int, tuple[torch.Tensor, tuple[RF, RF] | None]] = {}
        self.seen_params: set[int] = set()
        self.counters: dict[str, int] = {}
        self.unknown: dict[str, list[str]] = {}  # op name -> where it was called, MACs unknown
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
        self,
        name: str,
        b: dict,
        inputs: list[torch.Tensor],
        out: torch.Tensor,
        window: Window | None,
    ) -> tuple[RF, RF] | None:
        x = inputs[0] if inputs else None
        if x is None or x.dim() != 4 or out.dim() != 4:
            return None
        rf = self.rf_of(x)
        if rf is None:
            return None
        if window is not None:
            return _through(rf, window)
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
    # A stack frame is (path, module, row, rule): ``row`` is the Call the torch calls made in
    # this frame add to (None in a plain container) and ``rule`` the user's ModuleRule of that
    # row's module, if any. Inside a registered module, children share its row and its rule.
    def pre_hook(self, module: nn.Module, args: tuple) -> None:
        path = self.names.get(id(module), "?")
        parent = self.stack[-1] if self.stack else None
        if parent is not None and parent[3] is not None:
            self.stack.append((path, module, parent[2], parent[3]))  # folded into its row
            return
        rule = module_rule(module)
        call = None
        if rule is not None or not any(True for _ in module.children()):
            call = self._new_row(path, module, args, rule)
        self.stack.append((path, module, call, rule))

    def _new_row(self, path: str, module: nn.Module, args: tuple, rule: ModuleRule | None) -> Call:
        call = Call(path=path, type=type(module).__name__, output=None, new_memory=True)
        call.module = module
        call.depth = path.count(".") + (1 if path else 0)
        call.source = getattr(module, "notation_source", None)
        own = dict(module.named_parameters(recurse=rule is not None))
        call.shared = bool(own) and all(id(p) in self.seen_params for p in own.values())
        for pname, p in own.items():
            if id(p) not in self.seen_params:
                call.params[pname] = p.numel()
                self.seen_params.add(id(p))
        x = first_tensor(args)
        call.input_rf = self.rf_of(x) if x is not None else None  # type: ignore[attr-defined]
        call.inputs = tensors_in(args)  # type: ignore[attr-defined]
        if rule is not None and rule.window is not None:
            call.window = rule.window_of(module)
            if call.window is not None and x is not None and x.dim() == 4 and self.check:
                self.check(type(module).__name__, x, call.window, path, module)
        return call

    def post_hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        path, _, call, rule = self.stack.pop()
        if call is None or call.module is not module:
            return  # a container, or a child folded into a registered module's row
        if rule is not None and rule.macs is not None:
            call.macs = rule.macs_of(module, args, output)
        out = first_tensor(output)
        if out is not None:
            call.output = tuple(out.shape[1:])
            call.new_memory = not any(out is t for t in call.inputs) and not out._is_view()  # type: ignore[attr-defined]
            call.rf = self._module_rf(module, call, out, rule)
        del call.inputs, call.input_rf  # type: ignore[attr-defined]
        self.calls.append(call)

    def _module_rf(
        self, module: nn.Module, call: Call, out: torch.Tensor, rule: ModuleRule | None
    ) -> tuple[RF, RF] | None:
        """The RF of a module's output: from its torch calls, or from a window it declares."""
        rf_in = call.input_rf  # type: ignore[attr-defined]
        if rule is not None and call.window is not None:
            rf = _through(rf_in, call.window) if rf_in is not None and out.dim() == 4 else None
            self.set_rf(out, rf)
            return rf
        rf = self.rf_of(out)
        if rf is None and rf_in is not None and hasattr(module, "kernel_size"):
            # a windowed layer built from unfold/einsum (e.g. a locally connected layer)
            window = Window(
                pair(module.kernel_size),
                pair(getattr(module, "stride", 1), 1),
                pair(getattr(module, "padding", 0), 0),
                pair(getattr(module, "dilation", 1), 1),
            )
            rf = _through(rf_in, window)
            self.set_rf(out, rf)
            if call.window is None:
                call.window = window
        return rf

    # --- every torch call -------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = op_name(func)
        b = bind(name, args, kwargs)
        inputs = tensors_in(args)
        if kwargs:
            inputs += tensors_in(kwargs)
        top = self.stack[-1] if self.stack else ("", self.model, None, None)
        rule = op_rule(name)
        window = None
        if inputs and inputs[0].dim() == 4:
            if rule is not None and rule.window is not None:
                window = rule.window_of(args, kwargs)
            elif name in SLIDING:
                window = Window.of(name, b)
            if window is not None and self.check is not None:
                self.check(name, inputs[0], window, top[0], top[1])
        check_inputs(name, b, inputs, top)
        out = meta_result(name, getattr(func, "__name__", ""), b, args, inputs, window)
        if out is None:
            if name in FACTORIES and kwargs.get("device") is None:
                kwargs["device"] = "meta"  # tensors a forward creates join the meta trace
            out = func(*args, **kwargs)
        result = first_tensor(out) if name not in QUIET else None
        if result is None:
            return out
        macs = rule.macs_of(result, args, kwargs) if rule is not None else None
        if macs is None:
            macs = macs_of(name, b, inputs, result)
            if not is_known(name) and (top[3] is None or top[3].macs is None):
                self.unknown.setdefault(name, []).append(_where(top))
        if self.rf_of(result) is None or result is not (inputs[0] if inputs else None):
            self.set_rf(result, self._propagate(name, b, inputs, result, window))
        self._attribute(name, top, inputs, result, macs, window)
        return out

    def _attribute(
        self,
        name: str,
        top: tuple,
        inputs: list[torch.Tensor],
        result: torch.Tensor,
        macs: int,
        window: Window | None,
    ) -> None:
        """Add a call's MACs and window to the running layer's row, or give it a row of its own."""
        row = top[2]
        if row is not None:
            row.macs += macs
            if window is not None and row.window is None:
                row.window = window
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


def _through(rf: tuple[RF, RF], w: Window) -> tuple[RF, RF]:
    """The receptive field after a window, along H and W."""
    return tuple(r.through(w.f[i], w.s[i], w.p[i], w.d[i]) for i, r in enumerate(rf))


def _where(top: tuple) -> str:
    path, module = top[0], top[1]
    return f"{path} ({type(module).__name__})" if path else f"{type(module).__name__}.forward"


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
