"""CNN codes and the linear classifier on them: the codes against the network's own layers run
by hand, the losses against their formulas, the fit against scikit-learn and an independent
optimizer, and the notes' claim on the bundled sample: a linear classifier on a trained
LeNet-5's 84-D layer scores within a point of the network itself."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.errors import ConvnetError, DataError
from convnet.features import (
    LOSSES,
    REG_GRID,
    Codes,
    features,
    linear_loss,
    train_linear,
)


@pytest.fixture(autouse=True)
def one_thread():
    # every tensor here is tiny: one thread spends no time handing work to a pool
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    """LeNet-5 trained for 3 epochs on the bundled MNIST sample (a few seconds)."""
    from convnet.train import fit, recipe

    out = tmp_path_factory.mktemp("lenet") / "run"
    torch.set_num_threads(1)
    cfg = recipe("lenet", epochs=3, out=str(out), progress=False, num_threads=1, seed=0)
    result = fit("lenet5", "mnist-sample", cfg)
    return out, result


def test_linear_on_lenet5_codes_is_within_a_point_of_the_net(lenet_run, cli, tmp_path):
    """The notes' transfer-learning baseline, end to end through the CLI: the 84-D F6 codes
    of the network's own training images, a softmax classifier chosen on its validation
    images, and the test images scored once."""
    run, result = lenet_run
    codes_path = tmp_path / "codes.safetensors"
    code, out, err = cli("features", run, "--layer", "classifier.4", "-o", codes_path, "--quiet")
    assert code == 0, err
    assert "3,600 train / 400 val / 1,000 test" in out
    code, out, err = cli(
        "linear",
        codes_path,
        "--reg",
        "1e-3",
        "1e-2",
        "1e-1",
        "--max-iter",
        "100",
        "--format",
        "json",
    )
    assert code == 0, err
    r = json.loads(out)
    assert r["dim"] == 84 and r["counts"] == {"train": 3600, "val": 400, "test": 1000}
    assert r["reg"] in (1e-3, 1e-2, 1e-1)
    assert abs(r["test_top1"] - result["test_top1"]) <= 1.0, (r["test_top1"], result["test_top1"])


def test_codes_are_the_layer_run_by_hand(lenet_run):
    """Rows of the codes are LeNet-5's F6 output computed directly from the pixels: zero-pad
    28 -> 32, (x / 255 - mean) / std with the run's statistics, features then classifier[:5]."""
    from convnet.data import load
    from convnet.train import load_checkpoint

    run, _ = lenet_run
    codes = features(run, "mnist-sample", "classifier.4", batch_size=97, device="cpu")
    model, info = load_checkpoint(run)
    data = load("mnist-sample")
    x = F.pad(data.x_test[:50].float() / 255, (2, 2, 2, 2))
    x = (x - info["mean"][0]) / info["std"][0]
    with torch.no_grad():
        want = model.classifier[:5](model.features(x))
    got, labels = codes.rows("test")
    assert torch.allclose(got[:50], want, atol=1e-5)
    assert torch.equal(labels, data.y_test)
    # the train and val rows are the run's own split: the val rows are the images it held out
    assert codes.counts() == {"train": 3600, "val": 400, "test": 1000}
    x_val, _ = codes.rows("val")
    assert x_val.shape == (400, 84)
    # PATH:input of the next layer is the same tensor; the default is the last Linear's input
    same = features(run, "mnist-sample", "classifier.5:input", device="cpu")
    default = features(run, "mnist-sample", device="cpu")
    assert same.layer == "classifier.5:input" == default.layer
    assert torch.equal(same.codes, codes.codes) and torch.equal(default.codes, codes.codes)


def _softmax_loop(s: np.ndarray, y: np.ndarray) -> float:
    total = 0.0
    for i in range(len(y)):
        e = np.exp(s[i] - s[i].max())
        total += -np.log(e[y[i]] / e.sum())
    return total / len(y)


