"""The notes' pattern language: a ConvNet from one line.

    INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC

``parse(text)`` gives a syntax tree (``Net``), ``build(text)`` an ``nn.Sequential``,
``format(model_or_tree)`` the line back. Layers (case-insensitive):

    INPUT[WxHxD]            the input volume (width x height x depth, as the notes write it)
    CONV, CONV3, CONV3-64   convolution; CONV(F=5,S=1,P=2,K=32,dilation=1,groups=1)
    POOL, POOL2, POOL3      max pooling, F=2 S=2 by default; POOL(F=3,S=2,P=0)
    AVGPOOL, L2POOL         average / L2-norm pooling, same arguments
    GAP                     global average pooling
    FC, FC-4096, FC(10)     fully connected (the last one: num_classes units)
    RELU, SOFTMAX, BN       BN is BatchNorm2d on volumes, BatchNorm1d after an FC
    DROPOUT, DROPOUT(0.3)   p defaults to 0.5
    LRN(k=2,n=5,alpha=1e-4,beta=0.75)   AlexNet's local response normalization
    LC, LC3-64              locally connected (unshared filters), CONV's arguments

Structure: ``[ ... ]*N`` repeats (nested; N may be a symbol given after ``;`` as in
``...; N=2, M=3`` or by ``build(counts=...)``), ``X?`` marks an optional layer. Arrows:
``->``, ``=>``, ``⇒``, ``\\Rightarrow``, or ``-`` between names; markdown escapes
such as ``\\*`` are accepted, so lines copied from the notes work as they are.
"""

from ..errors import NotationError
from ._errors import NotationShapeError
from ._parser import parse
from .build import build
from .format import format, from_module
from .tree import Layer, Net, Repeat

__all__ = [
    "Layer",
    "Net",
    "NotationError",
    "NotationShapeError",
    "Repeat",
    "build",
    "format",
    "from_module",
    "parse",
]
