"""Multi-process training: torchrun detection, local spawning, process-group set-up.

Two ways in:

- ``torchrun --nproc_per_node N [--nnodes M --node_rank R --rdzv_endpoint HOST:PORT] ...``
  sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; ``fit`` sees them and joins.
- ``nproc > 1`` on one machine: ``fit`` starts N processes with torch.multiprocessing and a free
  local port, forked from a forkserver that imported torch once (:func:`process_context`).

The backend is NCCL when each process has a GPU, else gloo. The process group's timeout is short
(``TrainConfig.dist_timeout``) so a rank that died makes the others fail within seconds-to-a-minute
with a TrainingError instead of hanging.

This module also holds what every process of a run must agree on: the device, the autocast
choice, a SIGTERM that stops all ranks at the same step (:class:`StopRequest`, :func:`agree`) and
the sums over ranks (:func:`all_sum`).
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import sys
import threading
import time
import warnings
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..errors import ConvnetError, TrainingError


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


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, as taskset or a container sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores since boot, from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])  # guest time is already counted in user


def idle_cores(window: float = 0.1) -> float:
    """How many cores sat idle during the last ``window`` seconds, by /proc/stat's counters
    (idle share x cores); where /proc is missing, cores minus the 1-minute load average."""
    cores = os.cpu_count() or 1
    first = _cpu_times()
    if first is not None:
        time.sleep(window)
        second = _cpu_times()
        if second is not None and second[1] > first[1]:
            return cores * (second[0] - first[0]) / (second[1] - first[1])
    try:
        return max(0.0, cores - os.getloadavg()[0])
    except OSError:
        return float(cores)


def default_threads(local_world: int = 1, idle: float | None = None) -> int:
    """CPU threads per process when ``--threads`` is 0: the idle cores, shared by the processes.

    ``max(1, min(usable // local_world, round(idle / local_world)))`` where ``usable`` counts
    the cores this process may use and ``idle`` the cores idle now (:func:`idle_cores` when not
    given). Why: torch's intra-op threads wait for one another at every operation, so one thread
    that shares its core with another busy process stalls all of them: with one CPU-bound
    competitor on 2 cores, LeNet-5 trained in 41.8 s on 2 threads and 17.7 s on 1 (13.7 s
    quiet). On a quiet machine every usable core is idle and the count is today's.
    """
    share = max(1, usable_cores() // max(1, local_world))
    if idle is None:
        idle = idle_cores()
    return max(1, min(share, round(idle / max(1, local_world))))


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: the GPU when torch sees one, else the CPU; ``cpu``, ``cuda`` or ``cuda:N``.

    A device that torch does not name, that this machine lacks, or that holds no data (``meta``)
    is a one-line :class:`ConvnetError` here, before a run folder or a model is touched.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConvnetError(f"--device {device!r}: give auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConvnetError(f"--device {device}: no CUDA GPU is visible here; use cpu or auto")
        if dev.index is not None and dev.index >= count:
            raise ConvnetError(
                f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}"
            )
    elif dev.type != "cpu":
        raise ConvnetError(f"--device {device}: convnet runs on cpu or cuda[:N]; use auto or cpu")
    return dev


def local_device(d: Dist, device: str) -> torch.device:
    """cuda:LOCAL_RANK when GPUs are used, else cpu."""
    dev = pick_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", d.local_rank % max(1, torch.cuda.device_count()))
    return dev


def bf16_pays(device: torch.device) -> bool:
    """Whether bf16 arithmetic runs at speed on ``device``: a CUDA GPU with bf16, or a CPU whose
    oneDNN has a bf16 path (AVX-512 cores and up). On an AVX2-only CPU torch falls back to a
    reference bf16 GEMM about 37x slower than fp32 (512^3: 0.196 s vs 0.0053 s)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a torch built without oneDNN
            return False
    return False


def autocast_for(precision: str, device: torch.device) -> AbstractContextManager:
    """bf16 autocast for ``precision="bf16"`` (with a warning where bf16 does not pay, see
    :func:`bf16_pays`), or for ``"auto"`` on a CUDA GPU with bf16; else a no-op context (fp32)."""
    if precision == "auto":
        use = device.type == "cuda" and bf16_pays(device)
    else:
        use = precision == "bf16"
        if use and device.type == "cpu" and not bf16_pays(device):
            warnings.warn(
                "bf16 has no fast path on this CPU (on x86 it needs AVX-512) and runs much "
                "slower than fp32: pass --precision fp32 to train faster",
                stacklevel=2,
            )
    return torch.autocast(device.type, dtype=torch.bfloat16) if use else nullcontext()


def agree(flag: bool, d: Dist) -> bool:
    """True on every rank when any rank's ``flag`` is true (one all-reduce; free with 1 process)."""
    if not d.enabled:
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """The sum of ``t`` over ranks (a copy; ``t`` itself with 1 process)."""
    if d.enabled:
        t = t.clone()
        dist.all_reduce(t)
    return t


def all_min(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """The element-wise minimum of ``t`` over ranks (a copy; ``t`` itself with 1 process)."""
    if d.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


class StopRequest:
    """While entered, SIGTERM sets ``requested`` instead of killing the process.

    The loop reads it at its sync points through :func:`agree`, so every rank stops after the
    same step and rank 0 saves that step. Entering is re-entrant (a spawned rank installs it
    from its first line, the loop enters it again); leaving the outermost ``with`` restores the
    previous handler. Outside the main thread (where Python allows no handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.requested = False
        self._depth = 0
        self._old: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True

    def __enter__(self) -> StopRequest:
        if self._depth == 0 and threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        self._depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._installed:
            signal.signal(signal.SIGTERM, self._old)
            self._installed = False


class RankDied(TrainingError):
    """A spawned training process ended without reporting an error (killed, or it crashed)."""


# What a training process imports before its first step: torch's optimizers import torch._dynamo
# on first use (about 2 s on a 2-core CPU), so the forkserver imports it once for every rank.
TRAINING_PRELOAD = ("convnet.train.loop", "torch._dynamo")


def process_context(preload: tuple[str, ...]):
    """The multiprocessing context worker processes start from (torch's, so tensors passed to
    them share memory): "forkserver" where the platform has it, its server importing
    ``preload`` once, so that each worker forks from an interpreter that already holds torch
    instead of importing it again (seconds per process on a small CPU); "spawn" elsewhere.
    Neither copies this process's threads, CUDA state or open run folders into the workers."""
    import torch.multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))  # read when the server starts (the first use)
    return ctx


def spawn(fn, nproc: int, args: tuple, grace_s: float = 5.0) -> None:
    """Run ``fn(rank, nproc, *args, stop=StopRequest)`` in ``nproc`` new processes
    (:func:`process_context`), each with this process's environment.

    SIGTERM to this process is passed on to every rank (each saves at the step the ranks agree
    on, then returns). When a rank fails, the others get ``grace_s`` seconds to end and are then
    killed; the error raised here is one line: the ConvnetError a rank raised (a user's mistake
    is seen by every rank alike), else :class:`RankDied` naming the rank and its signal or exit
    code, else the first other failure as a TrainingError.
    """
    ctx = process_context(TRAINING_PRELOAD)
    reports = ctx.SimpleQueue()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    env = dict(os.environ)  # a forkserver's children inherit its environment, not this one's
    procs = [
        ctx.Process(
            target=_entry, args=(rank, fn, nproc, args, reports, env), name=f"convnet-rank{rank}"
        )
        for rank in range(nproc)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, frame: Any) -> None:
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)

    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, forward) if main else None
    try:
        failed = _join(procs, grace_s)
    finally:
        if main:
            signal.signal(signal.SIGTERM, old)
        for p in procs:  # after a failure or ^C: nobody outlives the run
            if p.is_alive():
                p.kill()
            p.join()
    if failed is not None:
        raise _failure(failed, procs, _drain(reports))


