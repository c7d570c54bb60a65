"""Multi-process training: torchrun detection, local spawning, process-group set-up.

Two ways in:

- ``torchrun --nproc_per_node N [--nnodes M --node_rank R --rdzv_endpoint HOST:PORT] ...``
  sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; ``fit`` sees them and joins.
- ``nproc > 1`` on one machine: ``fit`` spawns N processes with torch.multiprocessing and a free
  local port.

The backend is NCCL when each process has a GPU, else gloo. The process group's timeout is short
(``TrainConfig.dist_timeout``) so a rank that died makes the others fail within seconds-to-a-minute
with a TrainingError instead of hanging.
"""

from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def env_world() -> Dist | None:
    """The torchrun environment when this process was started by one (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return None
    return Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(d: Dist, device: torch.device, timeout_s: float) -> None:
    """Join the process group (idempotent)."""
    if dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {}
    if backend == "nccl":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    dist.init_process_group(
        backend,
        rank=d.rank,
        world_size=d.world,
        timeout=datetime.timedelta(seconds=timeout_s),
        **kwargs,
    )


def barrier() -> None:
    """Wait for every rank (a no-op without a process group)."""
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def local_device(d: Dist, device: str) -> torch.device:
    """cuda:LOCAL_RANK when GPUs are used, else cpu."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", d.local_rank % max(1, torch.cuda.device_count()))
    return dev


def spawn(fn, nproc: int, args: tuple) -> None:
    """Run ``fn(rank, nproc, *args)`` in ``nproc`` fresh processes on this machine."""
    import torch.multiprocessing as mp

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    mp.spawn(_entry, args=(fn, nproc, args), nprocs=nproc, join=True)


def _entry(rank: int, fn, nproc: int, args: tuple) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(nproc)
    )
    fn(rank, nproc, *args)
