"""Training memory: what one SGD step really keeps alive, simulated without allocating anything.

The notes (section 5, "Computational considerations") name three sources of memory: the
activations kept for backpropagation (and their gradients), the parameters with their gradients
and optimizer caches ("x3 or more"), and miscellaneous memory such as the data batch. Their advice
when a network does not fit is to shrink the batch, because activations dominate.

Counting values per layer gives the notes' rough figure. This module gives the realistic one: it
runs a complete training step (forward, cross-entropy loss, backward, optimizer step, zero_grad)
on tensors that have a shape, dtype and device but no storage: the meta device for float CPU
training, ``FakeTensorMode`` otherwise (autocast, CUDA). A ``TorchDispatchMode`` sees every
operator's outputs and records each new storage; a weakref on the storage tells it when the
storage dies (autograd frees saved tensors as backward walks the graph, ``relu_`` writes in place,
a view shares its base). The running sum of live bytes, sampled after every operator, is what a
non-caching allocator holds; its maximum is the peak.

The optimizer state is created first, as the first real step would: the simulated step is the
steady state every later step repeats (the first step peaks lower, with no state in backward).

Besides the storages an operator returns, some kernels use scratch memory they free before
returning. On the CPU, oneDNN convolutions compute in a channel-blocked layout (channels padded to
the SIMD width) and reorder into the plain output; ``_workspace.conv_workspace`` models that scratch, and
torch's im2col buffer where torch picks its native kernel. GPU kernels' workspaces (cuDNN) and the
caching allocator's fragmentation are not modelled; CUDA sizes are rounded up to the allocator's
512-byte blocks, so expect a GPU's ``max_memory_allocated`` somewhat above the estimate.

Mixed precision (``dtype=torch.bfloat16`` or ``torch.float16``) means the usual recipe: float32
weights, gradients and optimizer state; forward and loss under ``torch.autocast``, so convolutions
and matrix products store half-precision activations (and autocast keeps a half-precision copy of
each weight until the forward ends). ``dtype=torch.float64`` trains a model converted to float64.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..errors import ConvnetError, ShapeError
from ._workspace import HALF, conv_workspace

__all__ = [
    "InferenceEstimate",
    "MemoryEstimate",
    "estimate_inference_memory",
    "estimate_training_memory",
    "max_batch",
    "OPTIMIZERS",
]

OptimizerSpec = str | Callable[[list[torch.Tensor]], torch.optim.Optimizer]
OPTIMIZERS = ("sgd", "momentum", "adam")

_FULL = (torch.float32, torch.float64)
_CUDA_BLOCK = 512  # the CUDA caching allocator rounds every request up to 512 bytes

# Categories of live memory; "activations" are forward storages still alive (saved for backward,
# or the output the training loop holds), "backward" the gradients of activations in flight.
_CATEGORIES = (
    "params",
    "buffers",
    "batch",
    "grads",
    "optimizer",
    "activations",
    "backward",
    "temporaries",
    "workspace",
)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training step needs at ``batch_size``; every field is in bytes.

    ``peak_bytes`` is the largest total of live storages during a steady-state step (forward,
    backward, optimizer step); ``breakdown`` splits that moment into ``_CATEGORIES``.
    ``activations_bytes`` is what the forward pass leaves alive for backward at this batch
    (including the logits and the loss). ``batch_bytes`` holds the inputs and integer targets.
    """

    batch_size: int
    input_size: tuple[int, ...]
    dtype: str
    optimizer: str
    device: str
    params_bytes: int
    buffers_bytes: int
    grads_bytes: int
    optimizer_bytes: int
    batch_bytes: int
    activations_bytes: int
    peak_bytes: int
    peak_phase: str  # "forward", "backward" or "optimizer" (of the steady-state step)
    breakdown: dict[str, int] = field(default_factory=dict)

    @property
    def persistent_bytes(self) -> int:
        """What stays allocated between steps: parameters, buffers, optimizer state, the batch."""
        return self.params_bytes + self.buffers_bytes + self.optimizer_bytes + self.batch_bytes

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["input_size"] = list(self.input_size)
        d["breakdown"] = dict(self.breakdown)
        return d


