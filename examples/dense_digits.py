"""Slide a trained LeNet-5 over a larger image in one pass (FC -> CONV), as the notes describe.

Trains LeNet-5 for 4 epochs on the bundled MNIST digits, pastes a 3 and a 7 onto a 64x96 canvas,
and asks `dense_predict` for the class scores of every 32x32 window at stride 2 (two shifted
passes merge the network's stride 4 into 2). Writes dense_3.png and dense_7.png.

Run: python examples/dense_digits.py [OUT_DIR]
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import convnet
from convnet.data import load
from convnet.surgery import dense_predict
from convnet.viz import save_heatmap

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
data = load("mnist-sample")
mean, std = data.mean[0], data.std[0]
x = F.pad(data.x_train.float().div(255), (2, 2, 2, 2))  # 28 -> 32, LeNet's input
x = (x - mean) / std
torch.manual_seed(0)
model = convnet.create_model("lenet5")
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
for _ in range(4):
    for i in torch.randperm(len(x)).split(64):
        opt.zero_grad()
        F.cross_entropy(model(x[i]), data.y_train[i]).backward()
        opt.step()
model.eval()

test = data.x_test.float().div(255)
three, seven = test[data.y_test == 3][0, 0], test[data.y_test == 7][0, 0]
canvas = torch.zeros(1, 64, 96)
canvas[0, 4:32, 6:34] = three  # top left
canvas[0, 32:60, 60:88] = seven  # bottom right
image = (canvas - mean) / std

result = dense_predict(model, image, shifts=2)  # stride 4 -> 2
print("score map", tuple(result.maps[0].scores.shape), "merged", tuple(result.merged.shape))
best = result.maps[0].probabilities().flatten(1).argmax(1)
for c in (3, 7):
    i, j = divmod(int(best[c]), result.merged.shape[2])
    print(f"class {c}: most probable in the window at ({i * 2}, {j * 2})")
    save_heatmap(result, image, out / f"dense_{c}.png", class_index=c)
