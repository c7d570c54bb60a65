"""Two processes (DistributedDataParallel, gloo) match one process with the same global batch."""

from __future__ import annotations

import torch

from convnet.train import TrainConfig, fit, read_checkpoint

MODEL = "INPUT -> CONV3-8 -> RELU -> POOL2 -> FC-16 -> RELU -> FC-4"


def test_two_processes_match_one(tmp_path):
    from test_train import tiny_data

    data = tiny_data(n_train=192)
    common = dict(
        epochs=2,
        batch_size=32,
        lr=0.05,
        schedule="cosine",
        crop_padding=1,
        hflip=True,
        progress=False,
        eval_every=1,
        num_threads=1,
        dist_timeout=30,
    )
    one = fit(MODEL, data, TrainConfig(out=str(tmp_path / "one"), **common))
    two = fit(MODEL, data, TrainConfig(out=str(tmp_path / "two"), nproc=2, **common))
    assert two["world_size"] == 2 and one["world_size"] == 1
    a = read_checkpoint(tmp_path / "one" / "last.pt")["model"]
    b = read_checkpoint(tmp_path / "two" / "last.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), (k, (a[k] - b[k]).abs().max())
    assert abs(one["final_top1"] - two["final_top1"]) <= 100.0 / len(data.y_test) + 1e-9
    assert two["steps"] == one["steps"] == 2 * (192 // 32)
