"""Summary on the meta device vs a summary from a real forward pass at batch 1 (torchinfo's way).

Both build the same per-layer table (output shapes, parameters) for the same model in the same
process; the real-forward way needs real weights and computes every activation, the meta way
allocates nothing. Two comparisons per model:
  from name:   create the model + summarize (what `convnet summary NAME` does)
  given model: a model already built with real weights, summarize only

Where the torchinfo package is installed (``pip install torchinfo``; not a dependency), the real
``torchinfo.summary`` is timed beside them too, from name and given the model.

Run: python benchmarks/bench_summary.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402

import convnet  # noqa: E402
from convnet.analysis import summary  # noqa: E402
from convnet.resolve import resolve_model  # noqa: E402


def forward_summary(model: nn.Module, input_size: tuple[int, ...]) -> list[tuple[str, tuple, int]]:
    """The torchinfo approach: hooks on the leaves, one real forward at batch 1."""
    rows: list[tuple[str, tuple, int]] = []
    handles = []
    for name, m in model.named_modules():
        if not any(True for _ in m.children()):

            def hook(mod, args, out, name=name):
                rows.append(
                    (name, tuple(out.shape), sum(p.numel() for p in mod.parameters(recurse=False)))
                )

            handles.append(m.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, *input_size))
    for h in handles:
        h.remove()
    return rows


def timeit(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


try:
    import torchinfo
except ImportError:
    torchinfo = None


def _torchinfo(name: str, real: nn.Module, size, case: str) -> None:
    model = convnet.create_model(name) if case == "from name" else real
    torchinfo.summary(model, input_size=(1, *size), verbose=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--models",
        nargs="*",
        default=["vgg16", "resnet50" if "resnet50" in convnet.list_models() else "alexnet"],
    )
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"{'model':<10} {'case':<12} {'meta (s)':>9} {'forward (s)':>12} {'ratio':>7}")
    for name in args.models:
        size = convnet.models.get_card(name).input_size

        def meta_from_name(name=name, size=size):
            summary(resolve_model(name, meta=True).model, size, training_memory=False)

        def forward_from_name(name=name, size=size):
            forward_summary(convnet.create_model(name), size)

        real = convnet.create_model(name)

        def meta_given(real=real, size=size):
            summary(real, size, training_memory=False)

        def forward_given(real=real, size=size):
            forward_summary(real, size)

        meta_from_name()  # warm-up: imports, first-call caches
        forward_summary(real, size)
        cases = {
            "from name": (meta_from_name, forward_from_name),
            "given model": (meta_given, forward_given),
        }
        for case, (a, b) in cases.items():
            ta, tb = timeit(a, args.repeat), timeit(b, args.repeat)
            line = f"{name:<10} {case:<12} {ta:>9.3f} {tb:>12.3f} {tb / ta:>6.1f}x"
            if torchinfo is not None:
                tt = timeit(partial(_torchinfo, name, real, size, case), args.repeat)
                line += f"   torchinfo {tt:.3f} s ({tt / ta:.1f}x)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
