"""Training throughput: convnet's trainer vs a plain PyTorch loop, side by side in one process.

Model: CIFAR ResNet-20 (the zoo's ``resnet20``), batch 128, synthetic uint8 data of CIFAR's shape
(3x32x32, 10 classes), 4-pixel-pad random crops and horizontal flips in both.

- plain: fp32, NCHW, a ``torch.utils.data.DataLoader`` over a Dataset whose ``__getitem__`` pads,
  crops, flips and normalizes one image at a time (what a torchvision-transforms loop does).
- convnet: ``convnet.train.fit`` with the ``cifar-resnet`` recipe (bf16 autocast, channels-last,
  batched augmentation on the device, the in-memory loader); images/s of its last epoch (the first
  includes oneDNN's kernel creation).

Both count images per second of training steps (data, forward, backward, update), no evaluation.
It also measures the machine's bf16 matrix-multiply peak (a 2048^3 GEMM) in the same run and
reports the share of it the trainer reaches, counting FLOPs of one training step with torch's
FlopCounterMode (forward + backward).

Rerun: ``python benchmarks/bench_train.py [--images 2560] [--device auto] [--model resnet20]
[--size 32]`` (``--model resnet18 --size 224``: the ImageNet ResNet-18 at 224x224, 4-pixel
shifts as above).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import torch
import torch.nn.functional as F


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class PerSample(torch.utils.data.Dataset):
    """Per-image transforms in __getitem__: pad 4, random crop back to the image's size, random
    flip, normalize."""

    def __init__(self, x, y, mean, std):
        self.x, self.y, self.size = x, y, x.shape[-1]
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        img = F.pad(self.x[i].float() / 255.0, (4, 4, 4, 4))
        dy, dx = torch.randint(0, 9, (2,)).tolist()
        img = img[:, dy : dy + self.size, dx : dx + self.size]
        if torch.rand(()) < 0.5:
            img = img.flip(-1)
        return (img - self.mean) / self.std, self.y[i]


def plain_loop(data, device, batch: int, name: str, epochs: int = 2) -> float:
    from convnet.models import create_model

    torch.manual_seed(0)
    model = create_model(name, num_classes=10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    ds = PerSample(data.x_train, data.y_train, data.mean, data.std)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True)
    rate = 0.0
    for _ in range(epochs):  # the last epoch counts, as for the trainer
        t0, n = time.perf_counter(), 0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(yb)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = n / (time.perf_counter() - t0)
    return rate


def ours(data, device, batch: int, name: str) -> float:
    from convnet.train import fit, recipe

    with tempfile.TemporaryDirectory() as out:
        cfg = recipe(
            "cifar-resnet",
            epochs=2,
            batch_size=batch,
            out=out,
            progress=False,
            device=str(device),
            eval_every=100,
            val_split=0,  # train on every image, as the plain loop does
        )
        fit(name, data, cfg)
        records = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    return records[-1]["images_per_second"]


def flops_per_image(device, batch: int, name: str, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from convnet.models import create_model

    model = create_model(name, num_classes=10).to(device)
    x = torch.randn(batch, 3, size, size, device=device)
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), torch.zeros(batch, dtype=torch.long, device=device)).backward()
    return fc.get_total_flops() / batch


def bf16_peak(device, n: int = 2048, seconds: float = 2.0) -> float:
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
        if device.type == "cuda" and reps % 10 == 0:
            torch.cuda.synchronize()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2560, help="synthetic training images per epoch")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    ap.add_argument("--model", default="resnet20", help="zoo name (default: resnet20)")
    ap.add_argument("--size", type=int, default=32, help="image side in pixels (default: 32)")
    args = ap.parse_args()
    from convnet.data import Dataset

    device = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if args.device == "auto"
        else torch.device(args.device)
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randint(
        0, 256, (args.images, 3, args.size, args.size), dtype=torch.uint8, generator=g
    )
    y = torch.randint(0, 10, (args.images,), generator=g)
    data = Dataset(
        "synthetic-cifar", x, y, x[:256].clone(), y[:256].clone(), [str(i) for i in range(10)]
    )

    what = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()}, {os.cpu_count()} cores"
    )
    print(f"machine: {what}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    print(
        f"{args.model}, batch {args.batch}, {args.images} synthetic 3x{args.size}x{args.size} "
        "images per epoch, last of 2 epochs"
    )
    plain = plain_loop(data, device, args.batch, args.model)
    print(f"plain loop (fp32, NCHW, DataLoader + per-sample transforms): {plain:8.0f} img/s")
    mine = ours(data, device, args.batch, args.model)
    print(f"convnet fit (cifar-resnet recipe: bf16, channels-last, batched aug): {mine:8.0f} img/s")
    print(f"ratio: {mine / plain:.2f}x")
    n = 8192 if device.type == "cuda" else 2048  # a GPU needs a larger product to reach its peak
    peak = bf16_peak(device, n)
    fpi = flops_per_image(device, args.batch, args.model, args.size)
    print(f"bf16 matmul peak ({n}^3 GEMM): {peak / 1e12:.2f} TFLOP/s")
    print(f"training FLOPs per image (forward + backward): {fpi / 1e6:.1f} MFLOP")
    print(
        f"trainer: {mine * fpi / 1e12:.3f} TFLOP/s = {100 * mine * fpi / peak:.1f}% of the bf16 peak"
    )


if __name__ == "__main__":
    main()