def _svm_loop(s: np.ndarray, y: np.ndarray) -> float:
    total = 0.0
    for i in range(len(y)):
        for j in range(s.shape[1]):
            if j != y[i]:
                total += max(0.0, s[i, j] - s[i, y[i]] + 1.0)
    return total / len(y)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 6),
    k=st.integers(2, 5),
    seed=st.integers(0, 10_000),
    scale=st.floats(0.01, 20.0),
)
def test_losses_match_their_formulas(n: int, k: int, seed: int, scale: float) -> None:
    g = np.random.default_rng(seed)
    s = (g.standard_normal((n, k)) * scale).astype(np.float64)
    y = g.integers(0, k, n)
    st_, yt = torch.from_numpy(s), torch.from_numpy(y)
    assert float(linear_loss(st_, yt, "softmax")) == pytest.approx(_softmax_loop(s, y), rel=1e-9)
    assert float(linear_loss(st_, yt, "svm")) == pytest.approx(_svm_loop(s, y), rel=1e-9, abs=1e-12)


def _standardized_blobs(n: int = 300, d: int = 6, k: int = 3, seed: int = 0) -> Codes:
    """Gaussian blobs, each dimension of the train rows at mean 0 and std 1 exactly."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 1.5
    y = torch.arange(n) % k
    x = centres[y] + torch.randn(n, d, generator=g)
    split = torch.zeros(n, dtype=torch.uint8)
    split[n // 2 :] = 1
    split[3 * n // 4 :] = 2
    train = split == 0
    x64 = x.double()
    x64 = (x64 - x64[train].mean(0)) / x64[train].std(0, correction=0)
    return Codes(x64.float(), y, split, [f"c{i}" for i in range(k)], "blobs")


def test_softmax_fit_is_scikit_learns_logistic_regression() -> None:
    """mean L_i + reg ||W||^2 is scikit-learn's 0.5 ||W||^2 + C sum L_i with C = 1/(2 reg N)."""
    lm = pytest.importorskip("sklearn.linear_model")
    codes = _standardized_blobs()
    reg = 0.01
    r = train_linear(codes, regs=[reg], max_iter=500)
    x, y = codes.rows("train")
    ref = lm.LogisticRegression(C=1 / (2 * reg * len(y)), tol=1e-8, max_iter=1000)
    ref.fit(x.double().numpy(), y.numpy())
    # our weights apply to raw codes, which here are already standardized (up to float32)
    assert np.allclose(r.weight.numpy(), ref.coef_, atol=2e-3)
    assert np.allclose(r.bias.numpy(), ref.intercept_, atol=2e-3)


