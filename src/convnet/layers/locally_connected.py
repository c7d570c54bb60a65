"""The locally connected layer: a convolution whose filters are not shared across positions.

The notes (seed 000, parameter sharing) point out that sharing one filter per depth slice
assumes a feature useful at one place is useful everywhere; for centred faces it is not, and
DeepFace-style networks learn a separate filter at every output position instead.

Layout. For an input (N, C_in, H, W), kernel (kh, kw), stride s and zero padding p:

    out_h = (H - kh + 2 p_h) / s_h + 1,   out_w = (W - kw + 2 p_w) / s_w + 1
    weight: (out_h * out_w, C_out, C_in * kh * kw)   one filter bank per output position,
            position index l = i * out_w + j (row-major), patch index k = (c, u, v) flattened
            exactly as ``torch.nn.functional.unfold`` orders it (channel-major, then rows).
    bias:   (C_out, out_h, out_w)                    one bias per output neuron
    out[n, o, i, j] = bias[o, i, j] + sum_k weight[i*out_w + j, o, k] * patch_{i,j}[n, k]

Parameters: out_h*out_w*C_out*(C_in*kh*kw + 1) -- out_h*out_w times a conv layer's filter
weights, which is the price of dropping the sharing.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import arith
from ..errors import ShapeError


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


class LocallyConnected2d(nn.Module):
    """Unshared-weights 2d layer; see the module docstring for shapes and formulas.

    Args:
        in_channels: C_in.
        out_channels: C_out (the number of filters at each position).
        in_size: (H, W) of the input; fixed, because every position owns its weights.
        kernel_size, stride, padding: as for ``nn.Conv2d`` (int or pair; zero padding).
        bias: learn a bias per output neuron (C_out, out_h, out_w).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        in_size: int | tuple[int, int],
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.in_size = _pair(in_size)
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        out = []
        for dim, name in ((0, "height"), (1, "width")):
            n, f, s, p = (
                self.in_size[dim],
                self.kernel_size[dim],
                self.stride[dim],
                self.padding[dim],
            )
            if not arith.fits(n, f, s, p):  # no partial windows: every column has its own filter
                raise ShapeError(
                    f"LocallyConnected2d: (in {name} {n} - kernel {f} + 2*pad {p}) / stride {s} is "
                    "not a whole number >= 0; change the padding or the stride so the filters fit"
                )
            out.append(arith.output_size(n, f, s, p))
        self.out_size: tuple[int, int] = (out[0], out[1])
        positions = out[0] * out[1]
        patch = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        self.weight = nn.Parameter(torch.empty(positions, self.out_channels, patch))
        self.bias = nn.Parameter(torch.empty(self.out_channels, *self.out_size)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each position's filter bank gets nn.Conv2d's default (uniform, bound 1/sqrt(fan_in))."""
        fan_in = self.weight.shape[2]
        bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, out_h, out_w)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.in_size:
            raise ShapeError(
                f"LocallyConnected2d expects input (N, {self.in_channels}, {self.in_size[0]}, "
                f"{self.in_size[1]}), got {tuple(x.shape)}; its weights are tied to that size"
            )
        cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)  # (N, K, L)
        out = torch.einsum("nkl,lok->nol", cols, self.weight)  # (N, C_out, L)
        out = out.reshape(x.shape[0], self.out_channels, *self.out_size)
        if self.bias is not None:
            out = out + self.bias
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, in_size={self.in_size}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"out_size={self.out_size}, bias={self.bias is not None}"
        )
