"""Train LeNet-5 on the bundled MNIST sample with the notes' SGD + momentum recipe, then reload
the best checkpoint and classify one held-out digit of each class. Public API only.

    python examples/train_lenet.py
"""

import shutil

import torch

from convnet.data import load
from convnet.train import fit, load_checkpoint, recipe

shutil.rmtree(
    "runs/example-lenet5", ignore_errors=True
)  # a run folder is never overwritten silently
data = load("mnist-sample")  # 4,000 / 1,000 real MNIST digits, uint8 (N, 1, 28, 28)
# fit() holds out 10% of each training class for validation (--val-split): best.pt is the
# epoch with the best validation top-1, and the 1,000 test digits are scored once, at the end
result = fit("lenet5", data, recipe("lenet", out="runs/example-lenet5", seed=0))
print(
    f"validation top-1 {result['val_top1']:.2f}% (epoch {result['best_epoch']}, best.pt)  "
    f"test top-1 {result['test_top1']:.2f}%  in {result['seconds']:.1f} s"
)

model, info = load_checkpoint("runs/example-lenet5/best.pt")  # eval mode, weights_only loading
idx = torch.stack([(data.y_test == k).nonzero()[0, 0] for k in range(10)])  # one digit per class
x = torch.nn.functional.pad(data.x_test[idx].float() / 255, (2, 2, 2, 2))  # 28x28 -> 32x32
x = (x - info["mean"][0]) / info["std"][0]
with torch.no_grad():
    pred = model(x).argmax(1)
print("predicted:", pred.tolist())
print("true:     ", data.y_test[idx].tolist())
