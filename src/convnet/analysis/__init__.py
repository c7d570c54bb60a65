"""Inspect a ConvNet as the notes do: volumes, memory, weights, MACs, receptive fields, rules."""

from .summary import LayerRow, Summary, summary

__all__ = ["LayerRow", "Summary", "summary"]
