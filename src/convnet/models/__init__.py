"""The zoo: every architecture the notes study, one family per file, behind one registry."""

from ._registry import ModelCard, create_model, get_card, is_model, list_models, register_model
from ._weights import LoadReport, head_keys, load_weights, load_weights_report
from .outputs import AuxOutputs

__all__ = [
    "AuxOutputs",
    "LoadReport",
    "ModelCard",
    "create_model",
    "get_card",
    "head_keys",
    "is_model",
    "list_models",
    "load_weights",
    "load_weights_report",
    "register_model",
]
