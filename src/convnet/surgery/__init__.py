"""FC -> CONV surgery and dense evaluation (the notes' 384x384 -> 6x6 class-score example).

``fc_to_conv(model, input_size)`` returns a fully convolutional copy of a network whose head is
flatten + Linear layers; ``dense_predict(model, image, scales, shifts)`` slides it over a large
image in one pass per scale (and shift) and averages the windows' class probabilities
(``convnet.viz.save_heatmap`` draws a result's score map over the image).
"""

from __future__ import annotations

from .convert import Conversion, Step, fc_to_conv
from .dense import DensePrediction, ScoreMap, dense_predict

__all__ = [
    "Conversion",
    "DensePrediction",
    "ScoreMap",
    "Step",
    "dense_predict",
    "fc_to_conv",
]
