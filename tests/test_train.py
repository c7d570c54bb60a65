"""Trainer: recipes, schedules against torch's schedulers, the loader, a tiny end-to-end run."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from convnet.data import Dataset
from convnet.errors import ConvnetError, TrainingError
from convnet.train import RECIPES, TrainConfig, fit, load_checkpoint, recipe
from convnet.train.loader import Loader
from convnet.train.optim import EMA, LRSchedule, build_optimizer


def tiny_data(
    n_train: int = 256, n_test: int = 64, size: int = 12, classes: int = 4, seed: int = 0
) -> Dataset:
    """Learnable synthetic images: class k is a bright square in quadrant k, plus noise."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        y = torch.randint(0, classes, (n,), generator=g)
        x = torch.randint(0, 60, (n, 1, size, size), generator=g)
        h = size // 2
        for k in range(classes):
            r, c = divmod(k, 2)
            x[y == k, :, r * h : r * h + h, c * h : c * h + h] += 150
        return x.clamp(0, 255).to(torch.uint8), y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return Dataset("tiny", xtr, ytr, xte, yte, [f"q{k}" for k in range(classes)])


TINY = "INPUT -> CONV3-8 -> RELU -> POOL2 -> FC-4"


def test_recipes_hold_the_notes_values():
    a, r, g = RECIPES["alexnet"], RECIPES["resnet"], RECIPES["googlenet"]
    assert (a["momentum"], a["lr"], a["weight_decay"], a["batch_size"], a["gamma"]) == (
        0.9,
        1e-2,
        5e-4,
        128,
        0.1,
    )
    assert a["schedule"] == "plateau"
    assert (r["momentum"], r["lr"], r["weight_decay"], r["batch_size"], r["schedule"]) == (
        0.9,
        0.1,
        1e-5,
        256,
        "plateau",
    )
    assert g["aux_weight"] == 0.3
    assert set(RECIPES) >= {"alexnet", "vgg", "resnet", "googlenet", "cifar-resnet", "lenet"}
    assert recipe("resnet", lr=0.05).lr == 0.05 and recipe("resnet", lr=0.05).weight_decay == 1e-5
    with pytest.raises(ConvnetError, match="no field"):
        recipe("resnet", learning_rate=0.1)
    with pytest.raises(ConvnetError, match="schedule"):
        TrainConfig(schedule="linear")


def _torch_lrs(sched_fn, steps, lr=0.1):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sch = sched_fn(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return out


def _ours(cfg, steps_per_epoch, steps):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=cfg.lr)
    s = LRSchedule(opt, cfg, steps_per_epoch)
    return [s.set(t) for t in range(steps)]


@pytest.mark.parametrize("kind", ["onecycle", "cosine", "multistep", "step"])
def test_schedules_match_torch(kind):
    spe, epochs = 7, 6
    total = spe * epochs
    cfg = TrainConfig(
        lr=0.1, epochs=epochs, schedule=kind, milestones=(2, 5), step_size=2, gamma=0.1
    )
    ours = _ours(cfg, spe, total)
    L = torch.optim.lr_scheduler
    ref = {
        "onecycle": lambda o: L.OneCycleLR(
            o, max_lr=0.1, total_steps=total, pct_start=0.25, cycle_momentum=False
        ),
        "cosine": lambda o: L.CosineAnnealingLR(o, T_max=total),
        "multistep": lambda o: L.MultiStepLR(o, milestones=[2 * spe, 5 * spe], gamma=0.1),
        "step": lambda o: L.StepLR(o, step_size=2 * spe, gamma=0.1),
    }[kind]
    assert ours == pytest.approx(_torch_lrs(ref, total), rel=1e-9, abs=1e-12)


