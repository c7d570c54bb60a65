"""Errors a user can cause. The CLI prints each as one line, without a traceback, and exits 2.

Every message names what was wrong (a layer's path, a value, a rule) and how to fix it.
"""

from __future__ import annotations


class ConvnetError(Exception):
    """Base class of every error convnet raises for a user's mistake."""


class ModelNotFoundError(ConvnetError, KeyError):
    """An unknown model name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class WeightsError(ConvnetError):
    """A weight file that is missing, unsafe, or does not fit the model."""


class ShapeError(ConvnetError):
    """A layer whose hyperparameters do not fit its input (the notes' 'does not fit')."""


class NotationError(ConvnetError):
    """A pattern-language line that does not parse or build."""


class DataError(ConvnetError):
    """A data set that is missing, corrupt, or in an unknown format."""


class CellSpecError(ConvnetError):
    """A NASNet cell spec with an unknown operation or combination, or a missing hidden state."""


class CheckpointError(ConvnetError):
    """A checkpoint that is missing, corrupt, or from an incompatible run."""


class ConversionError(ConvnetError):
    """A model that FC -> CONV surgery cannot convert."""


class TrainingError(ConvnetError):
    """Training that cannot go on (a non-finite loss, a dead rank)."""


class ConfigError(ConvnetError):
    """A training-config value outside its range or choices.

    ``field`` names the TrainConfig field, ``value`` is what was given and ``rule`` says what is
    allowed and why, so the CLI can say the same with the flag's name instead of the field's.
    """

    def __init__(self, field: str, value: object, rule: str) -> None:
        super().__init__(field, value, rule)  # all three, so the error pickles across processes
        self.field, self.value, self.rule = field, value, rule

    def __str__(self) -> str:
        return f"training config: {self.field}={self.value}: {self.rule}"
