"""The zoo: every architecture the notes study, one family per file, behind one registry."""

from ._registry import ModelCard, create_model, get_card, is_model, list_models, register_model
from ._weights import load_weights
from .outputs import AuxOutputs

__all__ = [
    "AuxOutputs",
    "ModelCard",
    "create_model",
    "get_card",
    "is_model",
    "list_models",
    "load_weights",
    "register_model",
]
