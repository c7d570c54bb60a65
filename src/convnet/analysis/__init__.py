"""Inspect a ConvNet as the notes do: volumes, memory, weights, MACs, receptive fields, rules."""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .registry import Window, register_module, register_op
    from .summary import LayerRow, Summary, summary

# Public names, resolved on first use: ``convnet explain`` imports ``convnet.analysis.explain``,
# which is plain arithmetic, and must not pay for torch through this package's ``__init__``.
_LAZY = {
    "LayerRow": ".summary",
    "Summary": ".summary",
    "summary": ".summary",
    "Window": ".registry",
    "register_module": ".registry",
    "register_op": ".registry",
}

__all__ = ["LayerRow", "Summary", "Window", "register_module", "register_op", "summary"]


__getattr__ = lazy_attributes(__name__, _LAZY)


class _Package(types.ModuleType):
    """Keeps ``convnet.analysis.summary`` the function once the ``summary`` module is imported.

    Importing a submodule sets it as an attribute of its package, which would hide the function
    of the same name that ``__getattr__`` resolves; an eager ``from .summary import summary``
    used to rebind it.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in _SHADOWED and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


_SHADOWED = {"summary"}  # submodules named like a public function
sys.modules[__name__].__class__ = _Package
