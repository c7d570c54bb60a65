"""Three splits: validation picks best.pt, drives the plateau schedule and early stopping; the
test split is scored once, at the end, on the chosen checkpoint."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.data import Dataset
from convnet.data.splits import SPLIT_SEED, stratified_split, with_validation
from convnet.errors import ConvnetError
from convnet.train import TrainConfig, evaluate, fit, load_checkpoint

LINEAR = "INPUT -> FC"


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=6),
    fraction=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**31),
)
def test_stratified_split_takes_each_class_share(counts, fraction, seed):
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]
    train, val = stratified_split(y, fraction, seed)
    assert torch.equal(torch.sort(torch.cat([train, val])).values, torch.arange(len(y)))
    assert torch.equal(train, torch.sort(train).values) and torch.equal(val, torch.sort(val).values)
    for c, n in enumerate(counts):
        k = int((y[val] == c).sum())
        assert math.floor(n * fraction) <= k <= math.floor(n * fraction) + 1
        assert n == 0 or k <= n - 1  # every class keeps a training image
    if all(n * (1 - fraction) >= 1 for n in counts if n):  # no class is capped
        assert len(val) == math.floor(len(y) * fraction + 0.5)
    again = stratified_split(y, fraction, seed)
    assert torch.equal(again[1], val)  # seeded: the same split every time


def _digits(n_train: int = 60, n_test: int = 20, classes: int = 3, row: int = 120) -> Dataset:
    """Class c: row c brighter by ``row`` over noise in 0..119, in a 6x6 image; labels cycle
    0, 1, 2, ... (with a small ``row`` the classes overlap)"""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 120, (n_train + n_test, 1, 6, 6), generator=g)
    y = torch.arange(n_train + n_test) % classes
    x[torch.arange(len(y)), 0, y] += row
    x = x.to(torch.uint8)
    names = [str(c) for c in range(classes)]
    return Dataset("d", x[:n_train], y[:n_train], x[n_train:], y[n_train:], names)


def test_with_validation_carves_a_share_and_recomputes_the_statistics():
    data = _digits()
    out, info = with_validation(data, 0.2)
    assert (info.source, info.train, info.val, info.test) == ("train", 48, 12, 20)
    assert info.seed == SPLIT_SEED and torch.equal(out.x_test, data.x_test)
    assert torch.bincount(out.y_val).tolist() == [4, 4, 4]
    # the validation images left the training split: together they are the original one
    rows = {tuple(r.flatten().tolist()) for r in torch.cat([out.x_train, out.x_val])}
    assert rows == {tuple(r.flatten().tolist()) for r in data.x_train}
    # mean and std of what trains, computed independently (population std of pixel / 255)
    pixels = out.x_train.double() / 255
    assert out.mean[0] == pytest.approx(float(pixels.mean()), abs=1e-9)
    assert out.std[0] == pytest.approx(float(pixels.std(unbiased=False)), abs=1e-9)
    assert with_validation(out, 0.5)[1].source == "data"  # a data set's own split is kept
    empty, info = with_validation(data, 0.0)
    assert info.source == "none" and len(empty.y_val) == 0 and empty.x_train is data.x_train
    assert with_validation(data, 0.01)[1].val == 1  # round(0.6)
    with pytest.raises(ConvnetError, match="--val-split 0.005 of 60 training images"):
        with_validation(data, 0.005)


def test_image_folder_val_beside_test_is_the_validation_split(tmp_path):
    from PIL import Image

    from convnet.data import load

    def write(folder, n):
        for c in ("cat", "dog"):
            (tmp_path / folder / c).mkdir(parents=True)
            for i in range(n):
                Image.new("L", (4, 4), 40 * i).save(tmp_path / folder / c / f"{i}.png")

    write("train", 3)
    write("val", 2)
    d = load(tmp_path, progress=False)  # train/ and val/ alone: val/ is the test split
    assert (len(d.y_train), d.x_val, len(d.y_test)) == (6, None, 4)
    write("test", 1)
    d = load(tmp_path, progress=False)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (6, 4, 2)
    assert d.y_val.tolist() == [0, 0, 1, 1]
    npz = tmp_path / "d.npz"
    arrays = {k: getattr(d, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")}
    np.savez(npz, **arrays, x_val=d.x_val.numpy(), y_val=d.y_val.numpy())
    assert torch.equal(load(npz).x_val, d.x_val)


def _flipped(seed: int = 0, n: int = 64, n_val: int = 48) -> Dataset:
    """Two classes (the left half of an 8x8 image a little brighter or darker); the test split
    is the validation images with every label flipped, so test top-1 = 100 - validation top-1
    for any weights, and the epoch validation likes best is the one test likes least."""
    g = torch.Generator().manual_seed(seed)

    def make(k):
        y = torch.randint(0, 2, (k,), generator=g)
        x = torch.randint(70, 186, (k, 1, 8, 8), generator=g)
        x[:, 0, :, :4] += (12 * (2 * y - 1)).view(-1, 1, 1)
        return x.to(torch.uint8), y

    (x, y), (xv, yv) = make(n), make(n_val)
    return Dataset("flipped", x, y, xv, 1 - yv, ["a", "b"], x_val=xv, y_val=yv)


def _rows(out) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def _chosen(rows: list[dict]) -> int:
    """The epoch best.pt should hold, by the rule written out: the highest validation top-1,
    among equal top-1s the lowest validation loss, among exact ties the earliest."""
    key = [(-row["val_top1"], row["val_loss"], row["epoch"]) for row in rows]
    return min(key)[2]


def test_equal_validation_top1s_are_told_apart_by_validation_loss(tmp_path):
    """Nine validation images: later epochs tie at the top often, and an epoch that ties in
    top-1 with a lower validation loss is the better fit (best.pt moves to it)."""
    data = _digits(n_train=90, n_test=15)
    cfg = TrainConfig(
        out=str(tmp_path), epochs=5, batch_size=16, lr=0.01, schedule="constant", progress=False
    )
    r = fit(LINEAR, data, cfg)
    rows = _rows(tmp_path)
    top = max(row["val_top1"] for row in rows)
    tied = [row for row in rows if row["val_top1"] == top]
    first = tied[0]["epoch"]
    assert len(tied) > 1 and min(row["val_loss"] for row in tied) < tied[0]["val_loss"], (
        "the construction needs a later epoch that ties the best top-1 at a lower loss"
    )
    assert r["best_epoch"] == _chosen(rows) != first
    assert r["val_top1"] == pytest.approx(top, abs=1e-5)
    assert r["val_loss"] == pytest.approx(rows[r["best_epoch"] - 1]["val_loss"], abs=1e-6)
    assert load_checkpoint(tmp_path / "best.pt")[1]["epoch"] == r["best_epoch"]


def test_selection_happens_on_validation_and_the_test_score_is_that_checkpoints(tmp_path):
    data = _flipped()
    cfg = TrainConfig(
        out=str(tmp_path),
        epochs=3,
        batch_size=16,
        lr=0.01,
        schedule="constant",
        momentum=0.0,
        weight_decay=0.0,
        progress=False,
    )
    r = fit(LINEAR, data, cfg)
    rows = _rows(tmp_path)
    val = [row["val_top1"] for row in rows]
    test = [100.0 - v for v in val]  # the same images, every label flipped
    assert len(set(val)) > 1, "the construction needs epochs that validation tells apart"
    best = _chosen(rows)
    assert r["best_epoch"] == best and r["checkpoint"] == "best"
    assert r["val_top1"] == pytest.approx(max(val), abs=1e-5)  # metrics.jsonl rounds to 1e-6
    assert test.index(max(test)) + 1 != best  # the test split would have chosen another epoch
    assert r["test_top1"] == pytest.approx(test[best - 1], abs=1e-5) and r["test_top1"] < max(test)
    assert r["split"]["source"] == "data" and r["split"]["val"] == 48
    # and it is best.pt's test accuracy, computed independently of the loop
    model, info = load_checkpoint(tmp_path / "best.pt")
    with torch.no_grad():
        pred = model((data.x_test.float() / 255 - info["mean"][0]) / info["std"][0]).argmax(1)
    assert r["test_top1"] == pytest.approx(100.0 * float((pred == data.y_test).float().mean()))
    conf = json.loads((tmp_path / "confusion.json").read_text())
    assert (conf["split"], conf["checkpoint"], conf["top1"]) == ("test", "best", r["test_top1"])
    # convnet eval says which split it scored, and scores best.pt's validation split the same
    assert evaluate(tmp_path, data)["split"] == "test"
    assert evaluate(tmp_path, data, split="val")["top1"] == pytest.approx(r["val_top1"])


def test_early_stop_and_a_resume_that_would_change_the_split(tmp_path):
    data = _digits(n_train=90, n_test=15, row=30)  # overlapping classes: top-1 wanders
    base = dict(out=str(tmp_path), batch_size=16, lr=2.0, schedule="constant", progress=False)
    r = fit(LINEAR, data, TrainConfig(epochs=12, early_stop=2, **base))
    rows = _rows(tmp_path)
    best = _chosen(rows)
    assert r["best_epoch"] == best and r["epochs"] == len(rows) == best + 2 < 12
    assert r["stopped_early"] and r["split"] == {
        "source": "train",
        "fraction": 0.1,
        "seed": SPLIT_SEED,
        "train": 81,
        "val": 9,
        "test": 15,
    }
    with pytest.raises(ConvnetError, match="stopped early after epoch"):
        fit(LINEAR, data, TrainConfig(epochs=12, early_stop=2, **base), resume=True)
    with pytest.raises(ConvnetError, match=r"val_split 0.1 -> 0.2"):
        fit(LINEAR, data, TrainConfig(epochs=12, val_split=0.2, **base), resume=True)
    # convnet eval rebuilds the run's validation split from its record
    assert evaluate(tmp_path, data, split="val")["n"] == 9


def test_on_epoch_ends_the_run_where_it_returns_true(tmp_path):
    """fit's on_epoch hook (the search's successive halving uses it): called after every epoch
    with its validation top-1 (None on an epoch not validated); True ends the run there."""
    data = _digits(n_train=90, n_test=15)
    seen = []

    def on_epoch(epoch, val_top1):
        seen.append((epoch, val_top1))
        return epoch == 3

    base = dict(batch_size=16, lr=0.5, schedule="constant", progress=False, eval_every=2)
    r = fit(LINEAR, data, TrainConfig(out=str(tmp_path), epochs=8, **base), on_epoch=on_epoch)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e for e, _ in seen] == [1, 2, 3] == [row["epoch"] for row in rows]
    assert [v for _, v in seen] == [None, rows[1]["val_top1"], None]
    assert (r["epochs"], r["best_epoch"], r["stopped_early"], r["checkpoint"]) == (
        3,
        2,
        True,
        "best",
    )
    with pytest.raises(ConvnetError, match="nproc 1"):
        fit(LINEAR, data, TrainConfig(epochs=1, nproc=2, **base), on_epoch=on_epoch)


def test_nothing_validated_is_said_and_the_test_split_scores_the_last_weights(tmp_path, capsys):
    data = _digits()
    cfg = TrainConfig(out=str(tmp_path), epochs=1, batch_size=16, lr=0.1, val_split=0)
    r = fit(LINEAR, data, cfg)
    said = [ln for ln in capsys.readouterr().out.splitlines() if "nothing is validated" in ln]
    assert len(said) == 1
    assert (r["val_top1"], r["val_loss"], r["best_epoch"], r["checkpoint"]) == (
        None, None, None, "last"
    )  # fmt: skip
    assert not (tmp_path / "best.pt").exists()
    model, info = load_checkpoint(tmp_path / "last.pt")
    with torch.no_grad():
        pred = model((data.x_test.float() / 255 - info["mean"][0]) / info["std"][0]).argmax(1)
    assert r["test_top1"] == pytest.approx(100.0 * float((pred == data.y_test).float().mean()))
    for bad in (dict(schedule="plateau"), dict(early_stop=3)):
        with pytest.raises(ConvnetError, match="nothing is validated"):
            fit(LINEAR, data, TrainConfig(epochs=1, batch_size=16, val_split=0, **bad))
    with pytest.raises(ConvnetError, match="validated nothing"):
        evaluate(tmp_path / "last.pt", data, split="val")


def test_numpy_engine_selects_on_validation_too(tmp_path, cli):
    pytest.importorskip("convnet.reference.torch_bridge")
    data = _flipped(n=48, n_val=32)
    npz = tmp_path / "flipped.npz"
    arrays = {k: getattr(data, k).numpy() for k in ("x_train", "y_train", "x_val", "y_val")}
    np.savez(npz, **arrays, x_test=data.x_test.numpy(), y_test=data.y_test.numpy())
    argv = ["train", LINEAR, "--data", npz, "--engine", "numpy", "--epochs", "2"]
    code, out, err = cli(*argv, "--batch", "16", "--lr", "0.01", "--out", tmp_path / "np")
    assert code == 0, err
    r = json.loads((tmp_path / "np" / "result.json").read_text())
    assert r["split"]["source"] == "data" and r["checkpoint"] == "best"
    assert r["test_top1"] == pytest.approx(100.0 - r["val_top1"])  # best.pt's, on flipped labels
    assert "validation top-1" in out and "test top-1" in out
