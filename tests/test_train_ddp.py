"""Two processes (DistributedDataParallel, gloo) match one process with the same global batch to
float rounding; SIGTERM to the parent stops every rank at one step and saves it; a rank's error
or death is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from convnet.train import TrainConfig, fit, read_checkpoint

MODEL = "INPUT -> CONV3-8 -> RELU -> POOL2 -> FC-16 -> RELU -> FC-4"

# Largest |w1 - w2| between the 1- and 2-process weights after the 120 steps below. Two ranks sum
# their halves' gradients in another order than one process sums the whole batch, so they agree
# to float32 rounding, not bitwise (measured: 4.2e-7 here; it grows with steps and lr).
TOLERANCE = 1e-5

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_train import tiny_data
    from convnet.train import TrainConfig, fit
    fit({model!r}, tiny_data(n_train=192), TrainConfig(**{cfg!r}))
    """
)


@pytest.mark.slow  # a long multi-process or end-to-end test: run first
def test_two_processes_match_one_and_sigterm_stops_every_rank(tmp_path):
    from test_train import tiny_data
    from test_train_resume import wait_for_checkpoint

    data = tiny_data(n_train=192)
    common = dict(
        epochs=10,
        batch_size=16,
        lr=0.05,
        schedule="cosine",
        crop_padding=1,
        hflip=True,
        progress=False,
        eval_every=1,
        num_threads=1,
        dist_timeout=30,
    )
    n_train = 192 - round(192 * 0.1)  # 10% of the images hold out for validation
    total = 10 * (n_train // 16)
    one = fit(MODEL, data, TrainConfig(out=str(tmp_path / "one"), **common))
    # two processes, stopped by a SIGTERM to the parent once they are training
    cfg = dict(common, out=str(tmp_path / "two"), nproc=2, checkpoint_every=4)
    code = SCRIPT.format(tests=os.path.dirname(__file__), model=MODEL, cfg=cfg)
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_checkpoint(proc, tmp_path / "two" / "last.pt", min_step=4)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err, err
    stopped = int(out.split("stopped by SIGTERM at step")[1].split(";")[0])
    assert read_checkpoint(tmp_path / "two" / "last.pt")["progress"]["global_step"] == stopped
    assert stopped < total
    # --resume continues it in two processes to the end
    two = fit(MODEL, data, TrainConfig(out=str(tmp_path / "two"), nproc=2, **common), resume=True)
    assert two["world_size"] == 2 and one["world_size"] == 1 and two["status"] == "done"
    a = read_checkpoint(tmp_path / "one" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "two" / "last.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), (k, (a[k] - b[k]).abs().max())
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"max |w(1 process) - w(2 processes)| after {total} steps: {diff:.3g}")
    assert diff <= TOLERANCE
    n_val = one["split"]["val"]
    assert abs(one["last_val_top1"] - two["last_val_top1"]) <= 100.0 / n_val + 1e-9
    assert two["steps"] == one["steps"] == total
    # the epoch records agree too, the one the SIGTERM split included (its running sums are
    # saved over both ranks)
    records = [
        [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        for run in ("one", "two")
    ]
    assert [r["epoch"] for r in records[1]] == list(range(1, 11))
    for r1, r2 in zip(*records):
        assert r1["train_loss"] == pytest.approx(r2["train_loss"], abs=1e-4), r1["epoch"]
        assert r1["train_top1"] == pytest.approx(r2["train_top1"], abs=100 / n_train + 1e-9)


def _die_on_rank_1(rank: int, world: int, *, stop) -> None:
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)


def test_a_rank_error_or_death_is_one_line(tmp_path, cli):
    from convnet.train import distributed as D
    from test_train import tiny_data

    with pytest.raises(D.RankDied) as e:
        D.spawn(_die_on_rank_1, 2, ())
    assert str(e.value) == "training process 1 of 2 died (killed by SIGKILL)"
    d = tiny_data(n_train=64, n_test=16)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, **{k: getattr(d, k).numpy() for k in ("x_train", "y_train", "x_test", "y_test")})
    argv = ("train", "INPUT -> RELU", "--data", npz, "--nproc", "2", "--batch", "32")
    code, _, err = cli(*argv, "--out", tmp_path / "run", "--quiet")
    assert code == 2 and err.strip().splitlines() == [
        "convnet train: error: INPUT -> RELU has no trainable parameters, so there is nothing to "
        "train; add a layer with weights (CONV, FC) or unfreeze some"
    ]
