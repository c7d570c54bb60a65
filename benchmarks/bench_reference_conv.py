"""The NumPy reference convolution against torch.nn.functional.conv2d, side by side.

What it measures, per shape (CPU, float32, one process, the two engines interleaved and the
best of ``--repeat`` runs kept, so both see the same machine load):

- forward + backward time of ``convnet.reference.functional.conv2d_forward/backward``
  (im2col by stride tricks + GEMM, or Winograd F(4x4, 3x3)) and of torch's conv2d + autograd backward; the ratio
  numpy / torch (goal: at most 2x);
- the extra memory of im2col's column matrix relative to the input (the notes warn it is large),
  and what the fast path really keeps for backward: im2col's columns, or for 3x3 stride-1
  convolutions on 16+ channels Winograd's transformed tiles (36 values per 16 outputs and
  channel, about 2.25x the input);
- once, the naive loop version against the fast one on a small input (the naive one is the
  readable definition and is not meant to be fast).

Shapes: the issue's list (batch 64 unless noted): 32x32x3 -> 32 F=5 P=2; 32x32x64 -> 64 F=3;
16x16x128 -> 128 F=3; 8x8x256 -> 256 F=3; AlexNet conv1 227x227x3 -> 96 F=11 S=4 (batch 8).

Rerun: ``python benchmarks/bench_reference_conv.py`` (``--repeat 7`` for steadier numbers;
``--threads 1`` pins both libraries to one thread, steadier on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as TF

from convnet.reference import blas_threads
from convnet.reference import functional as F
from convnet.reference.im2col import im2col_extra_bytes

# (name, N, C, H, K, F, S, P)
SHAPES = [
    ("32x32x3 -> 32, F=5 P=2", 64, 3, 32, 32, 5, 1, 2),
    ("32x32x64 -> 64, F=3 P=1", 64, 64, 32, 64, 3, 1, 1),
    ("16x16x128 -> 128, F=3 P=1", 64, 128, 16, 128, 3, 1, 1),
    ("8x8x256 -> 256, F=3 P=1", 64, 256, 8, 256, 3, 1, 1),
    ("AlexNet conv1 227x227x3 -> 96, F=11 S=4 (N=8)", 8, 3, 227, 96, 11, 4, 0),
]


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "unknown BLAS"
    try:
        cfg = np.show_config(mode="dicts")
        b = cfg["Build Dependencies"]["blas"]
        blas = f"{b.get('name')} {b.get('version')}"
    except Exception:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"numpy {np.__version__} with {blas}"
    )


def best_of(fn, repeat: int) -> float:
    fn()  # warm up (allocations, oneDNN primitive creation)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_shape(n, c, h, k, f, s, p, repeat):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, h), dtype=np.float32)
    w = (rng.standard_normal((k, c, f, f), dtype=np.float32) * np.sqrt(2 / (c * f * f))).astype(
        np.float32
    )
    b = np.zeros(k, dtype=np.float32)
    out, cache = F.conv2d_forward(x, w, b, s, p)
    dout = rng.standard_normal(out.shape, dtype=np.float32)
    # what the fast path really keeps for backward: im2col's columns, or Winograd's tiles
    mode = cache.cols[0][0]
    kept = sum(a.nbytes for _, a in cache.cols) / x.nbytes

    def numpy_fb():
        o, cache = F.conv2d_forward(x, w, b, s, p)
        F.conv2d_backward(dout, cache)

    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(w).requires_grad_(True)
    bt = torch.from_numpy(b).requires_grad_(True)
    dt = torch.from_numpy(dout)

    def torch_fb():
        xt.grad = wt.grad = bt.grad = None
        TF.conv2d(xt, wt, bt, s, p).backward(dt)

    # interleave the two so a burst of load elsewhere hits both alike
    t_np, t_torch = [], []
    for _ in range(repeat):
        t_np.append(best_of(numpy_fb, 1))
        t_torch.append(best_of(torch_fb, 1))
    extra = im2col_extra_bytes(x.shape, f, s, p) / x.nbytes
    return min(t_np), min(t_torch), extra, mode, kept


def bench_naive(repeat: int) -> tuple[str, float, float]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 16, 16), dtype=np.float32)
    w = rng.standard_normal((8, 3, 5, 5), dtype=np.float32)
    b = np.zeros(8, dtype=np.float32)
    dout = rng.standard_normal((2, 8, 16, 16), dtype=np.float32)

    def run(fwd, bwd):
        def go():
            _, cache = fwd(x, w, b, 1, 2)
            bwd(dout, cache)

        return go

    naive = best_of(run(F.conv2d_forward_naive, F.conv2d_backward_naive), max(1, repeat // 2))
    fast = best_of(run(F.conv2d_forward, F.conv2d_backward), repeat)
    return "16x16x3 -> 8, F=5 P=2 (N=2)", naive, fast


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--repeat", type=int, default=5, help="runs per engine and shape; the best is kept"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for both torch and NumPy's BLAS (default: each library's own default)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with blas_threads(args.threads):
        run(args)


def run(args) -> None:
    print(f"machine: {machine()}")
    print(
        f"{'shape':<48} {'numpy ms':>9} {'torch ms':>9} {'ratio':>6}  {'im2col/input':>12}  "
        f"{'algorithm':>9} {'kept/input':>10}"
    )
    ratios = []
    for name, n, c, h, k, f, s, p in SHAPES:
        t_np, t_torch, extra, mode, kept = bench_shape(n, c, h, k, f, s, p, args.repeat)
        ratios.append(t_np / t_torch)
        goal = "ok" if t_np / t_torch <= 2 else "over 2x"
        print(
            f"{name:<48} {t_np * 1e3:>9.1f} {t_torch * 1e3:>9.1f} {t_np / t_torch:>5.2f}x  "
            f"{extra:>11.1f}x  {mode:>9} {kept:>9.2f}x  {goal}",
            flush=True,
        )
    print(
        f"worst ratio {max(ratios):.2f}x, geometric mean {np.exp(np.mean(np.log(ratios))):.2f}x (forward + backward)"
    )
    name, naive, fast = bench_naive(args.repeat)
    print(
        f"naive loops vs fast on {name}: {naive * 1e3:.0f} ms vs {fast * 1e3:.2f} ms ({naive / fast:.0f}x slower)"
    )


if __name__ == "__main__":
    main()