def test_warmup_and_plateau():
    cfg = TrainConfig(lr=1.0, epochs=10, schedule="plateau", patience=1, warmup_epochs=1)
    p = nn.Parameter(torch.zeros(1))
    s = LRSchedule(torch.optim.SGD([p], lr=1.0), cfg, 4)
    assert [s.set(t) for t in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    for acc in (50, 60, 60, 60):  # best 60 at epoch 2; two epochs without improvement > patience 1
        s.epoch_end(acc)
    assert s.set(10) == pytest.approx(0.1)


def test_no_decay_on_bn_and_bias():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    opt = build_optimizer(model, TrainConfig(weight_decay=1e-3, no_decay_bn_bias=True))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight)}


def test_ema_follows_formula():
    m = nn.Linear(2, 1)
    ema = EMA(m, decay=0.9)
    w0 = m.weight.detach().clone()
    with torch.no_grad():
        m.weight.add_(1.0)
    ema.update(m)
    d = min(0.9, 2 / 11)
    assert torch.allclose(ema.module.weight, d * w0 + (1 - d) * m.weight)


def test_loader_shards_cover_the_global_batch():
    x = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 4, 4).contiguous()
    y = torch.arange(40)
    kw = dict(batch_size=8, input_size=(1, 4, 4), mean=(0.0,), std=(1.0,), train=True, seed=3)
    one = [yb for _, _, yb in Loader(x, y, **kw).batches(2)]
    two = [[yb for _, _, yb in Loader(x, y, rank=r, world=2, **kw).batches(2)] for r in range(2)]
    for k, b in enumerate(one):
        assert torch.equal(torch.cat([two[0][k], two[1][k]]), b)
    assert sorted(torch.cat(one).tolist()) == list(range(40))
    assert not torch.equal(
        torch.cat(one), torch.cat([yb for _, _, yb in Loader(x, y, **kw).batches(3)])
    )
    resumed = [yb for _, _, yb in Loader(x, y, **kw).batches(2, start=3)]
    assert all(torch.equal(a, b) for a, b in zip(resumed, one[3:]))


def test_aux_logits_weighted(tmp_path):
    from convnet.train.loop import training_loss

    y = torch.tensor([0, 1, 2])
    main, a1, a2 = torch.randn(3, 3), torch.randn(3, 3), torch.randn(3, 3)
    cfg = TrainConfig(aux_weight=0.3)
    expect = F.cross_entropy(main, y) + 0.3 * (F.cross_entropy(a1, y) + F.cross_entropy(a2, y))
    from collections import namedtuple

    Out = namedtuple("Out", "logits aux2 aux1")
    for out in ((main, a1, a2), Out(main, a1, a2), {"logits": main, "aux1": a1, "aux2": a2}):
        loss, logits = training_loss(out, y, cfg)
        assert torch.allclose(loss, expect) and logits is main


def test_fit_writes_the_run_folder_and_learns(tmp_path):
    data = tiny_data()
    cfg = TrainConfig(
        out=str(tmp_path / "run"),
        epochs=3,
        batch_size=32,
        lr=0.05,
        schedule="onecycle",
        progress=False,
    )
    r = fit(TINY, data, cfg)
    run = tmp_path / "run"
    for f in (
        "config.json",
        "metrics.jsonl",
        "metrics.csv",
        "curves.png",
        "result.json",
        "last.pt",
        "best.pt",
        "confusion.json",
    ):
        assert (run / f).is_file(), f
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in records] == [1, 2, 3]
    assert set(records[0]) >= {
        "epoch",
        "step",
        "lr",
        "train_loss",
        "train_top1",
        "val_loss",
        "val_top1",
        "val_top5",
        "seconds",
        "images_per_second",
    }
    res = json.loads((run / "result.json").read_text())
    assert set(res) >= {"val_top1", "test_top1", "test_top5", "epochs", "seconds"}
    assert r["test_top1"] > 90 and r["checkpoint"] == "best"
    # the test score is best.pt's: an independent accuracy computation on the test split agrees
    model, info = load_checkpoint(run / "best.pt")
    assert not model.training and info["classes"] == data.classes
    assert info["epoch"] == r["best_epoch"] and info["best_top1"] == r["val_top1"]
    mean, std = info["mean"][0], info["std"][0]
    with torch.no_grad():
        pred = model((data.x_test.float() / 255 - mean) / std).argmax(1)
    assert 100.0 * float((pred == data.y_test).float().mean()) == pytest.approx(r["test_top1"])
    conf = json.loads((run / "confusion.json").read_text())
    assert conf["split"] == "test" and sum(map(sum, conf["confusion"])) == len(data.y_test)
    with pytest.raises(ConvnetError, match="--resume"):
        fit(TINY, data, cfg)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    data = tiny_data()
    # epoch 1 trains at lr 0.05 (8 steps of 32, all 256 images: no validation split); epoch 2
    # multiplies it by 1e12 and the loss overflows
    cfg = TrainConfig(
        out=str(tmp_path),
        val_split=0,
        epochs=3,
        batch_size=32,
        lr=0.05,
        schedule="multistep",
        milestones=(1,),
        gamma=1e12,
        momentum=0.0,
        weight_decay=0.0,
        progress=False,
    )
    with pytest.raises(TrainingError, match=r"non-finite at step (\d+) \(epoch 2, lr 5e\+10\)"):
        fit(TINY, data, cfg)
    model, info = load_checkpoint(tmp_path / "last.pt")
    assert info["epoch"] == 1 and info["step"] == 8
    assert all(torch.isfinite(p).all() for p in model.parameters())


