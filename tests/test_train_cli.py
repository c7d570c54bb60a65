"""`convnet train`, `convnet eval` (TTA, ensembles) and `convnet predict` end to end, checked against
softmax computed directly from the reloaded models."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from convnet.train import load_checkpoint

MODEL = "INPUT -> CONV3-8 -> RELU -> POOL2 -> FC-4"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two short runs (seeds 0 and 1) on a .npz data set, trained through the CLI."""
    from convnet.cli import main
    from test_train import tiny_data

    root = tmp_path_factory.mktemp("cli")
    d = tiny_data(n_train=192, n_test=64)
    npz = root / "tiny.npz"
    np.savez(
        npz,
        x_train=d.x_train.numpy(),
        y_train=d.y_train.numpy(),
        x_test=d.x_test.numpy(),
        y_test=d.y_test.numpy(),
    )
    for seed in (0, 1):
        code = main(
            [
                "train",
                MODEL,
                "--data",
                str(npz),
                "--epochs",
                "2",
                "--batch",
                "32",
                "--lr",
                "0.05",
                "--schedule",
                "onecycle",
                "--seed",
                str(seed),
                "--out",
                str(root / f"run{seed}"),
                "--quiet",
            ]
        )
        assert code == 0
    return root, npz, d


def probs(path, x, flip=False):
    model, info = load_checkpoint(path)
    mean, std = info["mean"][0], info["std"][0]
    xn = (x.float() / 255 - mean) / std
    with torch.no_grad():
        p = model(xn).softmax(1)
        if flip:
            p = (p + model(xn.flip(-1)).softmax(1)) / 2
    return p


def top1(p, y) -> float:
    return 100.0 * float((p.argmax(1) == y).float().mean())


def parse(out: str, what: str) -> float:
    return float(re.search(rf"{what} ([\d.]+)%", out).group(1))


