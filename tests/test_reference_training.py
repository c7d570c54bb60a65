"""Optimizers, the Solver and train_numpy: the same steps as torch.optim, and learning real digits."""

from __future__ import annotations

import copy
import importlib.resources

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.errors import TrainingError
from convnet.reference import SGD, Adam, Sequential, Solver, from_torch, softmax_cross_entropy
from convnet.reference import layers as L
from convnet.reference.solver import one_cycle
from convnet.reference.torch_bridge import train_numpy


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    ).double()


@pytest.mark.parametrize(
    "make_np,make_torch",
    [
        (
            lambda m: SGD(m, lr=0.1, momentum=0.9, weight_decay=1e-3),
            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
        ),
        (
            lambda m: SGD(m, lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True),
        ),
        (lambda m: SGD(m, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1)),
        (
            lambda m: Adam(m, lr=1e-2, weight_decay=1e-3),
            lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
        ),
    ],
)
def test_optimizer_steps_match_torch_optim(make_np, make_torch):
    model = small_model().train()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 1, 8, 8)), rng.integers(0, 5, 6)
    net = from_torch(model, x)
    opt_np, opt_t = make_np(net), make_torch(model.parameters())
    for _ in range(4):
        loss, d = softmax_cross_entropy(net.forward(x), y)
        net.backward(d)
        opt_np.step()
        opt_t.zero_grad()
        ref = nn.functional.cross_entropy(model(torch.tensor(x)), torch.tensor(y))
        ref.backward()
        opt_t.step()
        assert abs(loss - ref.item()) < 1e-10
    for name, p in model.named_parameters():
        assert np.allclose(net.params[name], p.detach().numpy(), rtol=1e-9, atol=1e-12), name


def test_one_cycle_shape():
    f = one_cycle(1000, pct=0.25, div=25, final_div=1e4)
    assert f(0) == pytest.approx(1 / 25)
    assert f(249) == pytest.approx(1.0)
    assert f(999) == pytest.approx(1 / 25 / 1e4)
    values = [f(t) for t in range(1000)]
    assert values.index(max(values)) == 249


def blobs(n: int, seed: int):
    """Four separable classes of 1x8x8 'images': a bright quadrant each."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32) * 0.5
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 0, 4 * r : 4 * r + 4, 4 * q : 4 * q + 4] += 1.5
    return x, y


def test_solver_learns_and_keeps_the_best_parameters():
    rng = np.random.default_rng(0)
    net = Sequential(
        L.Conv2d(1, 4, 3, padding=1, rng=rng),
        L.ReLU(),
        L.MaxPool2d(2),
        L.Flatten(),
        L.Linear(64, 4, rng=rng),
    )
    xtr, ytr = blobs(256, 1)
    xva, yva = blobs(128, 2)
    data = {"X_train": xtr, "y_train": ytr, "X_val": xva, "y_val": yva}
    solver = Solver(
        net,
        data,
        optim_config={"lr": 0.05, "momentum": 0.9},
        num_epochs=3,
        batch_size=32,
        progress=False,
    )
    solver.train()
    assert solver.loss_history[-1] < solver.loss_history[0]
    assert solver.best_val_acc == max(solver.val_acc_history) > 0.9
    # the model holds the best epoch's parameters
    assert solver.check_accuracy(xva, yva) == pytest.approx(solver.best_val_acc)


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_solver_rejects_divergence_and_unknown_names():
    net = Sequential(L.Flatten(), L.Linear(64, 4, rng=np.random.default_rng(0)))
    x, y = blobs(64, 0)
    x[0, 0, 0, 0] = np.inf
    data = {"X_train": x, "y_train": y, "X_val": x, "y_val": y}
    with pytest.raises(TrainingError, match="loss became"):
        Solver(net, data, batch_size=64, progress=False).step(x, y)
    with pytest.raises(TrainingError, match="unknown loss"):
        Solver(net, data, loss="hinge", progress=False)


def test_train_numpy_on_real_mnist_digits():
    """128 steps of LeNet-5 in NumPy alone on the bundled MNIST sample."""
    from convnet.models import create_model

    path = importlib.resources.files("convnet.data") / "assets" / "mnist_sample.npz"
    with importlib.resources.as_file(path) as p, np.load(p) as d:
        # the file is sorted by class: take a seeded random subset of each split
        tr = np.random.default_rng(0).permutation(len(d["y_train"]))[:2048]
        te = np.arange(0, len(d["y_test"]), 2)
        xtr, ytr, xte, yte = d["x_train"][tr], d["y_train"][tr], d["x_test"][te], d["y_test"][te]

    def prep(x):  # 28x28 -> 32x32 zero padding, as LeNet-5's input; normalized
        x = np.pad(x.astype(np.float32) / 255.0, ((0, 0), (2, 2), (2, 2)))[:, None]
        return (x - 0.1307) / 0.3081

    torch.manual_seed(0)
    model = create_model("lenet5")
    before = copy.deepcopy(model.state_dict())
    result = train_numpy(
        model,
        prep(xtr),
        ytr.astype(np.int64),
        prep(xte),
        yte.astype(np.int64),
        epochs=2,
        batch_size=32,
        lr=0.05,
        seed=0,
        progress=False,
    )
    assert set(result) >= {"best_top1", "final_top1", "epochs", "seconds", "images_per_second"}
    assert result["epochs"] == 2 and result["seconds"] > 0 and result["images_per_second"] > 0
    assert result["loss"][-1] < result["loss"][0]
    assert result["best_top1"] > 0.85  # 2 one-cycle epochs on 2,048 digits (128 steps)
    # the trained weights were copied back into the torch model, and it agrees
    assert not torch.equal(before["features.0.weight"], model.features[0].weight)
    with torch.no_grad():
        acc = (model(torch.from_numpy(prep(xte))).argmax(1).numpy() == yte).mean()
    assert acc == pytest.approx(result["best_top1"])


@given(
    n=st.integers(1, 4),
    c=st.integers(1, 3),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    pad=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=30, deadline=None)
def test_random_shift_is_pad_then_crop(n, c, h, w, pad, seed):
    from convnet.reference.solver import random_shift

    x = np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)
    fill = np.arange(1, c + 1, dtype=np.float32) * -7
    got = random_shift(pad, fill)(x, np.random.default_rng(seed))
    if pad == 0:
        assert got is x
        return
    dy, dx = np.random.default_rng(seed).integers(0, 2 * pad + 1, size=(2, n))
    for i in range(n):
        for ch in range(c):
            padded = np.pad(x[i, ch], pad, constant_values=fill[ch])
            assert np.array_equal(got[i, ch], padded[dy[i] : dy[i] + h, dx[i] : dx[i] + w])
