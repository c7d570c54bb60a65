"""One line of the notes' pattern language -> a model -> its layer table -> a trained net.

    python examples/notation_to_training.py

Builds a small ConvNet for the bundled MNIST sample (4,000 train / 1,000 test digits) from one
line, prints the notes' per-layer table, trains it for a few epochs on the CPU (or CUDA when
present) and reports the test accuracy. Uses only the public API.
"""

from __future__ import annotations

import torch

import convnet
from convnet.notation import build, format
from convnet.train import TrainConfig, fit

LINE = "INPUT[28x28x1] -> [CONV3-16 -> RELU -> POOL2]*2 -> FC-64 -> RELU -> DROPOUT(0.25) -> FC"


def main() -> None:
    torch.manual_seed(0)  # the initial weights; fit() seeds the data order itself
    model = build(LINE, num_classes=10)  # the last FC gets the 10 classes
    print(format(model))  # the line back, every default made explicit
    print(convnet.summary(model).render("table"))
    config = TrainConfig(epochs=3, batch_size=64, lr=0.05, schedule="cosine", progress=False)
    result = fit(model, "mnist-sample", config)
    print(
        f"test top-1 after {result['epochs']} epochs: {result['test_top1']:.2f}% "
        f"(best validation epoch {result['best_epoch']}; {result['seconds']:.0f} s)"
    )


if __name__ == "__main__":
    main()
