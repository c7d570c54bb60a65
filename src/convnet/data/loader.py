"""Mini-batches straight from in-memory tensors: no worker processes, no per-sample Python.

The order of epoch ``e`` is ``torch.randperm(N, generator=Generator().manual_seed(seed + e))``,
a pure function of (seed, epoch): a resumed run recomputes it instead of storing it, and
``start`` skips the batches already done. For DistributedDataParallel each rank takes every
``world_size``-th index of that order (after padding it, by repeating its head, to a multiple of
``world_size``), as torch's DistributedSampler does; so global step k of W ranks with per-rank
batch B/W sees the same images as step k of one process with batch B.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class Batches:
    """Iterate (images uint8 (B, C, H, W), labels int64 (B,)) over one split, on ``device``.

    On a CUDA device the whole split is copied there once (uint8 CIFAR-10 is 150 MB), so
    batches are gathered on the GPU; on the CPU they are gathered in place.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.device = torch.device(device) if device is not None else x.device
        keep_on_host = self.device.type == "cpu"
        self.x = x if keep_on_host else x.to(self.device)
        self.y = y if keep_on_host else y.to(self.device)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def order(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices for ``epoch``, in visiting order."""
        n = self.x.shape[0]
        if self.shuffle:
            idx = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed + epoch))
        else:
            idx = torch.arange(n)
        if self.world_size > 1:
            total = -(-n // self.world_size) * self.world_size
            if total > n:  # pad so every rank gets the same count (DistributedSampler's rule)
                idx = torch.cat([idx, idx[: total - n]])
            idx = idx[self.rank :: self.world_size]
        return idx

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        per_rank = -(-self.x.shape[0] // self.world_size)
        return per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``epoch``, beginning at batch number ``start`` (to resume mid-epoch)."""
        idx = self.order(epoch)
        if self.device.type != "cpu":
            idx = idx.to(self.device)
        for b in range(start, len(self)):
            sel = idx[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.x[sel], self.y[sel]
