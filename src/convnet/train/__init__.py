"""Training and evaluation: ``fit(model, data, TrainConfig(...))`` with the notes' recipes.

>>> from convnet.train import fit, recipe
>>> result = fit("lenet5", "mnist-sample", recipe("lenet", out="runs/lenet5"))  # doctest: +SKIP
>>> result["val_top1"], result["test_top1"]  # doctest: +SKIP

``val_top1`` is best.pt's validation top-1 (the epoch chosen on the validation split), and
``test_top1`` that checkpoint's top-1 on the test split, scored once, at the end.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ..lazy import lazy_attributes
from .config import RECIPES, TrainConfig, recipe, recipe_for_model

# The torch-importing parts load on first use, so the CLI can build `convnet train`'s flags from
# TrainConfig (and print --help) without importing torch.
_LAZY = {
    "evaluate": ".evaluate",
    "fit": ".loop",
    "load_checkpoint": ".checkpoint",
    "read_checkpoint": ".checkpoint",
    "save_checkpoint": ".checkpoint",
}

__all__ = [
    "RECIPES",
    "TrainConfig",
    "evaluate",
    "fit",
    "load_checkpoint",
    "read_checkpoint",
    "recipe",
    "recipe_for_model",
    "save_checkpoint",
]


__getattr__ = lazy_attributes(__name__, _LAZY)


class _Package(types.ModuleType):
    """Keeps ``convnet.train.evaluate`` the function: importing the submodule of the same name
    (as ``loop`` does) would otherwise rebind the package attribute to the module."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
