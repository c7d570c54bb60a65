"""Training- and inference-memory estimates vs the peaks measured on this machine's CPU.

For each (model, input, batch) the estimate comes from ``estimate_training_memory`` (fake
tensors, nothing allocated). The measurement runs real SGD+momentum steps in a fresh Python
process, independent of the estimator:

- the process warms up with one full step (kernels loaded, oneDNN primitives cached, momentum
  buffers allocated), then records its resident set ``VmRSS``, resets the kernel's high-water
  mark (``echo 5 > /proc/self/clear_refs``), runs one more step and reads ``VmHWM``.
  ``growth = VmHWM - VmRSS`` is what the step added on top of what stays allocated;
- glibc is told to serve every allocation of 64 KiB or more with its own mmap and to return it on
  free (``MALLOC_MMAP_THRESHOLD_=65536``: a fixed threshold also stops glibc from raising it
  dynamically), so the resident set follows live tensors instead of the heap's high-water mark;
- what stays allocated between steps (parameters, buffers, momentum, batch and labels) is summed
  from the real tensors' ``nbytes``;
- ``measured = persistent + growth`` is compared with the estimate's ``peak_bytes``;
- a second number, ``allocator``, replays the c10 CPU allocator's own allocation records
  (``torch.profiler`` with ``profile_memory=True``) over one more step: its peak excludes glibc
  and page rounding, so the gap between the two columns is the runtime's overhead.

Inference (``--mode inference``, or ``both``, the default): the estimate is
``estimate_inference_memory`` (one forward pass without gradients: the notes' test time, where
only the current activations and the parameters are kept); the measurement is one real
``torch.no_grad`` forward pass of the model in eval mode, after a warm-up pass, measured the same
two ways (``VmHWM - VmRSS`` over the pass, and the c10 allocator's records); what stays
allocated is the parameters, buffers and the batch.

Run: ``python benchmarks/bench_memory.py``: 3 minutes of CPU time on 2 AVX-512 cores for the
training cases, about 1 more for inference (wall time grows with the machine's load).
``--quick`` runs two small cases of each, ``--full`` the ImageNet models at 224x224 (about 4
CPU-minutes for training, 2 for inference).

Result on AMD EPYC, 2 cores, torch 2.13.0+cpu: every one of 14 cases (7 models x 2 batches,
float32 and bf16 autocast) within 3.4% of the measured peak; the c10 allocator's records agree
with the estimate within 2.2%.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

# (model, C x H x W, batch sizes, dtype); sizes kept small enough for ~5 minutes on 2 busy cores
CASES = [
    ("lenet5", (1, 32, 32), (64, 256), "float32"),
    ("alexnet", (3, 224, 224), (4, 8), "float32"),
    ("vgg16", (3, 112, 112), (2, 4), "float32"),
    ("resnet18", (3, 112, 112), (4, 8), "float32"),
    ("densenet121", (3, 64, 64), (4, 8), "float32"),
    ("resnet20", (3, 32, 32), (32, 64), "float32"),
    ("resnet20", (3, 32, 32), (8, 16), "bfloat16"),  # CPU bf16 without native support: slow
]
FULL = [  # --full: the canonical ImageNet inputs (about 12 minutes here)
    ("lenet5", (1, 32, 32), (64, 256), "float32"),
    ("alexnet", (3, 224, 224), (4, 16), "float32"),
    ("vgg16", (3, 224, 224), (1, 2), "float32"),
    ("resnet18", (3, 224, 224), (4, 8), "float32"),
    ("densenet121", (3, 224, 224), (2, 4), "float32"),
    ("resnet20", (3, 32, 32), (64, 128), "float32"),
]
QUICK = [
    ("lenet5", (1, 32, 32), (64, 256), "float32"),
    ("resnet20", (3, 32, 32), (16,), "bfloat16"),
]
# inference: (model, C x H x W, batch sizes); larger batches than training, as serving uses
INFERENCE_CASES = [
    ("lenet5", (1, 32, 32), (256, 1024)),
    ("alexnet", (3, 224, 224), (8, 32)),
    ("vgg16", (3, 112, 112), (4, 16)),
    ("resnet18", (3, 112, 112), (8, 32)),
    ("googlenet", (3, 112, 112), (8, 32)),
    ("densenet121", (3, 64, 64), (8, 32)),
    ("resnet20", (3, 32, 32), (64, 256)),
]
INFERENCE_FULL = [
    ("alexnet", (3, 224, 224), (16, 64)),
    ("vgg16", (3, 224, 224), (4, 16)),
    ("resnet18", (3, 224, 224), (16, 64)),
    ("resnet50", (3, 224, 224), (8, 32)),
    ("googlenet", (3, 224, 224), (16, 64)),
    ("densenet121", (3, 224, 224), (8, 32)),
    ("inception_v3", (3, 299, 299), (4, 16)),
]
INFERENCE_QUICK = [("lenet5", (1, 32, 32), (256,)), ("resnet20", (3, 32, 32), (64,))]
MIB = 2**20


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} is not in /proc/self/status")


def worker(name: str, input_size: tuple[int, ...], batch: int, dtype: str) -> dict:
    """Runs in a fresh process: real training steps, peak memory above the steady state."""
    import gc

    import torch
    import torch.nn.functional as F

    from convnet.models import create_model

    torch.manual_seed(0)
    model = create_model(name, in_chans=input_size[0]).train()
    x = torch.randn(batch, *input_size)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    half = dtype != "float32"
    autocast = torch.autocast("cpu", dtype=getattr(torch, dtype), enabled=half)

    def step() -> None:
        with autocast:  # mixed precision: float32 weights, bf16 activations
            out = model(x)
            loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up: kernels loaded, oneDNN primitives cached, momentum buffers allocated
    gc.collect()
    tensors = [*model.parameters(), *model.buffers(), x, y]
    tensors += [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    persistent = sum(t.untyped_storage().nbytes() for t in tensors)
    return _measure(step, persistent)


def _measure(run, persistent: int) -> dict:
    """Time one more ``run()`` and the growth of the resident set over it (VmHWM reset first),
    then the allocator's peak above the start, replayed from the profiler's memory records."""
    from torch.profiler import ProfilerActivity, profile

    rss = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    t0 = time.perf_counter()
    run()
    seconds = time.perf_counter() - t0
    growth = (_status_kib("VmHWM") - rss) * 1024
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    live = peak = 0
    records = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    ]
    for _, nbytes in sorted(records):
        live += nbytes
        peak = max(peak, live)
    return {"persistent": persistent, "growth": growth, "allocator_growth": peak, "step_s": seconds}


def inference_worker(name: str, input_size: tuple[int, ...], batch: int) -> dict:
    """Runs in a fresh process: a no-grad forward pass, peak memory above what stays allocated."""
    import gc

    import torch

    from convnet.models import create_model

    torch.manual_seed(0)
    model = create_model(name, in_chans=input_size[0]).eval()
    x = torch.randn(batch, *input_size)

    def forward() -> None:
        with torch.no_grad():
            out = model(x)
            del out

    forward()  # warm-up: kernels loaded, oneDNN primitives cached
    gc.collect()
    persistent = sum(
        t.untyped_storage().nbytes() for t in [*model.parameters(), *model.buffers(), x]
    )
    return _measure(forward, persistent)


def measure(name: str, input_size: tuple[int, ...], batch: int, dtype: str) -> dict:
    """The worker's measurement in a fresh process; ``dtype`` "inference" measures a forward pass."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    arg = json.dumps([name, list(input_size), batch, dtype])
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", arg],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker for {name} batch {batch} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads, "
        f"{torch.backends.cpu.get_cpu_capability()}), Python {platform.python_version()}"
    )


