"""Training- and inference-memory estimates vs the CUDA caching allocator's measured peak.

The CPU benchmark (``bench_memory.py``) reads the resident set; on a GPU the allocator itself
keeps the count. For each (model, input, batch, precision):

- the estimate is ``estimate_training_memory(..., device="cuda")`` (or
  ``estimate_inference_memory``): fake CUDA tensors, nothing allocated on the GPU;
- the measurement runs the real thing on the GPU: one warm-up SGD+momentum step (kernels chosen,
  momentum buffers allocated), then ``torch.cuda.reset_peak_memory_stats()``, one more step and
  ``torch.cuda.max_memory_allocated()``: every byte the process holds on the device at its peak
  (parameters, gradients, momentum, the batch, activations, cuDNN's workspaces), at the
  allocator's 512-byte granularity. Inference: one ``torch.no_grad`` forward pass in eval mode.

Run (a CUDA GPU needed): ``python benchmarks/bench_memory_cuda.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

MIB = 2**20
# (model, C x H x W, batch sizes, autocast dtype or None)
TRAINING = [
    ("lenet5", (1, 32, 32), (256, 4096), None),
    ("alexnet", (3, 224, 224), (64, 256), None),
    ("vgg16", (3, 224, 224), (16, 64), None),
    ("resnet18", (3, 224, 224), (64, 256), None),
    ("resnet50", (3, 224, 224), (32, 128), None),
    ("googlenet", (3, 224, 224), (64,), None),
    ("densenet121", (3, 224, 224), (32, 64), None),
    ("inception_v3", (3, 299, 299), (32,), None),
    ("resnet20", (3, 32, 32), (128, 1024), None),
    ("resnet20", (3, 32, 32), (128, 1024), "bfloat16"),
    ("resnet50", (3, 224, 224), (64,), "bfloat16"),
]
INFERENCE = [
    ("alexnet", (3, 224, 224), (64, 256)),
    ("vgg16", (3, 224, 224), (16, 64)),
    ("resnet50", (3, 224, 224), (32, 128)),
    ("densenet121", (3, 224, 224), (32, 128)),
    ("inception_v3", (3, 299, 299), (32,)),
]
QUICK_TRAINING = [("lenet5", (1, 32, 32), (256,), None), ("resnet18", (3, 224, 224), (32,), None)]
QUICK_INFERENCE = [("resnet18", (3, 224, 224), (32,))]


def _peak(run) -> int:
    """The allocator's peak during ``run()``: every byte the process holds on the device."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    run()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def training_peak(model, x, y, dtype) -> int:
    import torch.nn.functional as F

    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    autocast = torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None)

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    return _peak(step)


def inference_peak(model, x) -> int:
    def forward() -> None:
        with torch.no_grad():
            model(x)

    forward()
    return _peak(forward)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two small cases of each (default: all)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_memory_cuda: no CUDA device here; run bench_memory.py for the CPU")
        return 2
    from convnet.analysis.memory import estimate_inference_memory, estimate_training_memory
    from convnet.models import create_model

    start = time.perf_counter()
    print(f"machine: {torch.cuda.get_device_name()}; torch {torch.__version__}")
    errors: dict[str, list[float]] = {"training": [], "inference": []}
    header = "| mode | model | input | batch | precision | estimate MiB | measured MiB | error |"
    print(header + "\n" + "|---" * 8 + "|")
    cases = [("training", *c) for c in (QUICK_TRAINING if args.quick else TRAINING)]
    cases += [("inference", *c, None) for c in (QUICK_INFERENCE if args.quick else INFERENCE)]
    for mode, name, size, batches, dtype in cases:
        for batch in batches:
            torch.manual_seed(0)
            model = create_model(name, in_chans=size[0])
            precision = "fp32" if dtype is None else f"{dtype} autocast"
            if mode == "training":
                est = estimate_training_memory(
                    model, size, batch, dtype=getattr(torch, dtype or "float32"), device="cuda"
                ).peak_bytes
                model = model.cuda().train()
                x = torch.randn(batch, *size, device="cuda")
                y = torch.randint(0, 10, (batch,), device="cuda")
                peak = training_peak(model, x, y, getattr(torch, dtype) if dtype else None)
            else:
                est = estimate_inference_memory(model, size, batch, device="cuda").peak_bytes
                model = model.cuda().eval()
                peak = inference_peak(model, torch.randn(batch, *size, device="cuda"))
            err = 100 * (est - peak) / peak
            errors[mode].append(abs(err))
            shape = "x".join(map(str, size))
            print(
                f"| {mode} | {name} | {shape} | {batch} | {precision} | {est / MIB:,.1f} | "
                f"{peak / MIB:,.1f} | {err:+.1f}% |",
                flush=True,
            )
            del model
            torch.cuda.empty_cache()
    for mode, errs in errors.items():
        if errs:
            print(f"{mode}: max |error| {max(errs):.1f}% over {len(errs)} cases (target 10%)")
    print(f"wall time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
