"""A convolution whose output maps each see only a chosen subset of the input maps.

LeNet-5's C3 (LeCun et al. 1998, Table I) connects its 16 maps to subsets of S2's 6 maps, to
break symmetry and to keep the connection count down. Only the connected filters are
parameters, so the parameter count is the paper's: sum_o |table[o]| kh kw + C_out
(C3: 60 * 25 + 16 = 1,516).

``weight`` has shape (connections, kh, kw), ordered by output map then by input map as listed
in ``table``. The forward pass computes only the connected products: output maps with the
same fan-in form one grouped convolution over their gathered input maps (LeNet's C3: three
groups, of 6 maps x 3 inputs, 9 x 4 and 1 x 6). So it costs, and a traced summary counts,
connections * kh * kw * out_h * out_w multiply-adds (C3: 150,000 per image, the paper's
151,600 connections less the biases), not the dense 240,000. ``dense_weight()`` gives the
equivalent zero-filled (C_out, C_in, kh, kw) filter bank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

# LeNet-5's C3 table: C3 map o reads the S2 maps listed (paper Table I, columns 0..15).
LENET5_C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)  # fmt: skip


class ConnectionTableConv2d(nn.Module):
    """Conv2d restricted to a connection table: output map o reads input maps ``table[o]``."""

    def __init__(
        self,
        in_channels: int,
        table: Sequence[Sequence[int]],
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = int(in_channels)
        self.out_channels = len(table)
        self.kernel_size = (
            (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        )
        self.stride, self.padding = stride, padding
        pairs = [(o, i) for o, ins in enumerate(table) for i in ins]
        if any(not 0 <= i < self.in_channels for _, i in pairs):
            raise ValueError(
                f"ConnectionTableConv2d: table names an input map outside 0..{self.in_channels - 1}"
            )
        self.table = tuple(tuple(int(i) for i in ins) for ins in table)
        self.register_buffer("out_index", torch.tensor([o for o, _ in pairs]), persistent=False)
        self.register_buffer("in_index", torch.tensor([i for _, i in pairs]), persistent=False)
        self._groups, self._order = self._plan()
        self._on_device: dict[torch.device, tuple[list[dict], torch.Tensor | None]] = {}
        self.weight = nn.Parameter(torch.empty(len(pairs), *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()

    def _plan(self) -> tuple[list[dict], torch.Tensor | None]:
        """Group the output maps by fan-in: each group is one grouped conv over gathered inputs."""
        starts, offset = [], 0
        for ins in self.table:
            starts.append(offset)
            offset += len(ins)
        groups, produced = [], []
        for fan_in in sorted({len(ins) for ins in self.table}):
            outs = [o for o, ins in enumerate(self.table) if len(ins) == fan_in]
            groups.append(
                {
                    "fan_in": fan_in,
                    "maps": len(outs),
                    "outputs": torch.tensor(outs),
                    "inputs": torch.tensor([i for o in outs for i in self.table[o]]),
                    "rows": torch.tensor([starts[o] + k for o in outs for k in range(fan_in)]),
                }
            )
            produced += outs
        order = torch.tensor([produced.index(o) for o in range(self.out_channels)])
        identity = produced == list(range(self.out_channels))
        return groups, None if identity else order

    def reset_parameters(self) -> None:
        """Uniform in +-1/sqrt(fan_in) with each output map's own fan-in (as nn.Conv2d does)."""
        area = self.kernel_size[0] * self.kernel_size[1]
        start = 0
        with torch.no_grad():
            for o, ins in enumerate(self.table):  # rows are grouped by output map, in table order
                bound = 1.0 / math.sqrt(len(ins) * area)
                nn.init.uniform_(self.weight[start : start + len(ins)], -bound, bound)
                if self.bias is not None:
                    nn.init.uniform_(self.bias[o : o + 1], -bound, bound)
                start += len(ins)

    def dense_weight(self) -> torch.Tensor:
        """The (C_out, C_in, kh, kw) filter bank with zeros where the table has no connection."""
        w = self.weight.new_zeros(self.out_channels, self.in_channels, *self.kernel_size)
        index = (self.out_index.to(w.device), self.in_index.to(w.device))
        return w.index_put(index, self.weight)

    def _indices(self, device: torch.device) -> tuple[list[dict], torch.Tensor | None]:
        """The plan's index tensors on ``device`` (not buffers: they stay out of the state dict)."""
        if device not in self._on_device:
            groups = [
                {k: v.to(device) if torch.is_tensor(v) else v for k, v in g.items()}
                for g in self._groups
            ]
            order = None if self._order is None else self._order.to(device)
            self._on_device[device] = (groups, order)
        return self._on_device[device]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C_in, H, W) -> (N, C_out, out_h, out_w), out = (H - kh + 2p) / s + 1."""
        groups, order = self._indices(x.device)
        outs = []
        for g in groups:
            w = self.weight[g["rows"]].view(g["maps"], g["fan_in"], *self.kernel_size)
            b = self.bias[g["outputs"]] if self.bias is not None else None
            outs.append(
                F.conv2d(x[:, g["inputs"]], w, b, self.stride, self.padding, groups=g["maps"])
            )
        out = torch.cat(outs, 1)
        return out if order is None else out[:, order]

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"connections={self.weight.shape[0]}, stride={self.stride}, padding={self.padding}"
        )