class _StorageTracker(TorchDispatchMode):
    """Follows every storage an operator creates until it dies; keeps the peak of live bytes.

    Live bytes are kept per category (``_CATEGORIES``) so recording a peak's breakdown costs a
    dict copy, not a pass over every live storage.
    """

    _PHASE_CATEGORY = {"forward": "activations", "optimizer": "temporaries"}

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device
        self.phase = "setup"
        self.live: dict[int, list] = {}  # id(storage) -> [weakref, bytes, category]
        self.totals = dict.fromkeys(_CATEGORIES, 0)
        self.live_bytes = 0
        self.peak_bytes = 0
        self.peak_phase = "setup"
        self.peak_breakdown: dict[str, int] = {}

    def nbytes(self, st: torch.UntypedStorage) -> int:
        n = st.nbytes()
        if self.device.type == "cuda":
            return math.ceil(n / _CUDA_BLOCK) * _CUDA_BLOCK
        return n

    def track(self, t: torch.Tensor) -> None:
        st = t.untyped_storage()
        key = id(st)
        if key in self.live:
            return
        nbytes = self.nbytes(st)
        category = self._PHASE_CATEGORY.get(self.phase, self.phase)
        ref = weakref.ref(st, lambda _r, key=key: self._forget(key))
        self.live[key] = [ref, nbytes, category]
        self.totals[category] += nbytes
        self.live_bytes += nbytes

    def relabel(self, t: torch.Tensor, category: str) -> None:
        """Move a live storage to ``category`` (a gradient once accumulated, optimizer state)."""
        entry = self.live.get(id(t.untyped_storage()))
        if entry is not None and entry[2] != category:
            self.totals[entry[2]] -= entry[1]
            self.totals[category] += entry[1]
            entry[2] = category

    def _forget(self, key: int) -> None:
        # Runs while the storage is being destroyed: touch no tensor here, only our own records.
        entry = self.live.pop(key, None)
        if entry is not None:
            self.totals[entry[2]] -= entry[1]
            self.live_bytes -= entry[1]

    def sample(self, workspace: int = 0) -> None:
        total = self.live_bytes + workspace
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_phase = total, self.phase
            self.peak_breakdown = {**self.totals, "workspace": workspace}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.track(t)
        self.sample(conv_workspace(func, args, out, self.device))
        return out


def _make_optimizer(
    spec: OptimizerSpec, params: list[torch.Tensor], device: torch.device
) -> torch.optim.Optimizer:
    if callable(spec):
        return spec(params)
    # torch picks the multi-tensor ("foreach") kernels by default on CUDA only; fake tensors hide
    # the device from that choice, so make it here: foreach kernels allocate whole-model temporaries.
    foreach = device.type == "cuda"
    if spec == "sgd":
        return torch.optim.SGD(params, lr=0.01, foreach=foreach)
    if spec == "momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=foreach)
    if spec == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=foreach)
    raise ConvnetError(f"unknown optimizer {spec!r}: use one of {', '.join(OPTIMIZERS)}")


def _resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        dtype = resolved if isinstance(resolved, torch.dtype) else dtype
    if dtype not in _FULL + HALF:
        raise ConvnetError(
            f"dtype {dtype} cannot be trained here: use float32, bfloat16, float16 or float64"
        )
    return dtype


def _cross_entropy(
    out: object, targets: list[torch.Tensor], tracker: _StorageTracker
) -> torch.Tensor:
    """Cross-entropy of every floating output (auxiliary heads included) against class 0.

    The integer targets are made once, at the first step, and kept like a data loader's labels.
    """
    logits = [
        t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor) and t.is_floating_point()
    ]
    if not logits or any(t.dim() < 2 for t in logits):
        raise ShapeError("the model must return class scores of shape (N, K, ...) to be trained")
    if not targets:
        phase, tracker.phase = tracker.phase, "batch"
        for t in logits:
            targets.append(
                torch.zeros((t.shape[0], *t.shape[2:]), dtype=torch.long, device=t.device)
            )
        tracker.phase = phase
    loss = None
    for t, target in zip(logits, targets):
        term = F.cross_entropy(t, target)
        loss = term if loss is None else loss + term
    return loss


