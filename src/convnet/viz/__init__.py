"""See what a network learned: filters, activation maps, overlays, receptive fields, curves.

Every function takes a plain ``torch.nn.Module`` (or a run folder) and returns a
``matplotlib.figure.Figure``; nothing opens a window. Save with ``save_figure(fig, path)``
(PNG and SVG, written atomically) or build a whole run's page with ``build_report``.
"""

from __future__ import annotations

from ._images import conv_layer_paths, figure_bytes, load_image, save_figure
from .activations import activation_maps, activations, rank_channels
from .curves import confusion, curves, read_metrics
from .filters import filters
from .heatmap import save_heatmap
from .overlay import overlay
from .receptive_field import Region, effective_field, input_region, receptive_field, rf_by_depth
from .report import build_report

__all__ = [
    "Region",
    "activation_maps",
    "activations",
    "build_report",
    "confusion",
    "conv_layer_paths",
    "curves",
    "effective_field",
    "figure_bytes",
    "filters",
    "input_region",
    "load_image",
    "overlay",
    "rank_channels",
    "read_metrics",
    "receptive_field",
    "rf_by_depth",
    "save_figure",
    "save_heatmap",
]
