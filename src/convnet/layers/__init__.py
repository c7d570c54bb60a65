"""Blocks the notes name that torch lacks (one concept per file)."""

from .locally_connected import LocallyConnected2d

__all__ = ["LocallyConnected2d"]