def _relabel_state(tracker: _StorageTracker, opt: torch.optim.Optimizer) -> None:
    for s in opt.state.values():
        for t in s.values():
            if isinstance(t, torch.Tensor):
                tracker.relabel(t, "optimizer")


def estimate_training_memory(
    model: nn.Module,
    input_size: tuple[int, ...],
    batch_size: int = 1,
    *,
    optimizer: OptimizerSpec = "momentum",
    dtype: torch.dtype | str = torch.float32,
    device: torch.device | str = "cpu",
) -> MemoryEstimate:
    """Simulate one steady-state training step of ``model`` on a ``(batch_size, *input_size)`` batch.

    No weight or activation is allocated: parameters are replaced by storage-less tensors of the
    same shapes (tied parameters stay tied; a model built on the meta device works) and the real
    forward, ``cross_entropy`` loss against integer targets, ``backward`` and ``optimizer.step``
    run on them. ``device`` is where training would run ("cpu", "cuda": a CUDA build of torch is
    needed, not a GPU). ``optimizer`` is ``"sgd"`` (no
    state), ``"momentum"`` (one buffer per parameter), ``"adam"`` (two buffers and a step count)
    or a function ``params -> torch.optim.Optimizer``. The model's train/eval mode is restored.

    Roughly ``peak ~ P * (2 + s) + B * (activations per image + their gradients in flight)``,
    with P the parameter bytes and s the optimizer's state multiple; the simulation replaces
    that rule of thumb by the allocator's real sequence of allocations and frees.
    """
    if batch_size < 1:
        raise ConvnetError(f"batch size must be at least 1, got {batch_size}")
    dtype = _resolve_dtype(dtype)
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():
            # fake CUDA tensors need a CUDA build of torch (no GPU needed); without one, torch aborts
            raise ConvnetError(
                "this torch build has no CUDA support: estimate for device='cpu' instead"
            )
        device = torch.device("cuda", 0 if device.index is None else device.index)
    was_training = model.training
    model.train()
    try:
        return _simulate(
            model, tuple(int(s) for s in input_size), batch_size, optimizer, dtype, device
        )
    finally:
        model.train(was_training)


def _simulate(
    model: nn.Module,
    input_size: tuple[int, ...],
    batch_size: int,
    optimizer: OptimizerSpec,
    dtype: torch.dtype,
    device: torch.device,
) -> MemoryEstimate:
    """One steady-state training step on storage-less tensors.

    Full precision on the CPU runs on the meta device (C++ shape functions: about 3x faster than
    fake tensors, and the same operators as the CPU: no autocast, no CUDA-only kernels). Fake
    tensors carry the target device where that matters (autocast, CUDA dispatch), and are the
    fallback when a model mixes in real tensors of its own (non-buffer constants) that meta
    tensors refuse.
    """
    if device.type == "cpu" and dtype not in HALF:
        try:
            return _simulate_on(model, input_size, batch_size, optimizer, dtype, device, meta=True)
        except (RuntimeError, NotImplementedError):
            pass
    try:
        return _simulate_on(model, input_size, batch_size, optimizer, dtype, device, meta=False)
    except (RuntimeError, ValueError) as e:
        shape = "x".join(str(v) for v in input_size)
        line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ShapeError(
            f"the model does not train on a batch of {batch_size} x {shape}: {line}"
        ) from None


