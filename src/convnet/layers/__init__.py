"""Blocks the notes name that torch lacks (one concept per file)."""

from .connection_table import LENET5_C3_TABLE, ConnectionTableConv2d
from .drop_path import DropPath, drop_path, linear_survival
from .fire import Fire
from .highway import Highway
from .inception import BasicConv2d, Inception
from .l2pool import L2Pool2d
from .locally_connected import LocallyConnected2d
from .lrn import local_response_norm
from .nasnet_cells import (
    NASNET_A_NORMAL,
    NASNET_A_REDUCTION,
    CellBlock,
    NASNetCell,
    NASNetCellSpec,
)
from .same_padding import SameConv2d, SamePool2d, same_padding
from .squeeze_excite import SqueezeExcite
from .subsampling import Subsampling2d

__all__ = [
    "LENET5_C3_TABLE",
    "NASNET_A_NORMAL",
    "NASNET_A_REDUCTION",
    "BasicConv2d",
    "CellBlock",
    "ConnectionTableConv2d",
    "DropPath",
    "Fire",
    "Highway",
    "Inception",
    "L2Pool2d",
    "LocallyConnected2d",
    "NASNetCell",
    "NASNetCellSpec",
    "SameConv2d",
    "SamePool2d",
    "SqueezeExcite",
    "Subsampling2d",
    "drop_path",
    "linear_survival",
    "local_response_norm",
    "same_padding",
]
