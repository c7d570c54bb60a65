"""Imports every architecture family so each registers its builders."""

from . import (  # noqa: F401
    alexnet,
    allconv,
    cifar_resnet,
    densenet,
    fractalnet,
    googlenet,
    highway,
    inception_resnet_v2,
    inception_v3,
    inception_v4,
    lenet,
    nin,
    plain,
    preact_resnet,
    resnet,
    senet,
    squeezenet,
    vgg,
    wrn,
    zfnet,
)