# the warning on a CPU without a bf16 path is the next test's subject
@pytest.mark.filterwarnings("ignore:bf16 has no fast path:UserWarning")
def test_bf16_and_channels_last_run(tmp_path):
    r = fit(
        TINY,
        tiny_data(),
        TrainConfig(
            epochs=1, batch_size=32, precision="bf16", channels_last=True, progress=False, ema=0.99
        ),
    )
    assert r["out"] is None and math.isfinite(r["test_loss"])


def test_bf16_on_a_cpu_without_a_fast_path_says_so(monkeypatch):
    """An explicit bf16 on a CPU where bf16 does not run at speed still autocasts (the user
    asked), with one warning that names the faster choice; auto never picks bf16 on a CPU."""
    import warnings

    from convnet.train import distributed as D

    cpu = torch.device("cpu")
    monkeypatch.setattr(D, "bf16_pays", lambda device: False)
    with pytest.warns(UserWarning, match="--precision fp32"):
        assert isinstance(D.autocast_for("bf16", cpu), torch.autocast)
    monkeypatch.setattr(D, "bf16_pays", lambda device: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(D.autocast_for("bf16", cpu), torch.autocast)
        assert not isinstance(D.autocast_for("auto", cpu), torch.autocast)


@pytest.mark.skipif(
    not Path("/proc/cpuinfo").is_file() or os.uname().machine != "x86_64", reason="x86 Linux"
)
def test_bf16_pays_on_a_cpu_exactly_with_avx512():
    """oneDNN's bf16 path needs AVX-512 (BW, VL, DQ); without it a bf16 GEMM falls back to a
    reference loop. The CPU's flags, read independently of torch, decide."""
    from convnet.train.distributed import bf16_pays

    line = next(x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("flags"))
    flags = set(line.split(":", 1)[1].split())
    assert bf16_pays(torch.device("cpu")) == ({"avx512bw", "avx512vl", "avx512dq"} <= flags)


def test_a_model_ending_in_softmax_trains_and_predicts_on_its_scores(tmp_path):
    # "FC -> SOFTMAX": the loss is the cross-entropy of the scores under the softmax (the NLL of
    # its output), and predicted probabilities are its output, not a second softmax of it
    from convnet.models.outputs import output_kind
    from convnet.notation import build
    from convnet.train.evaluate import predict_probs
    from convnet.train.loop import training_loss

    torch.manual_seed(0)
    net = build(TINY + " -> SOFTMAX", num_classes=4, input_size=(1, 12, 12))
    assert output_kind(net) == "probs" and output_kind(net[:-1]) == "scores"
    assert output_kind(nn.Sequential(net[:-1], nn.LogSoftmax(1))) == "log_probs"
    x, y = torch.randn(5, 1, 12, 12), torch.tensor([0, 1, 2, 3, 0])
    scores = net[:-1](x)
    loss, _ = training_loss(net(x), y, TrainConfig(), output_kind(net))
    assert torch.allclose(loss, F.cross_entropy(scores, y), atol=1e-6)
    probs = predict_probs(net, x, None)
    assert torch.allclose(probs, scores.softmax(1), atol=1e-6)
    # and fit() learns the same as without the softmax layer, step for step
    runs = []
    for line in (TINY, TINY + " -> SOFTMAX"):
        torch.manual_seed(0)
        cfg = TrainConfig(
            out=str(tmp_path / str(len(runs))), epochs=2, batch_size=32, lr=0.05, progress=False
        )
        runs.append(fit(line, tiny_data(), cfg))
    assert runs[1]["test_top1"] == runs[0]["test_top1"] > 50


def test_resume_refuses_a_changed_batch_and_warns_about_a_changed_lr(tmp_path):
    import warnings

    data = tiny_data()

    def cfg(**kw):
        base = dict(out=str(tmp_path / "run"), epochs=1, batch_size=32, lr=0.05, progress=False)
        return TrainConfig(**{**base, **kw})

    fit(TINY, data, cfg())
    from pathlib import Path

    from convnet.train.loop import _check_resume

    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same settings resume silently
        _check_resume(saved, dict(saved), Path(tmp_path))
    with pytest.raises(ConvnetError, match=r"batch_size 32 -> 64"):
        fit(TINY, data, cfg(batch_size=64), resume=True)
    with pytest.warns(UserWarning, match=r"changed settings: epochs 1 -> 2, lr 0.05 -> 0.02"):
        fit(TINY, data, cfg(epochs=2, lr=0.02), resume=True)


@pytest.mark.parametrize(
    "field, value",
    [
        ("crop_padding", -2),
        ("cutout", -1),
        ("momentum", 1.0),
        ("weight_decay", -1e-4),
        ("clip_grad", -1.0),
        ("gamma", 0.0),
        ("eval_every", 0),
        ("eval_batch_size", 0),
        ("dist_timeout", 0.0),
    ],
)
def test_config_refuses_values_that_cannot_work(field, value):
    with pytest.raises(ConvnetError, match=rf"^training config: {field}={value}"):
        TrainConfig(**{field: value})


def test_numpy_engine_refuses_resume(cli):
    code, _, err = cli("train", "lenet5", "--engine", "numpy", "--resume", "--out", "nowhere")
    assert code == 2 and err.strip().splitlines() == [
        "convnet train: error: --resume continues a PyTorch run from its checkpoint; --engine "
        "numpy keeps no checkpoints to resume from, so run it again without --resume"
    ]


def test_training_loss_counts_auxiliary_heads():
    """GoogLeNet-style AuxOutputs: L = CE(main) + w * sum_i CE(aux_i), by hand."""
    from convnet.models.outputs import AuxOutputs
    from convnet.train.loop import training_loss

    g = torch.Generator().manual_seed(0)
    main, a1, a2 = (torch.randn(4, 5, generator=g) for _ in range(3))
    y = torch.tensor([0, 1, 2, 3])
    cfg = TrainConfig(aux_weight=0.3, label_smoothing=0.0)
    loss, logits = training_loss(AuxOutputs(main, (a1, a2), 0.3), y, cfg)
    expected = F.cross_entropy(main, y) + 0.3 * (F.cross_entropy(a1, y) + F.cross_entropy(a2, y))
    assert torch.allclose(loss, expected) and logits is main


def test_plain_nets_train_with_their_resnet_twins_recipe():
    from convnet.train.config import recipe_for_model

    assert recipe_for_model("plain56") == recipe_for_model("resnet56") == "cifar-resnet"
    assert recipe_for_model("plain34") == recipe_for_model("resnet34") == "resnet"
