"""TensorFlow's ``SAME`` padding: an output of ceil(W / S) whatever W, the extra pixel at the end.

TensorFlow pads a window of span F_eff = d(F-1)+1 and stride S on an input of width W by

    P_total = max((ceil(W/S) - 1) * S + F_eff - W, 0),   P_before = P_total // 2,
    P_after = P_total - P_before,

so the output has ceil(W/S) pixels. With stride 1 and an odd span this is torch's symmetric
padding (F_eff - 1)/2. With stride 2 it depends on the input's parity: an odd width is padded
symmetrically, an even one gets one pixel more at the bottom/right, which torch's symmetric
``padding`` cannot express. NASNet (and its published TensorFlow weights) were built this way,
so the layers here pad per call to give the same numbers on any input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def same_padding(w: int, f: int, s: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one axis for TF ``SAME``: the output has ceil(w / s) pixels.

    >>> same_padding(42, 3, 2)  # even input: nothing before, one pixel after
    (0, 1)
    >>> same_padding(165, 7, 2)  # odd input: symmetric
    (3, 3)
    """
    span = dilation * (f - 1) + 1
    total = max((math.ceil(w / s) - 1) * s + span - w, 0)
    return total // 2, total - total // 2


def _static(f: int, s: int, dilation: int) -> int | None:
    """The symmetric padding that equals SAME for every input size, or None if none does."""
    span = dilation * (f - 1) + 1
    return (span - 1) // 2 if s == 1 and span % 2 == 1 else None


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TF ``SAME`` padding: (N, C, H, W) -> (N, K, ceil(H/S), ceil(W/S)).

    Stride 1 with an odd kernel pads symmetrically (a plain conv); otherwise each call pads
    the input as :func:`same_padding` says before a conv without padding. The weights and the
    state dict are a plain ``nn.Conv2d``'s.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        s = (stride, stride) if isinstance(stride, int) else tuple(stride)
        pads = [_static(k[i], s[i], dilation) for i in range(2)]
        self.dynamic = any(p is None for p in pads)
        super().__init__(
            in_channels,
            out_channels,
            k,
            s,
            padding=0 if self.dynamic else tuple(pads),
            dilation=dilation,
            groups=groups,
            bias=bias,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic:
            (kh, kw), (sh, sw), d = self.kernel_size, self.stride, self.dilation[0]
            top, bottom = same_padding(x.shape[-2], kh, sh, d)
            left, right = same_padding(x.shape[-1], kw, sw, d)
            x = F.pad(x, (left, right, top, bottom))
        return super().forward(x)


class SamePool2d(nn.Module):
    """Max or average pooling with TF ``SAME`` padding: (N, C, H, W) -> (N, C, ceil(H/S), ceil(W/S)).

    Padded pixels never count, as in TensorFlow: a max ignores them and an average divides by
    the number of real pixels in its window (torch's ``count_include_pad=False``). Torch pads
    symmetrically, so the extra pixel SAME adds at the end is had with ``ceil_mode``: the last
    window then reaches past the input, and torch counts only what lies inside.
    """

    def __init__(self, kind: str, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        if kind not in ("max", "avg"):
            raise ValueError(f"SamePool2d: kind must be 'max' or 'avg', got {kind!r}")
        self.kind, self.kernel_size, self.stride = kind, kernel_size, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        pad = (same_padding(x.shape[-2], k, s)[0], same_padding(x.shape[-1], k, s)[0])
        if self.kind == "max":
            return F.max_pool2d(x, k, s, pad, ceil_mode=True)
        return F.avg_pool2d(x, k, s, pad, ceil_mode=True, count_include_pad=False)

    def extra_repr(self) -> str:
        return f"{self.kind}, kernel_size={self.kernel_size}, stride={self.stride}, padding=SAME"
