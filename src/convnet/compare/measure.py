"""Measured on this machine: forward time against the batch size, and peak memory.

**Time.** For each batch size ``B``: ``warmup`` untimed forward passes (kernels chosen, oneDNN
primitives built for the new shape), then timed passes until ``repeats`` are done or their sum
passes ``max_seconds`` (at least one). The reported time is the median run ``t``; per image
``t / B`` and throughput ``B / t`` images per second. The model runs in eval mode under
``torch.inference_mode``, channels-last, in the precision asked (weights and inputs cast to it),
on random normal inputs (a convolution's time does not depend on the values). On CUDA every run
ends with ``torch.cuda.synchronize()`` so the clock sees the kernels, not their launch.

**Memory.** The peak of bytes the allocator holds, above nothing: the model's parameters and
buffers, the batch and whatever the pass allocates at its worst moment.

- CPU: the c10 allocator's own records (``torch.profiler`` with ``profile_memory=True``) are
  replayed in time order; the peak of their running sum is what the pass added, on top of the
  parameters, buffers and batch that were allocated before it.
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

Inference is one forward pass; training one SGD-with-momentum step (forward, cross-entropy
against class 0 for every output, backward, step, ``zero_grad``) in the steady state: the
momentum buffers exist before the step, as they do from the second step on. Mixed precision
trains float32 weights under ``torch.autocast``.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._pytree import tree_flatten

from .power import Meter

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_CUDA_BLOCK = 512  # the CUDA caching allocator rounds every block up to 512 bytes


@dataclass
class BatchTiming:
    """The timed forward passes at one batch size; times in seconds, energy in joules."""

    batch: int
    seconds: list[float] = field(default_factory=list)
    joules: float | None = None  # over all timed runs, when a power meter ran
    meter_seconds: float | None = None  # the interval the meter measured

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def ms_per_image(self) -> float:
        return 1000.0 * self.median_s / self.batch

    @property
    def images_per_s(self) -> float:
        return self.batch / self.median_s

    @property
    def j_per_image(self) -> float | None:
        if self.joules is None:
            return None
        return self.joules / (self.batch * len(self.seconds))

    @property
    def watts(self) -> float | None:
        if self.joules is None or not self.meter_seconds:
            return None
        return self.joules / self.meter_seconds

    def to_dict(self) -> dict:
        return {
            "batch": self.batch,
            "runs": len(self.seconds),
            "seconds": [round(s, 6) for s in self.seconds],
            "median_s": self.median_s,
            "ms_per_image": self.ms_per_image,
            "images_per_s": self.images_per_s,
            "j_per_image": self.j_per_image,
            "watts": self.watts,
        }


def prepare(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """``model`` in eval mode on ``device``, cast to ``dtype``, its 4-D weights channels-last."""
    return model.eval().to(device=device, dtype=dtype, memory_format=torch.channels_last)


def make_input(
    batch: int, input_size: Sequence[int], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """A random ``(batch, *input_size)`` batch; channels-last when it is an image batch."""
    x = torch.randn((batch, *input_size), device=device, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batches(
    model: nn.Module,
    input_size: Sequence[int],
    batches: Sequence[int],
    *,
    device: torch.device,
    dtype: torch.dtype,
    warmup: int = 1,
    repeats: int = 3,
    max_seconds: float = 2.0,
    meter: Meter | None = None,
    on_run: Callable[[str], None] | None = None,
    on_warmup: Callable[[int, torch.Tensor], None] | None = None,
) -> list[BatchTiming]:
    """Time ``model``'s forward pass at each batch size (see the module docstring).

    ``model`` is already prepared (:func:`prepare`). ``meter`` measures the energy of each
    batch size's timed runs. ``on_run(text)`` is told before every pass (a progress bar);
    ``on_warmup(batch, x)``, when given, replaces the last warm-up pass at each batch size (the
    caller measures memory there: a warm-up's result is thrown away anyway).
    """
    results = []
    for batch in batches:
        x = make_input(batch, input_size, device, dtype)
        with torch.inference_mode():
            for i in range(warmup):
                if on_run:
                    on_run(f"batch {batch}: warm-up {i + 1}/{warmup}")
                if on_warmup is not None and i == warmup - 1:
                    on_warmup(batch, x)
                else:
                    model(x)
                _sync(device)
            timing = BatchTiming(batch)
            if meter is not None:
                meter.start()
            while len(timing.seconds) < repeats and sum(timing.seconds) < max_seconds:
                if on_run:
                    on_run(f"batch {batch}: run {len(timing.seconds) + 1}/{repeats}")
                t0 = time.perf_counter()
                model(x)
                _sync(device)
                timing.seconds.append(time.perf_counter() - t0)
            if meter is not None:
                energy = meter.stop()
                timing.joules, timing.meter_seconds = energy.joules, energy.seconds
        results.append(timing)
        del x
    return results


# --- memory -----------------------------------------------------------------------------------


def _storage_bytes(tensors: Sequence[torch.Tensor], device: torch.device) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        n = st.nbytes()
        if device.type == "cuda":
            n = math.ceil(n / _CUDA_BLOCK) * _CUDA_BLOCK
        seen[st.data_ptr()] = n
    return sum(seen.values())


@contextlib.contextmanager
def _quiet_profiler() -> Iterator[None]:
    """Keep the profiler's C++ start/stop lines off the terminal; let anything else through.

    Some torch builds print ``... profiler_start`` on file descriptor 2 at every profile; the
    progress bar and the table share that stream. The bar's own frames written meanwhile
    (terminal escape sequences) are dropped too: it redraws itself.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines():
                if not any(k in line for k in ("profiler_start", "profiler_stop", "\x1b")):
                    print(line, file=sys.stderr)


def _allocator_peak(fn: Callable[[], None]) -> int:
    """The peak of bytes the c10 CPU allocator held above its level when ``fn`` started."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_profiler(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        fn()
    records = sorted(
        (e.start_ns(), e.nbytes())
        for e in p.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in records:
        live += nbytes
        peak = max(peak, live)
    return peak


def _peak(fn: Callable[[], None], device: torch.device, persistent: int) -> int:
    """``persistent`` bytes plus the most ``fn`` adds at any moment, on ``device``."""
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return persistent + torch.cuda.max_memory_allocated(device) - base
    return persistent + _allocator_peak(fn)


def inference_peak(model: nn.Module, x: torch.Tensor) -> int:
    """Measured peak bytes of one forward pass of the prepared ``model`` on the batch ``x``."""
    device = x.device
    persistent = _storage_bytes([*model.parameters(), *model.buffers(), x], device)

    def forward() -> None:
        with torch.inference_mode():
            out = model(x)
            del out

    return _peak(forward, device, persistent)


def training_peak(
    model: nn.Module,
    input_size: Sequence[int],
    batch: int,
    *,
    device: torch.device,
    dtype: torch.dtype,
) -> int:
    """Measured peak bytes of one steady-state SGD-momentum training step of ``model``.

    ``model`` must hold float32 weights; ``dtype`` bf16/fp16 trains them under autocast. Its
    weights are not changed (learning rate 0) and its batch-norm statistics are restored.
    """
    saved = {k: v.clone() for k, v in model.named_buffers()}
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    # torch uses the multi-tensor ("foreach") kernels by default on CUDA only
    opt = torch.optim.SGD(params, lr=0.0, momentum=0.9, foreach=device.type == "cuda")
    for p in params:  # the state the first step leaves, so this step is the steady one
        opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    x = make_input(batch, input_size, device, torch.float32)
    half = dtype != torch.float32
    autocast = torch.autocast(device.type, dtype=dtype) if half else contextlib.nullcontext()
    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    persistent = _storage_bytes([*model.parameters(), *model.buffers(), *state, x], device)

    def step() -> None:
        with autocast:
            out = _logits(model(x))
            # class 0 for every position of every head: N int64 values each, a few bytes
            targets = [torch.zeros_like(t[:, 0], dtype=torch.long) for t in out]
            loss = sum(F.cross_entropy(t, y) for t, y in zip(out, targets))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    try:
        return _peak(step, device, persistent)
    finally:
        model.eval()
        with torch.no_grad():
            for k, v in model.named_buffers():
                v.copy_(saved[k])


def _logits(out: object) -> list[torch.Tensor]:
    """Every floating tensor a model returns (a main head and any auxiliary heads)."""
    return [
        t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.is_floating_point()
    ]
