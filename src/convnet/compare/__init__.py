"""Compare networks as seed 004 does: accuracy against operations and memory, time and power
against the batch size, and the notes' conclusions checked against what was measured.

>>> from convnet.compare import compare
>>> c = compare(["resnet18", "googlenet"], batches=[1, 2], out="compare")  # doctest: +SKIP
>>> print(c.render("text"))  # doctest: +SKIP

Modules: ``run`` (``compare``, the families), ``measure`` (time and memory), ``power`` (NVML,
RAPL), ``results`` (the rows, conclusions, CSV/JSON/table) and ``figures`` (the two figures).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from ..lazy import lazy_attributes

if TYPE_CHECKING:
    from .results import Comparison, Conclusion, ModelResult
    from .run import FAMILIES, compare, family_models

# resolved on first use, so the CLI's --help does not import torch through this package
_LAZY = {
    "compare": ".run",
    "family_models": ".run",
    "FAMILIES": ".run",
    "Comparison": ".results",
    "Conclusion": ".results",
    "ModelResult": ".results",
}

__all__ = ["FAMILIES", "Comparison", "Conclusion", "ModelResult", "compare", "family_models"]


__getattr__ = lazy_attributes(__name__, _LAZY)


class _Package(types.ModuleType):
    """``convnet.compare(...)`` calls :func:`compare` even once this package is imported (an
    import binds the package, not the function, to ``convnet.compare``)."""

    def __call__(self, *args, **kwargs):
        return self.compare(*args, **kwargs)


sys.modules[__name__].__class__ = _Package
