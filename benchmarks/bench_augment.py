"""Batched augmentation (convnet.data.augment) vs per-sample transforms in a torch DataLoader.

CIFAR-shaped uint8 batch 128x3x32x32: pad-4 random crop, horizontal flip, normalize to float32.
Both run in this process, one thread, alternating, median of 5 rounds of 40 batches.
Run: python benchmarks/bench_augment.py
"""

import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from convnet.data import hflip, normalize, random_crop

torch.set_num_threads(1)
N, B = 128 * 40, 128
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
x = torch.randint(
    0, 256, (N, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
)
y = torch.randint(0, 10, (N,))
m, s = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)


class PerSample(Dataset):
    """What a map-style Dataset does: one image at a time in __getitem__."""

    def __init__(self):
        self.g = torch.Generator().manual_seed(1)

    def __len__(self):
        return N

    def __getitem__(self, i):
        img = torch.nn.functional.pad(x[i], (4, 4, 4, 4))
        dy, dx = torch.randint(0, 9, (2,), generator=self.g).tolist()
        img = img[:, dy : dy + 32, dx : dx + 32]
        if torch.rand(1, generator=self.g).item() < 0.5:
            img = img.flip(-1)
        return (img.float() / 255 - m) / s, y[i]


def batched():
    g = torch.Generator().manual_seed(1)
    perm = torch.randperm(N, generator=g)
    for k in range(0, N, B):
        idx = perm[k : k + B]
        xb = hflip(random_crop(x[idx], 4, generator=g), 0.5, generator=g)
        yield normalize(xb, MEAN, STD), y[idx]


def dataloader():
    yield from DataLoader(PerSample(), batch_size=B, shuffle=True, num_workers=0)


def rate(make):
    t = time.perf_counter()
    for xb, _ in make():
        assert xb.shape == (B, 3, 32, 32) and xb.dtype == torch.float32
    return N / (time.perf_counter() - t)


rates = {"batched": [], "dataloader": []}
for _ in range(5):
    rates["batched"].append(rate(batched))
    rates["dataloader"].append(rate(dataloader))
ours, theirs = statistics.median(rates["batched"]), statistics.median(rates["dataloader"])
sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402

cpu = machine()
print(f"batched augment (convnet.data): {ours:10,.0f} img/s")
print(f"DataLoader, per-sample        : {theirs:10,.0f} img/s")
print(f"ratio: {ours / theirs:.1f}x   ({cpu}, 1 thread, torch {torch.__version__})")
