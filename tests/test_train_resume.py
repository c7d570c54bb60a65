"""A run killed with SIGKILL mid-epoch and resumed ends with the same weights, bit for bit, as an
uninterrupted run; SIGTERM saves a checkpoint and exits cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from convnet.train import TrainConfig, fit, read_checkpoint

# dropout exercises the saved RNG state, EMA and the schedule their saved state
MODEL = "INPUT -> CONV3-8 -> RELU -> POOL2 -> DROPOUT(0.3) -> FC-4"

SCRIPT = textwrap.dedent(
    """
    import sys, torch
    sys.path.insert(0, {tests!r})
    from test_train import tiny_data
    from convnet.train import TrainConfig, fit
    cfg = TrainConfig(**{cfg!r})
    fit({model!r}, tiny_data(n_train=512), cfg, resume={resume!r})
    """
)


def config(out, **kw) -> dict:
    base = dict(
        out=str(out),
        epochs=2,
        batch_size=8,
        lr=0.05,
        schedule="onecycle",
        ema=0.9,
        checkpoint_every=5,
        num_threads=1,
        progress=False,
        crop_padding=1,
        hflip=True,
    )
    base.update(kw)
    return base


def start(out, resume=False, **kw) -> subprocess.Popen:
    code = SCRIPT.format(
        tests=os.path.dirname(__file__), cfg=config(out, **kw), model=MODEL, resume=resume
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_checkpoint(proc, path, min_step, timeout=120.0) -> int:
    """Poll until ``path`` holds a checkpoint at global step >= min_step; return that step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            step = int(read_checkpoint(path)["progress"]["global_step"])
            if step >= min_step:
                return step
        if proc.poll() is not None:
            pytest.fail(
                f"training ended before a checkpoint at step {min_step}: {proc.communicate()}"
            )
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no checkpoint appeared in time")


@pytest.mark.slow  # a long multi-process or end-to-end test: run first
def test_sigkill_mid_epoch_then_resume_is_bitwise_identical(tmp_path):
    from test_train import tiny_data

    killed = tmp_path / "killed"
    proc = start(killed)
    step = wait_for_checkpoint(proc, killed / "last.pt", min_step=10)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = read_checkpoint(killed / "last.pt")
    per_epoch = (512 - round(512 * 0.1)) // 8  # 10% of the images hold out for validation
    total = 2 * per_epoch
    assert 0 < state["progress"]["global_step"] < total, (
        "the kill must land before the end of the run"
    )
    assert state["progress"]["step_in_epoch"] > 0 or step % per_epoch == 0
    assert not (killed / "result.json").exists()

    fit(MODEL, tiny_data(n_train=512), TrainConfig(**config(killed)), resume=True)
    fit(MODEL, tiny_data(n_train=512), TrainConfig(**config(tmp_path / "straight")))
    a = read_checkpoint(killed / "last.pt")
    b = read_checkpoint(tmp_path / "straight" / "last.pt")
    assert a["progress"]["global_step"] == b["progress"]["global_step"] == total
    for key in b["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in b["ema"]["weights"]:
        assert torch.equal(a["ema"]["weights"][key], b["ema"]["weights"][key]), key
    ra = json.loads((killed / "result.json").read_text())
    rb = json.loads((tmp_path / "straight" / "result.json").read_text())
    assert ra["test_top1"] == rb["test_top1"] and ra["val_top1"] == rb["val_top1"]
    assert ra["epochs"] == rb["epochs"] == 2
    lines = (killed / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    for x, y in zip(lines, (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()):
        x, y = json.loads(x), json.loads(y)
        assert (x["train_loss"], x["val_loss"], x["lr"]) == (
            y["train_loss"],
            y["val_loss"],
            y["lr"],
        )


@pytest.mark.slow  # a long multi-process or end-to-end test: run first
def test_sigterm_saves_and_exits_cleanly(tmp_path):
    proc = start(tmp_path, epochs=4, checkpoint_every=0, progress=True)
    # the first epoch-end checkpoint shows the loop is running; then ask it to stop
    wait_for_checkpoint(proc, tmp_path / "last.pt", min_step=1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped by SIGTERM at step" in out
    stopped_at = int(out.split("stopped by SIGTERM at step")[1].split(";")[0])
    state = read_checkpoint(tmp_path / "last.pt")
    assert state["progress"]["global_step"] == stopped_at < 4 * 64
    assert (
        not (tmp_path / "result.json").exists()
        or json.loads((tmp_path / "result.json").read_text())["status"] == "terminated"
    )