def _join(procs: list, grace_s: float) -> int | None:
    """Wait for every process; return the rank of the first to exit non-zero (None: all ok)."""
    from multiprocessing.connection import wait

    live = {p.sentinel: rank for rank, p in enumerate(procs)}
    while live:
        for sentinel in wait(list(live)):
            rank = live.pop(sentinel)
            procs[rank].join()
            if procs[rank].exitcode != 0:  # the others may be reporting the same error
                deadline = time.monotonic() + grace_s
                while live and deadline > time.monotonic():
                    for s in wait(list(live), timeout=deadline - time.monotonic()):
                        live.pop(s)
                return rank
    return None


def _drain(reports: Any) -> list[tuple[int, BaseException]]:
    out = []
    while not reports.empty():
        out.append(reports.get())
    return sorted(out, key=lambda r: r[0])


def _failure(rank: int, procs: list, reports: list[tuple[int, BaseException]]) -> ConvnetError:
    """The one error to raise for a failed spawn (see :func:`spawn`)."""
    for _, e in reports:
        if isinstance(e, ConvnetError) and not isinstance(e, RankDied):
            return e
    code = procs[rank].exitcode
    if not any(r == rank for r, _ in reports):
        how = f"exit code {code}"
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        return RankDied(f"training process {rank} of {len(procs)} died ({how})")
    return (
        reports[0][1]
        if isinstance(reports[0][1], ConvnetError)
        else TrainingError(str(reports[0][1]))
    )


def _entry(rank: int, fn, nproc: int, args: tuple, reports: Any, env: dict[str, str]) -> None:
    """A spawned rank: report an error to the parent as one line instead of a traceback."""
    os.environ.clear()
    os.environ.update(env)  # the parent's environment now, as a spawned process would see it
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(nproc)
    )
    _die_with_parent()
    with StopRequest() as stop:  # from the first line: a SIGTERM during set-up is not lost
        try:
            fn(rank, nproc, *args, stop=stop)
        except ConvnetError as e:
            try:
                reports.put((rank, e))
            except Exception:  # an error class that does not pickle: keep its message
                reports.put((rank, ConvnetError(str(e))))
            sys.exit(2)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as e:
            reports.put((rank, TrainingError(f"training process {rank}: {_one_line(e)}")))
            sys.exit(1)


def _one_line(e: BaseException) -> str:
    """``Type: first line of the message (at file:line)`` for an unexpected exception."""
    import traceback

    first = (str(e).strip().splitlines() or [""])[0]
    frames = traceback.extract_tb(e.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {first}{where}"


def _die_with_parent() -> None:
    """Linux: SIGTERM this rank when its parent process dies, so it saves and exits instead of
    training on as an orphan (its parent is the forkserver, which exits when the process that
    started the run does)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
