"""``compare(models)``: measure each model as the notes' comparison does and collect the results.

Per model: parameters and MACs (``convnet.analysis.summary``, on the meta device), the reported
top-1/top-5 of its model card (or a run folder's own test accuracy), inference and training
memory (estimated by ``convnet.analysis``, measured by this machine's allocator) and forward
time at each batch size, with energy where a meter is present (``measure``, ``power``).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConvnetError
from .measure import DTYPES, inference_peak, make_input, prepare, time_batches, training_peak
from .power import NOT_AVAILABLE, RAPL_ROOT, Meter, open_meter
from .results import Comparison, ModelResult

# The models seed 004's comparison figure names (Canziani et al. 2016) that the zoo has, each at
# its own canonical input (224, or 299 for the Inceptions).
FAMILIES = {
    "classic": (
        "alexnet",
        "vgg16",
        "vgg19",
        "googlenet",
        "resnet18",
        "resnet34",
        "resnet50",
        "resnet101",
        "resnet152",
        "inception_v3",
        "inception_v4",
    ),
}
MEASURES = ("time", "memory", "power")
PRECISIONS = tuple(DTYPES)
CIRCLES = ("memory", "params")
CPU_BATCHES = (1, 2, 4)  # so that --family classic takes minutes on two CPU cores
CUDA_BATCHES = (1, 2, 4, 8, 16, 32, 64)
MAX_BATCH = 4096


def family_models(family: str) -> list[str]:
    """``classic`` (the notes' figure), or every zoo model of a card family (``resnet``, ``VGG``)."""
    from ..models import get_card, list_models

    key = family.strip().lower()
    if key in FAMILIES:
        return list(FAMILIES[key])
    names = [n for n in list_models() if get_card(n).family.lower() == key]
    if not names:
        known = sorted({get_card(n).family.lower() for n in list_models()})
        raise ConvnetError(
            f"unknown family {family!r}: use classic or a zoo family ({', '.join(known)})"
        )
    return names


def _check(
    batches: Sequence[int],
    precision: str,
    measure: Sequence[str],
    repeats: int,
    warmup: int,
    max_seconds: float,
    memory_batch: int | None,
    train_batch: int,
    circle: str,
) -> None:
    """Refuse a bad option before any model is built (the keyword names what was wrong)."""
    if not batches or any(not 1 <= b <= MAX_BATCH for b in batches):
        raise ConvnetError(f"batches={list(batches)}: give batch sizes in 1..{MAX_BATCH}")
    if list(batches) != sorted(set(batches)):
        raise ConvnetError(f"batches={list(batches)}: give each size once, smallest first")
    if precision not in DTYPES:
        raise ConvnetError(f"precision={precision!r}: use one of {', '.join(DTYPES)}")
    unknown = [m for m in measure if m not in MEASURES]
    if unknown or not measure:
        raise ConvnetError(f"measure={list(measure)}: choose from {', '.join(MEASURES)}")
    if "power" in measure and "time" not in measure:
        raise ConvnetError("measure: power is measured during the timed runs; add time")
    if not 1 <= repeats <= 1000:
        raise ConvnetError(f"repeats={repeats}: must be in 1..1000 (timed runs per batch size)")
    if not 0 <= warmup <= 100:
        raise ConvnetError(f"warmup={warmup}: must be in 0..100 (untimed runs per batch size)")
    if not 0 < max_seconds <= 3600:
        raise ConvnetError(f"max_seconds={max_seconds}: must be in (0, 3600] seconds")
    for name, b in (("memory_batch", memory_batch), ("train_batch", train_batch)):
        if b is not None and not 1 <= b <= MAX_BATCH:
            raise ConvnetError(f"{name}={b}: must be in 1..{MAX_BATCH} images")
    if circle not in CIRCLES:
        raise ConvnetError(f"circle={circle!r}: use memory or params")


def _device(device: str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ConvnetError(f"device {device!r}: use cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConvnetError(f"device {device!r}: this machine has no CUDA GPU; use --device cpu")
    return torch.device(device)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads = torch.get_num_threads()
    return f"{cpu}, {threads} thread{'' if threads == 1 else 's'}"


def compare(
    models: Sequence[str | os.PathLike | nn.Module] = (),
    *,
    family: str | None = None,
    input_size: Sequence[int] | None = None,
    batches: Sequence[int] | None = None,
    device: str | None = None,
    precision: str = "fp32",
    measure: Sequence[str] = MEASURES,
    out: str | os.PathLike | None = None,
    repeats: int = 3,
    warmup: int = 1,
    max_seconds: float = 2.0,
    memory_batch: int | None = None,
    train_batch: int = 2,
    circle: str = "memory",
    progress: bool = True,
    rapl_root: str | os.PathLike = RAPL_ROOT,
) -> Comparison:
    """Measure ``models`` (zoo names, run folders, checkpoints, pattern lines, modules) or a
    ``family`` and return the :class:`Comparison`; with ``out``, also write its files there.

    ``input_size`` is (C, H, W) or (H, W) for every model (default: each model's own).
    ``batches`` are the batch sizes timed (default 1, 2, 4 on a CPU; 1 to 64 on CUDA);
    ``memory_batch`` the batch of the inference memory (default the largest timed) and
    ``train_batch`` that of the training step's memory. ``measure`` picks among time, memory
    and power. A module given is copied, never changed.
    """
    dev = _device(device)
    batches = tuple(batches or (CUDA_BATCHES if dev.type == "cuda" else CPU_BATCHES))
    measure = tuple(measure)
    _check(
        batches, precision, measure, repeats, warmup, max_seconds, memory_batch, train_batch, circle
    )
    if isinstance(models, str | os.PathLike | nn.Module):  # one model, not its characters
        models = [models]
    specs = list(models) + (family_models(family) if family else [])
    if not specs:
        raise ConvnetError("name the models to compare, or a family (e.g. --family classic)")
    meter, power = None, NOT_AVAILABLE
    if "power" in measure:
        meter, why = open_meter(str(dev), rapl_root=rapl_root)
        power = meter.source if meter is not None else f"{NOT_AVAILABLE}: {why}"
    options = {
        "device": dev,
        "dtype": DTYPES[precision],
        "measure": measure,
        "batches": batches,
        "repeats": repeats,
        "warmup": warmup,
        "max_seconds": max_seconds,
        "memory_batch": memory_batch or batches[-1],
        "train_batch": train_batch,
        "meter": meter,
    }
    started = time.perf_counter()
    results: list[ModelResult] = []
    try:
        with _Progress(progress, len(specs)) as bar:
            for spec in specs:
                results.append(_one(spec, input_size, bar, **options))
                bar.done()
                if dev.type == "cuda":  # give the model's blocks back before the next one
                    torch.cuda.empty_cache()
    finally:
        if meter is not None:
            meter.close()
    _unique_labels(results)
    result = Comparison(
        models=results,
        device=str(dev),
        device_name=_device_name(dev),
        precision=precision,
        measured=measure,
        batches=batches,
        warmup=warmup,
        repeats=repeats,
        max_seconds=max_seconds,
        power=power,
        circle=circle,
        environment={
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": torch.get_num_threads(),
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    if out is not None:
        result.write(out)
    return result


class _Progress:
    """A rich progress bar over the models, its text saying which pass is running (stderr)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total, self.n = enabled, total, 0
        self.name = ""

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("compare", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)

    def model(self, name: str) -> None:
        self.name = name
        self.say("building")

    def say(self, text: str) -> None:
        if self.enabled:
            self.bar.update(self.task, description=f"{self.name}: {text}")

    def done(self) -> None:
        if self.enabled:
            self.bar.advance(self.task)


def _one(
    spec: str | os.PathLike | nn.Module,
    input_size: Sequence[int] | None,
    bar: _Progress,
    *,
    device: torch.device,
    dtype: torch.dtype,
    measure: tuple[str, ...],
    batches: tuple[int, ...],
    repeats: int,
    warmup: int,
    max_seconds: float,
    memory_batch: int,
    train_batch: int,
    meter: Meter | None,
) -> ModelResult:
    """Build, count, estimate and measure one model (see the module docstring)."""
    from ..analysis import summary
    from ..resolve import resolve_model

    bar.model(_short(spec))
    resolved = resolve_model(copy.deepcopy(spec) if isinstance(spec, nn.Module) else spec)
    model = resolved.model
    size = _input_size(resolved, input_size, spec)
    bar.say("counting parameters and MACs")
    totals = summary(model, size, training_memory=False).totals  # traced on the meta device
    result = ModelResult(
        name=_short(spec),
        label=_label(spec, resolved),
        family="",
        input_size=size,
        params=int(totals["params"]),
        macs=int(totals["macs"]),
    )
    _accuracy(result, spec, resolved)
    model = model.to(device=device, memory_format=torch.channels_last)
    if "memory" in measure:
        bar.say(f"training memory, batch {train_batch}")
        _training_memory(result, model, size, train_batch, device, dtype)
    model = prepare(model, device, dtype)
    on_warmup = None
    if "memory" in measure:
        bar.say(f"inference memory, batch {memory_batch}")
        in_warmup = "time" in measure and memory_batch in batches and warmup > 0
        on_warmup = _inference_memory(result, model, size, memory_batch, in_warmup)
    if "time" in measure:
        result.timings = time_batches(
            model,
            size,
            batches,
            device=device,
            dtype=dtype,
            warmup=warmup,
            repeats=repeats,
            max_seconds=max_seconds,
            meter=meter,
            on_run=bar.say,
            on_warmup=on_warmup,
        )
    return result


def _inference_memory(
    result: ModelResult, model: nn.Module, size: tuple[int, ...], batch: int, in_warmup: bool
) -> Callable[[int, torch.Tensor], None] | None:
    """Estimate the inference peak at ``batch``; measure it now, or return the hook that
    measures it in the timed loop's last warm-up pass at that batch (a pass thrown away)."""
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None else torch.float32
    result.memory_batch = batch
    result.inference_estimate = _inference_estimate(model, size, batch, dtype, device)
    if not in_warmup:
        result.inference_measured = inference_peak(model, make_input(batch, size, device, dtype))
        return None

    def on_warmup(b: int, x: torch.Tensor) -> None:
        if b == batch:
            result.inference_measured = inference_peak(model, x)
        else:
            model(x)

    return on_warmup


def _short(spec: object) -> str:
    if isinstance(spec, nn.Module):
        return getattr(spec, "model_name", None) or type(spec).__name__
    text = str(spec)
    return text if len(text) <= 60 else text[:57] + "..."


def _label(spec: object, resolved: Any) -> str:
    """A short name: the zoo name, a run folder's name, a module's class."""
    if isinstance(spec, nn.Module):
        return _short(spec)
    path = Path(str(spec))
    if resolved.checkpoint is not None:
        return path.name if path.is_dir() else path.parent.name or path.stem
    return _short(spec)


def _unique_labels(results: list[ModelResult]) -> None:
    seen: dict[str, int] = {}
    for r in results:
        seen[r.label] = seen.get(r.label, 0) + 1
        if seen[r.label] > 1:
            r.label = f"{r.label} #{seen[r.label]}"


def _input_size(resolved: Any, given: Sequence[int] | None, spec: object) -> tuple[int, ...]:
    default = resolved.input_size
    if given is not None:
        given = tuple(int(v) for v in given)
        if len(given) == 2:
            depth = default[0] if default else 3
            return (depth, *given)
        return given
    if default is None:
        raise ConvnetError(f"{_short(spec)}: give the input size, e.g. --input 3x224x224")
    return tuple(default)


def _accuracy(result: ModelResult, spec: object, resolved: Any) -> None:
    """The card's family and reported accuracy; a run folder's own test accuracy."""
    from ..models import get_card, is_model

    info = resolved.checkpoint
    name = info.get("model") if info else getattr(resolved.model, "model_name", None)
    if isinstance(spec, str) and is_model(spec.strip()):
        name = spec.strip()
    card = get_card(name) if isinstance(name, str) and is_model(name) else None
    if card is not None:
        result.family = card.family
    if info is None:
        if card is not None and card.top1 is not None:
            result.top1, result.top5 = card.top1, card.top5
            result.accuracy_source = card.accuracy_source
        return
    # a run trained here: its own test accuracy, not the paper's (other data, other recipe)
    folder = Path(info["path"])
    folder = folder if folder.is_dir() else folder.parent  # a run folder, or its checkpoint
    run = _read_json(folder / "result.json")
    top1 = run.get("test_top1", run.get("final_top1"))
    if top1 is not None:
        result.own_top1 = float(top1)
        top5 = run.get("test_top5", run.get("final_top5"))
        result.own_top5 = float(top5) if top5 is not None else None
        data = info.get("data") or _read_json(folder / "config.json").get("data", "its data")
        result.own_source = f"test split of {data}, run {folder}"


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConvnetError(f"{path}: not valid JSON ({e})") from None
    return value if isinstance(value, dict) else {}


def _training_memory(
    result: ModelResult,
    model: nn.Module,
    size: tuple[int, ...],
    batch: int,
    device: torch.device,
    dtype: torch.dtype,
) -> None:
    """Estimate and measure one SGD-momentum step at ``batch`` (float32 weights, autocast)."""
    from ..analysis.memory import estimate_training_memory

    result.train_batch = batch
    est = estimate_training_memory(
        model, size, batch, optimizer="momentum", dtype=dtype, device=device
    )
    result.training_estimate = est.peak_bytes
    result.training_measured = training_peak(model, size, batch, device=device, dtype=dtype)


def _inference_estimate(
    model: nn.Module, size: tuple[int, ...], batch: int, dtype: torch.dtype, device: torch.device
) -> int:
    """The peak bytes of one forward pass at ``batch``, from ``convnet.analysis``."""
    from ..analysis.memory import estimate_inference_memory

    return estimate_inference_memory(model, size, batch, dtype=dtype, device=device).peak_bytes