def _simulate_on(
    model: nn.Module,
    input_size: tuple[int, ...],
    batch_size: int,
    optimizer: OptimizerSpec,
    dtype: torch.dtype,
    device: torch.device,
    *,
    meta: bool,
) -> MemoryEstimate:
    half = dtype in HALF
    tracker = _StorageTracker(device)
    where = torch.device("meta") if meta else device  # where the storage-less tensors live
    mode = nullcontext() if meta else FakeTensorMode(allow_non_fake_inputs=True)
    with mode, tracker:
        # One fake tensor per distinct parameter or buffer object, so tied weights stay tied.
        fakes: dict[int, torch.Tensor] = {}
        state: dict[str, torch.Tensor] = {}
        params: list[torch.Tensor] = []
        for kind, items in (
            ("params", model.named_parameters()),  # a tied parameter once, under its first name;
            ("buffers", model.named_buffers()),  # functional_call re-ties the other names
        ):
            tracker.phase = kind
            for name, p in items:
                if id(p) not in fakes:  # a buffer can also be registered twice
                    # mixed precision keeps float32 master weights; float64 converts the model
                    cast = p.is_floating_point() and not half
                    fake = torch.empty_strided(  # same layout (e.g. channels_last) as the model
                        p.shape, p.stride(), dtype=dtype if cast else p.dtype, device=where
                    )
                    if kind == "params" and p.requires_grad:
                        params.append(fake.requires_grad_(True))
                    fakes[id(p)] = fake
                state[name] = fakes[id(p)]
        if not params:
            raise ConvnetError("the model has no trainable parameters: there is nothing to train")
        tracker.phase = "batch"
        x = torch.empty(
            (batch_size, *input_size), dtype=torch.float32 if half else dtype, device=where
        )
        opt = _make_optimizer(optimizer, params, device)

        # Gradients and optimizer state are recognised by hooks, never from inside a weakref
        # callback: those run while a tensor is being destroyed, when touching tensors is unsafe.
        for p in params:
            p.register_post_accumulate_grad_hook(lambda p: tracker.relabel(p.grad, "grads"))
        opt.register_step_post_hook(lambda o, *_: _relabel_state(tracker, o))
        # Create the optimizer state as a first step would, so the simulated step is the steady
        # state every later step repeats (the first one peaks lower: no state during backward).
        tracker.phase = "optimizer"
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
        opt.zero_grad(set_to_none=True)
        targets: list[torch.Tensor] = []
        tracker.peak_bytes = 0
        tracker.sample()
        tracker.phase = "forward"
        autocast = torch.autocast(device.type, dtype=dtype) if half else nullcontext()
        with autocast:
            out = torch.func.functional_call(model, state, (x,), tie_weights=True, strict=False)
            loss = _cross_entropy(out, targets, tracker)
        after_forward = dict(tracker.totals)
        tracker.phase = "backward"
        loss.backward()
        grads_bytes = sum(
            tracker.nbytes(p.grad.untyped_storage()) for p in params if p.grad is not None
        )
        tracker.phase = "optimizer"
        opt.step()
        opt.zero_grad(set_to_none=True)
        del out, loss
        final = dict(tracker.totals)
        del x, targets
    return MemoryEstimate(
        batch_size=batch_size,
        input_size=input_size,
        dtype=str(dtype).removeprefix("torch."),
        optimizer=optimizer if isinstance(optimizer, str) else type(opt).__name__,
        device=str(device),
        params_bytes=final["params"],
        buffers_bytes=final["buffers"],
        grads_bytes=grads_bytes,
        optimizer_bytes=final["optimizer"],
        batch_bytes=final["batch"],
        activations_bytes=after_forward["activations"],
        peak_bytes=tracker.peak_bytes,
        peak_phase=tracker.peak_phase,
        breakdown={k: v for k, v in tracker.peak_breakdown.items() if v},
    )


