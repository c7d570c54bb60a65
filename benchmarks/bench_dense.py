"""Dense evaluation vs 36 crops: the notes' 384x384 image on a 224x224 network of stride 32.

The converted network scores all 6x6 = 36 windows in one forward pass over the 384x384 image;
the original network needs the 36 crops of 224x224 at stride 32, which we run both as one batch
of 36 (the fair comparison: same kernels, full batch) and one crop at a time. Work is counted
in MACs by ``convnet.summary`` on the meta device; time is the median of ``--repeats`` runs
after one warm-up, all in this process on the same device, both sides in the same memory
format (channels-last by default: oneDNN and cuDNN prefer it).

Run:  python benchmarks/bench_dense.py [--models vgg16 alexnet] [--repeats 3] [--device cpu|cuda] [--contiguous]
Prints one line per model with the MAC ratio and the time ratios, then the machine.
Goal (issue 7): the dense pass takes at least 10x less time than the 36 crops for VGG-16.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import convnet
from convnet.surgery import fc_to_conv

WINDOW, IMAGE, STRIDE = 224, 384, 32


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench(name: str, device: torch.device, repeats: int, layout: torch.memory_format) -> dict:
    torch.manual_seed(0)
    model = convnet.create_model(name).to(device).eval()
    converted = fc_to_conv(model, WINDOW).eval().to(memory_format=layout)
    model = model.to(memory_format=layout)
    image = torch.randn(1, 3, IMAGE, IMAGE, device=device).contiguous(memory_format=layout)
    n = (IMAGE - WINDOW) // STRIDE + 1  # 6
    crops = torch.cat(
        [
            image[:, :, i * STRIDE : i * STRIDE + WINDOW, j * STRIDE : j * STRIDE + WINDOW]
            for i in range(n)
            for j in range(n)
        ]
    ).contiguous(memory_format=layout)
    macs_crop = convnet.summary(name, input_size=(3, WINDOW, WINDOW)).totals["macs"]
    macs_dense = convnet.summary(
        fc_to_conv(_meta(name), WINDOW), input_size=(3, IMAGE, IMAGE)
    ).totals["macs"]
    with torch.inference_mode():
        dense = converted(image)[0]  # (1000, 6, 6)
        t_dense = _time(lambda: converted(image), device, repeats)
        t_batch = _time(lambda: model(crops), device, repeats)
        t_loop = _time(lambda: [model(crops[k : k + 1]) for k in range(n * n)], device, repeats)
    return {
        "model": name,
        "map": tuple(dense.shape),
        "macs_dense": macs_dense,
        "macs_crops": n * n * macs_crop,
        "t_dense": t_dense,
        "t_batch": t_batch,
        "t_loop": t_loop,
    }


def _meta(name: str):
    with torch.device("meta"):
        return convnet.create_model(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vgg16", "alexnet"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--contiguous", action="store_true", help="NCHW for both sides (default: channels-last)"
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    layout = torch.contiguous_format if args.contiguous else torch.channels_last
    print(
        f"dense pass on {IMAGE}x{IMAGE} vs 36 crops of {WINDOW}x{WINDOW} at stride {STRIDE} "
        f"(float32, {device}, {'NCHW' if args.contiguous else 'channels-last'} for both)"
    )
    print(
        f"{'model':8} {'map':>10} {'GMACs dense':>12} {'GMACs crops':>12} {'MAC ratio':>10} "
        f"{'dense s':>9} {'36-batch s':>11} {'ratio':>7} {'1-by-1 s':>9} {'ratio':>7}"
    )
    for name in args.models:
        r = bench(name, device, args.repeats, layout)
        print(
            f"{r['model']:8} {'x'.join(map(str, r['map'])):>10} {r['macs_dense'] / 1e9:12.2f} "
            f"{r['macs_crops'] / 1e9:12.2f} {r['macs_crops'] / r['macs_dense']:9.1f}x "
            f"{r['t_dense']:9.3f} {r['t_batch']:11.3f} {r['t_batch'] / r['t_dense']:6.1f}x "
            f"{r['t_loop']:9.3f} {r['t_loop'] / r['t_dense']:6.1f}x",
            flush=True,
        )
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(
        f"machine: {_cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads){gpu}; median of {args.repeats} after 1 warm-up"
    )


if __name__ == "__main__":
    main()
