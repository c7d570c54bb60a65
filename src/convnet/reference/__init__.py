"""The NumPy reference engine: every layer from scratch, with the same numbers as PyTorch.

- :mod:`.im2col`: receptive fields as rows of a matrix (the notes' [363 x 3025]);
- :mod:`.functional`: forward/backward pairs; convolution as naive loops, as the notes'
  im2col + GEMM (:mod:`.functional_conv`) and as the fast path the layers run
  (:mod:`.functional_conv_fast`: Winograd, channels-last layouts, reused buffers);
- :mod:`.layers`, :mod:`.graph_ops`: layer objects holding parameters, gradients and caches;
- :mod:`.net`: ``Sequential`` and a small DAG ``Net`` for branches and shortcuts;
- :mod:`.losses`, :mod:`.optim`, :mod:`.solver`: softmax/SVM, SGD/Adam, the training loop;
- :mod:`.gradcheck`: centred differences and relative errors;
- :func:`from_torch`: a torch module as a reference net with the same weights (the one place
  that imports torch, loaded only when asked for).

The core never imports torch: ``import convnet.reference`` stays NumPy-only.
"""

from __future__ import annotations

from . import functional
from ._blas import blas_threads
from ._scratch import release as release_scratch
from .gradcheck import check_layer, numerical_gradient, rel_error
from .losses import softmax_cross_entropy, svm_hinge
from .net import Net, Node, Ref, Sequential
from .optim import SGD, Adam
from .solver import Solver

__all__ = [
    "SGD",
    "Adam",
    "Net",
    "Node",
    "Ref",
    "Sequential",
    "Solver",
    "blas_threads",
    "check_layer",
    "from_torch",
    "functional",
    "numerical_gradient",
    "rel_error",
    "release_scratch",
    "softmax_cross_entropy",
    "svm_hinge",
    "train_numpy",
]


def __getattr__(name: str):
    # the torch bridge is imported only on demand, so the engine itself stays torch-free
    if name in ("from_torch", "train_numpy"):
        from . import torch_bridge

        return getattr(torch_bridge, name)
    raise AttributeError(f"module 'convnet.reference' has no attribute {name!r}")
