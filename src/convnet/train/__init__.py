"""Training and evaluation: ``fit(model, data, TrainConfig(...))`` with the notes' recipes.

>>> from convnet.train import fit, recipe
>>> result = fit("lenet5", "mnist-sample", recipe("lenet", out="runs/lenet5"))  # doctest: +SKIP
>>> result["final_top1"]  # doctest: +SKIP
"""

from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from .config import RECIPES, TrainConfig, recipe, recipe_for_model
from .evaluate import evaluate
from .loop import fit

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