def training_table(console, cases) -> list[float]:
    """Estimate vs measured training steps; prints the table, returns |error| per case (%)."""
    from rich.table import Table

    from convnet.analysis.memory import estimate_training_memory
    from convnet.models import create_model, list_models

    console.print(
        "SGD momentum 0.9, cross-entropy; bfloat16 = autocast; MALLOC_MMAP_THRESHOLD_=65536"
    )
    table = Table(title="training memory: estimate vs measured (MiB)")
    for col in (
        "model",
        "input",
        "dtype",
        "batch",
        "estimate",
        "measured",
        "error",
        "allocator",
        "error",
        "est. step",
        "meas. step",
        "error",
    ):
        table.add_column(col, justify="right")
    known = set(list_models())
    errors = []
    for name, input_size, batches, dtype in cases:
        if name not in known:
            console.print(f"[yellow]skipped {name}: not in the registry yet[/]")
            continue
        model = create_model(name, in_chans=input_size[0])
        for batch in batches:
            est = estimate_training_memory(model, input_size, batch, dtype=dtype)
            got = measure(name, input_size, batch, dtype)
            measured = got["persistent"] + got["growth"]
            allocator = got["persistent"] + got["allocator_growth"]
            est_step = est.peak_bytes - est.persistent_bytes
            err = 100 * (est.peak_bytes - measured) / measured
            errors.append(abs(err))
            table.add_row(
                name,
                "x".join(map(str, input_size)),
                dtype,
                str(batch),
                f"{est.peak_bytes / MIB:.1f}",
                f"{measured / MIB:.1f}",
                f"{err:+.1f}%",
                f"{allocator / MIB:.1f}",
                f"{100 * (est.peak_bytes - allocator) / allocator:+.1f}%",
                f"{est_step / MIB:.1f}",
                f"{got['growth'] / MIB:.1f}",
                f"{100 * (est_step - got['growth']) / got['growth']:+.1f}%",
            )
            console.print(f"  {name} {dtype} batch {batch}: {got['step_s']:.1f} s per step")
    console.print(table)
    return errors


