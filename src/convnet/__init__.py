"""convnet: the convolutional network of the cs231n notes, made real.

Build a ConvNet from the notes' pattern language or the zoo, inspect it layer by layer, train
it on real data, convert its FC layers to convolutions, look at what it learned, and run every
layer from scratch in NumPy. Every feature takes a plain ``torch.nn.Module``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import ConvnetError

# Public names resolved lazily so ``import convnet`` stays fast and the CLI starts quickly.
_LAZY = {
    "create_model": ("convnet.models", "create_model"),
    "list_models": ("convnet.models", "list_models"),
    "register_model": ("convnet.models", "register_model"),
    "load_weights": ("convnet.models", "load_weights"),
    "resolve_model": ("convnet.resolve", "resolve_model"),
    "summary": ("convnet.analysis", "summary"),
    "compare": ("convnet.compare", "compare"),
}

# Submodules that are called like functions: ``convnet.features(model, data, layer)``.
_CALLABLE_MODULES = ("features",)

__all__ = ["ConvnetError", "__version__", *_LAZY, *_CALLABLE_MODULES]


def __getattr__(name: str):
    if name in _CALLABLE_MODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")  # binds the attribute as well
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'convnet' has no attribute {name!r}")
