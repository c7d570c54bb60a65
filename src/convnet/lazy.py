"""Package attributes imported on first use (PEP 562), so that importing a package stays cheap.

``convnet explain`` and every ``--help`` import packages whose public functions need torch; the
functions are looked up in their modules only when someone uses them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_attributes(package: str, table: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``table`` maps a public name to the module
    (relative to ``package``) that defines it; the value is imported on first use and kept in
    the package, so the lookup runs once."""

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(importlib.import_module(table[name], package), name)
            vars(sys.modules[package])[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
