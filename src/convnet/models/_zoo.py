"""Imports every architecture family so each registers its builders."""

from . import alexnet, lenet, vgg  # noqa: F401