def max_batch(
    model: nn.Module,
    input_size: tuple[int, ...],
    memory_bytes: int,
    *,
    limit: int = 1 << 20,
    inference: bool = False,
    **options,
) -> int:
    """The largest batch whose estimated peak fits in ``memory_bytes`` (0 if not even one image).

    ``peak(b) = a + b * c`` to within a kernel's choice of algorithm: two estimates (b = 2, 4,
    where every kernel already runs its batched path) give ``a`` and ``c``, then the prediction
    ``floor((memory - a) / c)`` is confirmed by estimating it and its neighbour, and corrected by
    bisection where the line was off. The peak is a training step's, or with ``inference`` a
    forward pass without gradients (:func:`estimate_inference_memory`); ``options`` are that
    function's keywords.
    """
    cache: dict[int, int] = {}
    estimate = estimate_inference_memory if inference else estimate_training_memory

    def peak(b: int) -> int:
        if b not in cache:
            cache[b] = estimate(model, input_size, b, **options).peak_bytes
        return cache[b]

    def fits(b: int) -> bool:
        return peak(b) <= memory_bytes

    if not fits(1):
        return 0
    slope = max((peak(4) - peak(2)) // 2, 1)
    intercept = peak(2) - 2 * slope
    guess = min(max((memory_bytes - intercept) // slope, 1), limit)
    # Bracket the answer: lo fits, hi does not (or is past the limit).
    if fits(guess):
        lo, hi = guess, guess + 1
        while hi <= limit and fits(hi):
            lo, hi = hi, min(2 * hi, limit + 1) if hi < limit else limit + 1
    else:
        lo, hi = 1, guess
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class InferenceEstimate:
    """Bytes one forward pass without gradients needs at ``batch_size``; every field is bytes.

    The notes (section 5): at test time only the current activations and the parameters are
    kept. ``peak_bytes = params + buffers + batch + activations_bytes``, where
    ``activations_bytes`` is the largest set of activations alive at one moment: a layer's
    input and output together, plus any earlier output a branch still holds (a residual's
    shortcut, an Inception module's other paths, a DenseNet's concatenated features), plus
    the scratch a CPU convolution holds while it runs.
    """

    batch_size: int
    input_size: tuple[int, ...]
    dtype: str
    device: str
    params_bytes: int
    buffers_bytes: int
    batch_bytes: int
    activations_bytes: int
    peak_bytes: int

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["input_size"] = list(self.input_size)
        return d


def estimate_inference_memory(
    model: nn.Module,
    input_size: tuple[int, ...],
    batch_size: int = 1,
    *,
    dtype: torch.dtype | str = torch.float32,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
) -> InferenceEstimate:
    """Simulate one forward pass of ``model`` in eval mode under ``torch.inference_mode``.

    As :func:`estimate_training_memory`, on storage-less tensors: the model's parameters and
    buffers stand in at ``dtype`` (an inference model is cast whole, no autocast), the batch is
    ``(batch_size, *input_size)`` (channels-last with ``channels_last``) and the same tracker
    follows every storage until it dies. The model's train/eval mode is restored.
    """
    if batch_size < 1:
        raise ConvnetError(f"batch size must be at least 1, got {batch_size}")
    dtype = _resolve_dtype(dtype)
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    size = tuple(int(s) for s in input_size)
    was_training = model.training
    model.eval()
    try:
        for meta in (True, False) if device.type == "cpu" else (False,):
            try:
                return _forward_on(model, size, batch_size, dtype, device, channels_last, meta)
            except (RuntimeError, NotImplementedError, ValueError) as e:
                error = e  # meta refuses a model's own real constants: try fake tensors
        line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        shape = "x".join(str(v) for v in size)
        raise ShapeError(f"the model does not run on a batch of {batch_size} x {shape}: {line}")
    finally:
        model.train(was_training)


def _forward_on(
    model: nn.Module,
    input_size: tuple[int, ...],
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device,
    channels_last: bool,
    meta: bool,
) -> InferenceEstimate:
    tracker = _StorageTracker(device)
    where = torch.device("meta") if meta else device
    mode = nullcontext() if meta else FakeTensorMode(allow_non_fake_inputs=True)
    with mode, tracker, torch.inference_mode():
        fakes: dict[int, torch.Tensor] = {}
        state: dict[str, torch.Tensor] = {}
        for kind, items in (
            ("params", model.named_parameters()),
            ("buffers", model.named_buffers()),
        ):
            tracker.phase = kind
            for name, p in items:
                if id(p) not in fakes:
                    cast = dtype if p.is_floating_point() else p.dtype
                    fakes[id(p)] = torch.empty_strided(
                        p.shape, p.stride(), dtype=cast, device=where
                    )
                state[name] = fakes[id(p)]
        tracker.phase = "batch"
        x = torch.empty((batch_size, *input_size), dtype=dtype, device=where)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        tracker.phase = "forward"
        out = torch.func.functional_call(model, state, (x,), tie_weights=True, strict=False)
        del out
        totals = dict(tracker.totals)
        del x
    return InferenceEstimate(
        batch_size=batch_size,
        input_size=input_size,
        dtype=str(dtype).removeprefix("torch."),
        device=str(device),
        params_bytes=totals["params"],
        buffers_bytes=totals["buffers"],
        batch_bytes=totals["batch"],
        activations_bytes=tracker.peak_bytes
        - totals["params"]
        - totals["buffers"]
        - totals["batch"],
        peak_bytes=tracker.peak_bytes,
    )
