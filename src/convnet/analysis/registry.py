"""Tell the summary about your own ops and modules: their multiply-adds and their window.

The trace knows the costs of the layers the notes count (CONV: output values x F*F*D1; FC:
outputs x inputs; matrix products and einsums) and the windows of convolutions and pools, from
which receptive fields follow. For anything else, say it once and every summary uses it::

    import torch.nn.functional as F
    from convnet.analysis import Window, register_module, register_op

    # F.conv1d on (N, C_in, L) with weight (C_out, C_in/g, k): out values x (C_in/g) x k
    register_op(F.conv1d, macs=lambda out, x, w, *args, **kw: out.numel() * w.shape[1] * w.shape[2])

    # a module of your own, counted as one layer: its MACs and its window for the RF column
    register_module(MyBlock, macs=lambda m, args, out: ..., window=Window(f=3, s=2, p=1))

An op the trace does not know is counted as 0 multiply-adds and named in ONE warning of the
summary; ``register_op(fn, macs=0)`` says it has none and silences it. Each call returns a
handle: ``handle.remove()`` (or ``with register_op(...):``) undoes the registration.

The trace runs one image (batch 1), so a ``macs`` function's result is per image. Its tensors
live on the meta device: shapes and dtypes, no values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConvnetError

__all__ = [
    "ModuleRule",
    "OpRule",
    "Registration",
    "Window",
    "module_rule",
    "op_rule",
    "register_module",
    "register_op",
]

ALIASES = {
    "_max_pool2d": "max_pool2d",
    "max_pool2d_with_indices": "max_pool2d",
    "adaptive_max_pool2d_with_indices": "adaptive_max_pool2d",
    "_adaptive_max_pool2d": "adaptive_max_pool2d",
}


def op_name(func: Callable | str) -> str:
    """The name the trace knows a torch function by: ``F.conv1d`` and ``Tensor.conv1d`` alike."""
    name = func if isinstance(func, str) else getattr(func, "__name__", str(func))
    return ALIASES.get(name, name)


def pair(v: Any, default: Any = None) -> tuple[Any, Any]:
    """``3`` -> (3, 3); ``(3, 5)`` -> (3, 5): a hyperparameter along H and W."""
    if v is None:
        v = default
    if isinstance(v, (list, tuple, torch.Size)):
        return (v[0], v[-1]) if len(v) else (default, default)
    return (v, v)


@dataclass
class Window:
    """A sliding window along H and W as the notes write it: filter F, stride S, padding P.

    Each of ``f``, ``s``, ``p``, ``d`` (dilation) is an int for a square window or an (H, W)
    pair. Output size per axis: (W - d*(F-1) - 1 + 2P)/S + 1; the receptive field of the output
    grows by d*(F-1) input steps and its jump multiplies by S.
    """

    f: tuple[int, int]
    s: tuple[int, int] = (1, 1)
    p: tuple[float, float] = (0, 0)
    d: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        self.f, self.s, self.p, self.d = pair(self.f), pair(self.s), pair(self.p), pair(self.d)
        for label, v in (("filter F", self.f), ("stride S", self.s), ("dilation", self.d)):
            if not all(isinstance(x, int) and x >= 1 for x in v):
                raise ConvnetError(f"Window: {label} must be whole numbers >= 1, got {v}")
        if not all(isinstance(x, (int, float)) and x >= 0 for x in self.p):
            raise ConvnetError(f"Window: padding P must be >= 0, got {self.p}")

    @classmethod
    def of(cls, name: str, b: dict, weight_hw: tuple[int, int] | None = None) -> Window:
        """The window of a torch conv or pool call from its bound arguments ``b`` (a conv's F from
        its weight's last two axes unless ``weight_hw`` gives it)."""
        if name == "conv2d":
            f = weight_hw if weight_hw is not None else tuple(b["weight"].shape[-2:])
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


MacsOfOp = Callable[..., int]  # (out, *args, **kwargs) -> multiply-adds
WindowOfOp = Callable[..., Window]  # (*args, **kwargs) -> Window
MacsOfModule = Callable[[nn.Module, tuple, Any], int]  # (module, args, output), a forward hook's
WindowOfModule = Callable[[nn.Module], Window]


@dataclass(frozen=True)
class OpRule:
    """What a user said about a torch function: ``macs`` and ``window``, constants or callables."""

    name: str
    macs: int | MacsOfOp | None = None
    window: Window | WindowOfOp | None = None

    def macs_of(self, out: torch.Tensor, args: tuple, kwargs: dict) -> int | None:
        if self.macs is None:
            return None
        n = self.macs(out, *args, **kwargs) if callable(self.macs) else self.macs
        return _checked_macs(n, f"register_op({self.name!r})")

    def window_of(self, args: tuple, kwargs: dict) -> Window | None:
        w = self.window(*args, **kwargs) if callable(self.window) else self.window
        return _checked_window(w, f"register_op({self.name!r})")


@dataclass(frozen=True)
class ModuleRule:
    """What a user said about a module class; its instances are one row each (children folded)."""

    cls: type[nn.Module]
    macs: int | MacsOfModule | None = None
    window: Window | WindowOfModule | None = None

    def macs_of(self, module: nn.Module, args: tuple, output: Any) -> int | None:
        if self.macs is None:
            return None
        n = self.macs(module, args, output) if callable(self.macs) else self.macs
        return _checked_macs(n, f"register_module({self.cls.__name__})")

    def window_of(self, module: nn.Module) -> Window | None:
        w = self.window(module) if callable(self.window) else self.window
        return _checked_window(w, f"register_module({self.cls.__name__})")


def _checked_macs(n: Any, who: str) -> int:
    if isinstance(n, torch.Tensor) and n.numel() == 1 and not n.is_meta:
        n = n.item()
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConvnetError(f"{who}: macs must give a whole number >= 0, got {n!r}")
    return n


def _checked_window(w: Any, who: str) -> Window | None:
    if w is not None and not isinstance(w, Window):
        raise ConvnetError(
            f"{who}: window must give a convnet.analysis.Window, e.g. Window(f=3, s=2, p=1); "
            f"got {type(w).__name__}"
        )
    return w


_OPS: dict[str, OpRule] = {}
_MODULES: dict[type, ModuleRule] = {}


class Registration:
    """Undoes one registration: ``remove()``, or leave a ``with`` block."""

    def __init__(self, table: dict, key: Any, previous: Any) -> None:
        self._table, self._key, self._previous = table, key, previous

    def remove(self) -> None:
        if self._previous is None:
            self._table.pop(self._key, None)
        else:
            self._table[self._key] = self._previous

    def __enter__(self) -> Registration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _is_torch_function(fn: Any) -> bool:
    owner = getattr(fn, "__objclass__", None)  # Tensor methods: torch._C.TensorBase
    if isinstance(owner, type) and issubclass(torch.Tensor, owner):
        return True
    return callable(fn) and (getattr(fn, "__module__", None) or "").startswith("torch")


def _check_given(who: str, macs: Any, window: Any) -> None:
    if macs is None and window is None:
        raise ConvnetError(f"{who}: give macs=..., window=... or both")
    if macs is not None and not callable(macs):
        _checked_macs(macs, who)
    if window is not None and not callable(window):
        _checked_window(window, who)


def register_op(
    fn: Callable | str,
    *,
    macs: int | MacsOfOp | None = None,
    window: Window | WindowOfOp | None = None,
) -> Registration:
    """Tell the summary the multiply-adds and/or window of a torch function.

    ``fn`` is a function the trace sees: ``torch.*``, ``torch.nn.functional.*`` or a ``Tensor``
    method (registered by name, so ``F.conv1d`` also covers ``torch.conv1d``), or that name.
    ``macs`` is an int or ``macs(out, *args, **kwargs) -> int`` called with the call's result
    and its arguments as given. ``window`` is a :class:`Window` or ``window(*args, **kwargs)``;
    on a 4-D (N, C, H, W) input it sets the F S P column and carries the receptive field
    through the call (RF_out = RF_in + d*(F-1)*jump_in, jump_out = jump_in * S).
    A function of your own is not seen by the trace: wrap it in a module and use
    :func:`register_module`.
    """
    if not isinstance(fn, str) and not _is_torch_function(fn):
        raise ConvnetError(
            f"register_op({getattr(fn, '__qualname__', fn)!r}): the trace sees torch functions "
            "and Tensor methods only; wrap your function in an nn.Module and use "
            "register_module(YourModule, macs=...)"
        )
    name = op_name(fn)
    _check_given(f"register_op({name!r})", macs, window)
    previous = _OPS.get(name)
    _OPS[name] = OpRule(name, macs, window)
    return Registration(_OPS, name, previous)


def register_module(
    cls: type[nn.Module],
    *,
    macs: int | MacsOfModule | None = None,
    window: Window | WindowOfModule | None = None,
) -> Registration:
    """Tell the summary the multiply-adds and/or window of a module class (and its subclasses).

    Each call of such a module is one row of the summary: its children are folded into it
    (their parameters count towards it; no rows of their own). ``macs`` is an int or
    ``macs(module, args, output) -> int`` (a forward hook's arguments); without it the row
    sums the MACs of the torch calls inside. ``window`` is a :class:`Window` or
    ``window(module) -> Window``: the F S P column and the receptive field through the module.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConvnetError(f"register_module: give an nn.Module subclass, got {cls!r}")
    _check_given(f"register_module({cls.__name__})", macs, window)
    previous = _MODULES.get(cls)
    _MODULES[cls] = ModuleRule(cls, macs, window)
    return Registration(_MODULES, cls, previous)


def op_rule(name: str) -> OpRule | None:
    """The user's rule for the torch function called ``name``, if any."""
    return _OPS.get(name)


def module_rule(module: nn.Module) -> ModuleRule | None:
    """The user's rule for ``module``'s class or its nearest registered base class."""
    if not _MODULES:
        return None
    for klass in type(module).__mro__:
        rule = _MODULES.get(klass)
        if rule is not None:
            return rule
    return None