def test_train_cli_resume_continues(runs, cli):
    root, npz, _ = runs
    code, out, err = cli(
        "train",
        MODEL,
        "--data",
        npz,
        "--epochs",
        "3",
        "--batch",
        "32",
        "--lr",
        "0.05",
        "--schedule",
        "onecycle",
        "--out",
        root / "run0",
        "--resume",
        "--quiet",
    )
    assert code == 0, err
    epochs = [
        json.loads(x)["epoch"] for x in (root / "run0" / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2, 3]
    code, _, err = cli("train", MODEL, "--data", npz, "--out", root / "run0", "--quiet")
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1


def test_eval_plain_tta_and_ensemble(runs, cli):
    root, npz, d = runs
    a, b = root / "run1" / "last.pt", root / "run0" / "best.pt"
    code, out, _ = cli("eval", a, "--data", npz)
    assert code == 0 and parse(out, "top-1") == pytest.approx(
        top1(probs(a, d.x_test), d.y_test), abs=0.01
    )
    code, out, err = cli("eval", a, "--data", npz, "--tta", "flip")
    assert parse(out, "top-1") == pytest.approx(
        top1(probs(a, d.x_test, flip=True), d.y_test), abs=0.01
    )
    trained_with_flips = load_checkpoint(a)[1]["config"]["hflip"]
    assert ("warning: --tta flip mirrors" in err) == (not trained_with_flips)
    code, out, _ = cli("eval", a, "--data", npz, "--ensemble", b)
    ens = (probs(a, d.x_test) + probs(b, d.x_test)) / 2
    assert "2 models" in out and parse(out, "top-1") == pytest.approx(top1(ens, d.y_test), abs=0.01)
    code, out, _ = cli(
        "eval", a, "--tta", "multicrop", "--json"
    )  # data from the checkpoint's config
    r = json.loads(out)
    assert (
        r["n"] == len(d.y_test)
        and sum(map(sum, r["confusion"])) == r["n"]
        and r["tta"] == "multicrop"
    )
    code, _, err = cli("eval", root / "missing.pt")
    assert code == 2 and "not found" in err


def test_predict_top5_matches_softmax(runs, cli, tmp_path):
    from PIL import Image

    root, _, d = runs
    ckpt = root / "run1" / "best.pt"
    img = d.x_test[3, 0].numpy()
    Image.fromarray(img).save(tmp_path / "digit.png")
    code, out, err = cli("predict", ckpt, tmp_path / "digit.png", "--top", "3")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 3
    expect = probs(ckpt, d.x_test[3:4])[0]
    best = int(expect.argmax())
    assert lines[0].split()[1] == load_checkpoint(ckpt)[1]["classes"][best]
    assert float(lines[0].split()[2].rstrip("%")) == pytest.approx(
        100 * float(expect[best]), abs=0.01
    )


def test_predict_dense_writes_a_heatmap(runs, cli, tmp_path):
    from PIL import Image

    root, _, d = runs
    big = np.kron(
        d.x_test[5, 0].numpy(), np.ones((2, 2), dtype=np.uint8)
    )  # 24x24: 7x7 windows of 12x12
    Image.fromarray(big).save(tmp_path / "big.png")
    code, out, err = cli(
        "predict",
        root / "run1" / "best.pt",
        tmp_path / "big.png",
        "--dense",
        "--scales",
        "1.0",
        "0.75",
        "--heatmap",
        tmp_path / "map.png",
    )
    assert code == 0, err
    assert (tmp_path / "map.png").stat().st_size > 0
    total = sum(
        float(line.split()[2].rstrip("%")) for line in out.splitlines() if line[:1].isdigit()
    )
    assert 0 < total <= 100.01


def test_numpy_engine_run_folder(runs, cli, tmp_path):
    pytest.importorskip("convnet.reference.torch_bridge")
    _, npz, d = runs
    code, out, err = cli(
        "train",
        MODEL,
        "--data",
        npz,
        "--engine",
        "numpy",
        "--epochs",
        "1",
        "--batch",
        "32",
        "--lr",
        "0.05",
        "--out",
        tmp_path / "np",
        "--quiet",
    )
    assert code == 0, err
    res = json.loads((tmp_path / "np" / "result.json").read_text())
    assert set(res) >= {"val_top1", "test_top1", "test_top5", "epochs", "seconds"}
    assert res["split"]["val"] == 19 and res["checkpoint"] == "best"  # 10% of 192, stratified
    # the saved (best-epoch) weights reproduce the test top-1 when run by torch
    assert top1(probs(tmp_path / "np" / "best.pt", d.x_test), d.y_test) == pytest.approx(
        res["test_top1"], abs=0.01
    )


def test_image_folder_of_mixed_sizes_needs_and_takes_image_size(cli, tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / c / f"{i}.png")
    line = "INPUT -> CONV3-4 -> RELU -> POOL2 -> FC"
    base = ("train", line, "--data", tmp_path / "imgs", "--epochs", "1", "--batch", "4", "--quiet")
    code, _, err = cli(*base, "--out", tmp_path / "a")
    assert code == 2 and "differ in size" in err and "--image-size" in err
    code, out, _ = cli(*base, "--image-size", "16", "--out", tmp_path / "b")
    assert code == 0, out
    info = json.loads((tmp_path / "b" / "result.json").read_text())
    assert info["epochs"] == 1
    _, meta = load_checkpoint(tmp_path / "b" / "last.pt")
    assert tuple(meta["input_size"]) == (3, 16, 16)


def test_resume_continues_with_the_runs_own_settings(runs, cli, tmp_path):
    import shutil

    root, npz, _ = runs
    run = tmp_path / "run"
    shutil.copytree(root / "run1", run)  # 2 epochs (run0 is extended by another test)
    # no --data, --lr, --schedule or --batch: they come from the run's config.json
    code, out, err = cli("train", MODEL, "--out", run, "--resume", "--epochs", "3", "--quiet")
    assert code == 0, err
    assert "changed settings: epochs 2 -> 3 " in err and "lr" not in err.split("settings:")[1]
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["lr"], cfg["schedule"], cfg["batch_size"], cfg["epochs"]) == (
        0.05,
        "onecycle",
        32,
        3,
    )
    assert cfg["data"] == str(npz.resolve())
    assert json.loads((run / "result.json").read_text())["epochs"] == 3
    code, _, err = cli("train", MODEL, "--out", run, "--resume", "--quiet")
    assert code == 2 and err.strip().splitlines() == [
        f"convnet train: error: {run} has already trained its 3 epochs; pass a larger --epochs "
        "to train it further"
    ]
    code, _, err = cli("train", MODEL, "--out", run, "--resume", "--batch", "64", "--quiet")
    assert code == 2
    assert err.strip().splitlines() == [
        f"convnet train: error: {run} was trained with other settings (batch_size 32 -> 64); "
        "resume it with the run's own settings (see its config.json) or start a new --out"
    ]
