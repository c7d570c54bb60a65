"""Every layer of the reference engine as a ``forward -> (out, cache)`` / ``backward`` pair.

The implementations live in these files, re-exported here so a learner can write
``from convnet.reference import functional as F`` and find everything:

- convolution three ways, with the same arguments and results:
  :mod:`.functional_conv_naive` (``conv2d_forward_naive``: the formula as loops),
  :mod:`.functional_conv` (``conv2d_forward_im2col``: im2col + one GEMM, the notes' recipe) and
  :mod:`.functional_conv_fast` (``conv2d_forward``: what the layers run; Winograd, channels-last
  layouts, reused buffers; ``conv_algorithm`` picks its algorithm);
- :mod:`.functional_pool`: max (with switches), average, L2, adaptive and global pooling;
- :mod:`.functional_layers`: activations, linear, batch norm, LRN, dropout, locally
  connected, flatten, concat, add.

Losses returning ``(loss, dscores)`` are in :mod:`.losses`.
"""

from __future__ import annotations

from .functional_conv import *  # noqa: F403
from .functional_conv import __all__ as _conv
from .functional_conv_fast import *  # noqa: F403
from .functional_conv_fast import __all__ as _conv_fast
from .functional_conv_naive import *  # noqa: F403
from .functional_conv_naive import __all__ as _conv_naive
from .functional_layers import *  # noqa: F403
from .functional_layers import __all__ as _layers
from .functional_pool import *  # noqa: F403
from .functional_pool import __all__ as _pool
from .losses import softmax_cross_entropy, svm_hinge

__all__ = [
    *_conv,
    *_conv_fast,
    *_conv_naive,
    *_layers,
    *_pool,
    "softmax_cross_entropy",
    "svm_hinge",
]
