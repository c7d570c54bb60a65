"""A run folder belongs to one run, and a run's checkpoints and results can be trusted: the folder
lock, refusing to mix runs (and --force setting old files aside), finishing a run killed after
its last checkpoint, no non-finite checkpoint, and --resume applying a changed learning rate."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from convnet.errors import ConvnetError, TrainingError
from convnet.train import TrainConfig, fit, load_checkpoint, read_checkpoint
from convnet.train.run_folder import claim_run_folder
from test_train import TINY, tiny_data


def small():
    return tiny_data(n_train=64, n_test=16)  # 2 steps of 32 an epoch


def config(out, **kw) -> TrainConfig:
    base = dict(out=str(out), epochs=1, batch_size=32, lr=0.05, progress=False)
    return TrainConfig(**{**base, **kw})


def test_a_locked_run_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    with claim_run_folder(out):  # as a training run holds it (flock on a separate open file)
        assert (out / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(
            ConvnetError, match=rf"in use by another training run \(pid {os.getpid()}\)"
        ):
            fit(TINY, small(), config(out))
        assert not (out / "config.json").exists()  # the refused run wrote nothing
    assert not (out / ".lock").exists()  # released and removed when the holder ends
    assert fit(TINY, small(), config(out))["status"] == "done"
    assert not (out / ".lock").exists()


def test_a_new_run_needs_an_empty_folder_or_force_which_sets_files_aside(tmp_path, cli):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConvnetError) as e:
        fit(TINY, small(), config(out))
    msg = str(e.value)
    assert "notes.txt" in msg and "--resume" in msg and "--force" in msg and "\n" not in msg
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with pytest.warns(UserWarning, match="moved 1 earlier file"):
        fit(TINY, small(), config(out), force=True)
    (aside,) = out.glob("replaced-*")
    assert (aside / "notes.txt").read_text() == "mine"
    first = (out / "last.pt").read_bytes()
    # the CLI says the same in one line; --force again sets the first run aside, not the notes
    d = small()
    npz = tmp_path / "small.npz"
    np.savez(npz, **{k: getattr(d, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")})
    argv = ("train", TINY, "--data", npz, "--out", out, "--epochs", "1", "--batch", "32", "--quiet")
    code, _, err = cli(*argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--force" in err
    code, _, err = cli(*argv, "--force")
    assert code == 0, err
    asides = sorted(out.glob("replaced-*"))
    assert len(asides) == 2 and (aside / "notes.txt").read_text() == "mine"
    (second,) = [a for a in asides if a != aside]
    assert (second / "last.pt").read_bytes() == first and (out / "last.pt").is_file()
    with pytest.raises(ConvnetError, match="give one"):
        fit(TINY, small(), config(out), resume=True, force=True)


def test_resume_finishes_a_run_killed_after_its_last_checkpoint(tmp_path):
    data = tiny_data()
    cfg = config(tmp_path, epochs=2, ema=0.9)
    fit(TINY, data, cfg)
    # what a kill between the final last.pt and result.json leaves: everything but the results
    for name in ("result.json", "confusion.json", "curves.png"):
        (tmp_path / name).unlink()
    r = fit(TINY, data, cfg, resume=True)
    assert r["status"] == "done" and r["epochs"] == 2
    for name in ("result.json", "confusion.json", "curves.png"):
        assert (tmp_path / name).is_file(), name
    # the finished result is the test accuracy of best.pt's (EMA) weights, computed independently
    model, info = load_checkpoint(tmp_path / "best.pt")
    with torch.no_grad():
        pred = model((data.x_test.float() / 255 - info["mean"][0]) / info["std"][0]).argmax(1)
    assert r["test_top1"] == pytest.approx(100.0 * float((pred == data.y_test).float().mean()))
    conf = json.loads((tmp_path / "confusion.json").read_text())
    assert sum(map(sum, conf["confusion"])) == len(data.y_test)
    records = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in records] == [1, 2]
    with pytest.raises(ConvnetError, match="already trained its 2 epochs"):
        fit(TINY, data, cfg, resume=True)


def test_no_checkpoint_holds_non_finite_state(tmp_path):
    # epoch 1 trains at lr 0.05 (8 steps of 32: all 256 images, no validation split); epoch 2
    # multiplies it by 1e12. Batch norm keeps
    # the training loss finite while the convolution's weights explode, but its running variance
    # (a mean of squares of 1e20-sized activations) overflows float32: a checkpoint after every
    # step must stop before one holds it
    cfg = config(
        tmp_path,
        val_split=0,
        epochs=3,
        schedule="multistep",
        milestones=(1,),
        gamma=1e12,
        momentum=0.0,
        weight_decay=0.0,
        checkpoint_every=1,
    )
    line = "INPUT -> CONV3-8 -> BN -> RELU -> POOL2 -> FC-4"
    with pytest.raises(TrainingError, match=r"non-finite at step \d+ \(epoch 2, lr 5e\+10\)") as e:
        fit(line, tiny_data(), cfg)
    state = read_checkpoint(tmp_path / "last.pt")
    step = state["progress"]["global_step"]
    assert 8 <= step < 24 and f"(step {step})" in str(e.value)
    for name, w in state["model"].items():
        assert not w.is_floating_point() or torch.isfinite(w).all(), name
    with pytest.raises(TrainingError, match=r"learning rate at step 8 is 5e\+38, beyond float32"):
        fit(TINY, tiny_data(), cfg.replace(out=None, gamma=1e40))


def test_resume_trains_at_a_changed_learning_rate(tmp_path):
    data = tiny_data()
    fit(TINY, data, config(tmp_path, schedule="constant"))
    before = read_checkpoint(tmp_path / "last.pt")["model"]
    # an lr of 1e-30 moves no float32 weight of this size: if epoch 2 really trains at it, the
    # weights stay put; at the saved 0.05 they would move by ~1e-2
    with pytest.warns(UserWarning) as w:
        fit(TINY, data, config(tmp_path, schedule="constant", epochs=2, lr=1e-30), resume=True)
    (line,) = [str(x.message) for x in w if "changed settings" in str(x.message)]
    # 230 training images (26 of 256 hold out for validation): 7 steps of 32 an epoch
    assert "epochs 1 -> 2, lr 0.05 -> 1e-30 (applied from step 7;" in line and "\n" not in line
    after = read_checkpoint(tmp_path / "last.pt")
    assert after["progress"]["global_step"] == 14
    for k, v in before.items():
        assert (after["model"][k] - v).abs().max() <= 1e-20, k