def test_svm_fit_reaches_the_minimum_of_an_independent_optimizer() -> None:
    """Full-batch subgradient descent with a decaying step, run long, finds no lower objective."""
    codes = _standardized_blobs(seed=1)
    reg = 0.01
    r = train_linear(codes, loss="svm", regs=[reg], max_iter=300)
    x, y = codes.rows("train")
    x = x.double()

    def objective(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        s = x @ w.T + b
        margins = (s - s.gather(1, y[:, None]) + 1).clamp_min(0)
        return (margins.sum(1) - 1).mean() + reg * (w * w).sum()  # the j = y terms are 1 each

    w = torch.zeros(3, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    best = float("inf")
    for t in range(2000):
        loss = objective(w, b)
        best = min(best, float(loss.detach()))
        w.grad = b.grad = None
        loss.backward()
        with torch.no_grad():
            step = 0.5 / (1 + t) ** 0.5
            w -= step * w.grad
            b -= step * b.grad
    ours = float(objective(r.weight.double(), r.bias.double()))
    assert ours == pytest.approx(
        _svm_loop((x @ r.weight.double().T + r.bias).numpy(), y.numpy())
        + reg * float((r.weight.double() ** 2).sum())
    )
    assert ours <= best + 1e-3 * max(1.0, best)


def test_the_saved_classifier_applies_to_raw_codes(tmp_path) -> None:
    """The standardization is folded into weight and bias: raw codes @ W.T + b scores what was
    reported, and the state dict loads into an nn.Linear."""
    codes = _standardized_blobs(seed=2)
    codes.codes = codes.codes * torch.tensor([1, 10, 100, 0.1, 1, 1.0]) + 5  # raw, unscaled
    r = train_linear(codes, regs=[1e-3, 1e-1])
    for split, reported in (("val", r.val_top1), ("test", r.test_top1)):
        x, y = codes.rows(split)
        got = 100.0 * float(((x @ r.weight.T + r.bias).argmax(1) == y).float().mean())
        assert got == pytest.approx(reported, abs=1e-6)
    r.save(tmp_path / "clf.safetensors")
    from convnet.io import load_tensors

    layer = torch.nn.Linear(6, 3)
    layer.load_state_dict(load_tensors(tmp_path / "clf.safetensors"))
    assert torch.equal(layer.weight.detach(), r.weight)


def test_the_strength_is_chosen_on_validation_not_test() -> None:
    """Validation rows that favour a strong penalty and test rows that favour a weak one: the
    choice follows validation, and the test score is of that choice."""
    codes = _standardized_blobs(seed=3)
    regs = [1e-4, 1.0]
    r = train_linear(codes, regs=regs)
    by_val = max(r.grid, key=lambda g: (g["val_top1"], g["reg"]))
    assert r.reg == by_val["reg"]
    assert [g["reg"] for g in r.grid] == sorted(regs)
    alone = train_linear(codes, regs=[r.reg])
    assert alone.test_top1 == pytest.approx(r.test_top1, abs=1e-6)


def test_codes_file_round_trip_and_damage(tmp_path) -> None:
    codes = _standardized_blobs()
    path = tmp_path / "c.safetensors"
    codes.save(path)
    back = Codes.load(path)
    assert torch.equal(back.codes, codes.codes) and torch.equal(back.split, codes.split)
    assert back.classes == codes.classes and back.layer == "blobs"
    from convnet.io import save_tensors

    save_tensors(tmp_path / "w.safetensors", {"weight": torch.zeros(2)})
    with pytest.raises(DataError, match="not a codes file"):
        Codes.load(tmp_path / "w.safetensors")
    with pytest.raises(DataError, match="not found"):
        Codes.load(tmp_path / "missing.safetensors")
    bad = _standardized_blobs()
    bad.split = bad.split.clone()
    bad.split[0] = 7
    bad.save(tmp_path / "bad.safetensors")
    with pytest.raises(DataError, match="out of range"):
        Codes.load(tmp_path / "bad.safetensors")


def test_user_mistakes_are_one_line_errors(cli, tmp_path) -> None:
    codes = _standardized_blobs()
    codes.split = torch.where(codes.split == 1, 0, codes.split).to(torch.uint8)  # no val rows
    codes.save(tmp_path / "noval.safetensors")
    with pytest.raises(ConvnetError, match="no validation rows"):
        train_linear(tmp_path / "noval.safetensors")
    assert train_linear(tmp_path / "noval.safetensors", regs=[0.1]).val_top1 is None
    with pytest.raises(ConvnetError, match="unknown loss"):
        train_linear(codes, loss="hinge")
    with pytest.raises(ConvnetError, match="no layer 'fc9'.*leaf layers: features.0"):
        features("lenet5", "mnist-sample", "fc9", device="cpu")
    code, _, err = cli("features", "lenet5", "--data", "mnist-sample", "-o", tmp_path / "c.npz")
    assert (
        code == 2 and err.startswith("convnet features: error: -o") and len(err.splitlines()) == 1
    )
    code, _, err = cli("linear", tmp_path / "missing.safetensors")
    assert code == 2 and "not found" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit):
        cli("linear", tmp_path / "noval.safetensors", "--reg", "-1")


def test_a_pattern_line_is_built_for_the_data_and_the_cli_constants_agree() -> None:
    from convnet.cli import features as cli_features

    assert cli_features.LOSSES == LOSSES and cli_features.REG_GRID == REG_GRID
    # a line without INPUT[...] is built for the digits' 1 x 28 x 28; the default layer is the
    # input of its only Linear: the 4 x 14 x 14 pooled maps, flattened
    import convnet

    # convnet.features(model, data, layer) is the function; convnet.features.* the module
    assert convnet.features.train_linear is train_linear
    line = "CONV3-4 -> RELU -> POOL2 -> FC-10"
    codes = convnet.features(line, "mnist-sample", device="cpu", val_split=0)
    assert codes.layer == "4:input" and codes.codes.shape == (5000, 4 * 14 * 14)
    assert codes.counts() == {"train": 4000, "val": 0, "test": 1000}
    assert bool((codes.codes >= 0).all())  # after the ReLU and the max pool