def inference_table(console, cases) -> list[float]:
    """Estimate vs measured no-grad forward passes; prints the table, returns |error| (%)."""
    from rich.table import Table

    from convnet.analysis.memory import estimate_inference_memory
    from convnet.models import create_model, list_models

    console.print("eval mode, torch.no_grad, float32; MALLOC_MMAP_THRESHOLD_=65536")
    table = Table(title="inference memory: estimate vs measured (MiB)")
    for col in (
        "model",
        "input",
        "batch",
        "estimate",
        "measured",
        "error",
        "allocator",
        "error",
        "weights+batch",
        "est. act.",
        "meas. act.",
        "error",
    ):
        table.add_column(col, justify="right")
    known = set(list_models())
    errors = []
    for name, input_size, batches in cases:
        if name not in known:
            console.print(f"[yellow]skipped {name}: not in the registry yet[/]")
            continue
        model = create_model(name, in_chans=input_size[0])
        for batch in batches:
            est = estimate_inference_memory(model, input_size, batch)
            got = measure(name, input_size, batch, "inference")
            measured = got["persistent"] + got["growth"]
            allocator = got["persistent"] + got["allocator_growth"]
            est_act = est.peak_bytes - got["persistent"]
            err = 100 * (est.peak_bytes - measured) / measured
            errors.append(abs(err))
            table.add_row(
                name,
                "x".join(map(str, input_size)),
                str(batch),
                f"{est.peak_bytes / MIB:.1f}",
                f"{measured / MIB:.1f}",
                f"{err:+.1f}%",
                f"{allocator / MIB:.1f}",
                f"{100 * (est.peak_bytes - allocator) / allocator:+.1f}%",
                f"{got['persistent'] / MIB:.1f}",
                f"{est_act / MIB:.1f}",
                f"{got['growth'] / MIB:.1f}",
                f"{100 * (est_act - got['growth']) / max(got['growth'], 1):+.1f}%",
            )
            console.print(f"  {name} batch {batch}: {got['step_s']:.2f} s per forward pass")
    console.print(table)
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="only the two smallest cases")
    parser.add_argument("--full", action="store_true", help="ImageNet models at 224x224")
    parser.add_argument(
        "--mode",
        choices=("training", "inference", "both"),
        default="both",
        help="which estimate to check (default: both)",
    )
    args = parser.parse_args()
    if args.worker:
        name, input_size, batch, dtype = json.loads(args.worker)
        if dtype == "inference":
            print(json.dumps(inference_worker(name, tuple(input_size), batch)))
        else:
            print(json.dumps(worker(name, tuple(input_size), batch, dtype)))
        return 0

    from rich.console import Console

    console = Console(width=150)
    console.print(f"machine: {machine()}")
    start = time.perf_counter()
    pick = 0 if args.quick else 2 if args.full else 1
    for mode, runs in (("training", training_table), ("inference", inference_table)):
        if args.mode not in (mode, "both"):
            continue
        cases = {
            "training": (QUICK, CASES, FULL),
            "inference": (INFERENCE_QUICK, INFERENCE_CASES, INFERENCE_FULL),
        }[mode][pick]
        errors = runs(console, cases)
        console.print(
            f"{mode}: max |error| of the total peak: {max(errors):.1f}% over {len(errors)} cases "
            "(target 10%)"
        )
    console.print(f"wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
