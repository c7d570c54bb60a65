"""See what a network learned: filters, activation maps, overlays, receptive fields, curves,
and the feature hierarchy: top patches, deconvnet projections, occlusion, t-SNE of codes.

Every function takes a plain ``torch.nn.Module`` (or a run folder) and returns a
``matplotlib.figure.Figure``; nothing opens a window. Save with ``save_figure(fig, path)``
(PNG and SVG, written atomically) or build a whole run's page with ``build_report``.
"""

from __future__ import annotations

from ._images import conv_layer_paths, figure_bytes, load_image, save_figure
from .activations import activation_maps, activations, rank_channels
from .codes import codes, embed, layer_codes
from .curves import confusion, curves, read_metrics
from .deconv import deconv, project, projection_rules, signed_image
from .filters import filters
from .heatmap import save_heatmap
from .hierarchy import hierarchy
from .occlusion import Occlusion, occlude, occlusion
from .overlay import overlay
from .patches import Field, Images, TopUnits, layer_field, load_images, patches, top_units, unit_box
from .receptive_field import Region, effective_field, input_region, receptive_field, rf_by_depth
from .report import build_report

__all__ = [
    "Field",
    "Images",
    "Occlusion",
    "Region",
    "TopUnits",
    "activation_maps",
    "activations",
    "build_report",
    "codes",
    "confusion",
    "conv_layer_paths",
    "curves",
    "deconv",
    "effective_field",
    "embed",
    "figure_bytes",
    "filters",
    "hierarchy",
    "input_region",
    "layer_codes",
    "layer_field",
    "load_image",
    "load_images",
    "occlude",
    "occlusion",
    "overlay",
    "patches",
    "project",
    "projection_rules",
    "rank_channels",
    "read_metrics",
    "receptive_field",
    "rf_by_depth",
    "save_figure",
    "save_heatmap",
    "signed_image",
    "top_units",
    "unit_box",
]
