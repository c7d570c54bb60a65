"""Fine-tuning: --weights (a new head when the class count differs), --freeze (frozen parameters
and batch-norm statistics bitwise unchanged), a learning rate for the head and one for the rest,
and the payoff: a net pretrained on some digits learns the others faster than from scratch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from convnet.data import Dataset
from convnet.errors import ConvnetError
from convnet.models import create_model, load_weights_report
from convnet.train import TrainConfig, fit
from convnet.train.finetune import freeze, head_parameters
from convnet.train.optim import LRSchedule, build_optimizer


class Tiny(nn.Module):
    """features (conv, BN, ReLU, pool) and a classifier, as torchvision's AlexNet/VGG name them."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.classifier = nn.Linear(6 * 6 * 6, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def _tiny_data() -> Dataset:
    from test_train import tiny_data

    return tiny_data(n_train=64, n_test=16)


@pytest.mark.parametrize("prefixes", [("features",), ("all-but-head",)])
def test_frozen_parameters_and_batch_norm_statistics_stay_bitwise(prefixes):
    torch.manual_seed(0)
    model = Tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(
        epochs=1, batch_size=16, lr=0.1, weight_decay=0.05, ema=0.5, freeze=prefixes, progress=False
    )
    fit(model, _tiny_data(), cfg)
    after = model.state_dict()
    for k in before:  # weights, biases, running mean/var and the batch counter
        same = torch.equal(before[k], after[k])
        assert same == k.startswith("features."), k
    assert all(not p.requires_grad for p in model.features.parameters())


def test_freeze_keeps_frozen_parameters_out_of_the_optimizer():
    model = create_model("resnet18", num_classes=3)
    frozen = freeze(model, ["all-but-head"])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight", "fc.bias"} == head_parameters(model)
    assert len(frozen.norms) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 20
    optimizer = build_optimizer(model, TrainConfig())
    in_groups = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert in_groups == {id(model.fc.weight), id(model.fc.bias)}
    model = create_model("resnet18", num_classes=3)
    f = freeze(model, ["conv1", "bn1", "layer1"])
    n_layer1 = sum(p.numel() for p in model.layer1.parameters())
    assert f.fixed == 64 * 3 * 7 * 7 + 2 * 64 + n_layer1 and len(f.norms) == 1 + 4
    with pytest.raises(ConvnetError, match=r"'layer9' names no layer of ResNet.*layer1, layer2"):
        freeze(create_model("resnet18"), ["layer9"])
    with pytest.raises(ConvnetError, match="leaves no parameter of Tiny to train"):
        freeze(Tiny(), ["features", "classifier"])


def test_head_and_backbone_rates_are_param_groups_the_schedule_scales():
    model = Tiny()
    cfg = TrainConfig(lr=0.1, lr_backbone_mult=0.1, epochs=2, schedule="cosine")
    opt = build_optimizer(model, cfg)
    rates = {g["name"]: g["lr"] for g in opt.param_groups}
    assert rates == pytest.approx({"head": 0.1, "backbone": 0.01})
    (head,) = [g for g in opt.param_groups if g["name"] == "head"]
    assert {id(p) for p in head["params"]} == {id(p) for p in model.classifier.parameters()}
    schedule = LRSchedule(opt, cfg, steps_per_epoch=5)
    schedule.set(3)
    cosine = (1 + math.cos(math.pi * 3 / 10)) / 2  # step 3 of 2 x 5
    got = {g["name"]: g["lr"] for g in opt.param_groups}
    assert got == pytest.approx({"head": 0.1 * cosine, "backbone": 0.01 * cosine})
    opt = build_optimizer(
        model, TrainConfig(lr=0.1, lr_head=0.5, lr_backbone=0.02, no_decay_bn_bias=True)
    )
    got = {g["name"]: (g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert got == {
        "head": (0.5, 5e-4),
        "head-no-decay": (0.5, 0.0),
        "backbone": (0.02, 5e-4),
        "backbone-no-decay": (0.02, 0.0),
    }
    with pytest.raises(ConvnetError, match="lr_backbone=0.02: give it or lr_backbone_mult"):
        TrainConfig(lr_backbone=0.02, lr_backbone_mult=0.5)


def test_a_timm_style_file_loads_and_names_what_started_fresh(tmp_path):
    torch.manual_seed(0)
    source = Tiny(num_classes=6)
    path = tmp_path / "timm.pth"  # a training script's wrapper around DDP's keys
    wrapped = {f"module.{k}": v for k, v in source.state_dict().items()}
    torch.save({"state_dict": wrapped, "epoch": 3}, path)
    model = Tiny(num_classes=4)
    report = load_weights_report(model, str(path))
    assert report.fresh == ("classifier.weight", "classifier.bias")
    assert set(report.loaded) == set(source.state_dict()) - set(report.fresh)
    for k in report.loaded:
        assert torch.equal(model.state_dict()[k], source.state_dict()[k]), k
    assert "started fresh: classifier.weight, classifier.bias" in report.describe()


def _digits(classes: range, per_train: int, per_test: int) -> Dataset:
    """The bundled sample's first ``per_train`` / ``per_test`` images of each class in
    ``classes``, relabelled 0..len(classes)-1."""
    from convnet.data import load

    d = load("mnist-sample")

    def take(x, y, n):
        idx = torch.cat([torch.nonzero(y == c).flatten()[:n] for c in classes])
        return x[idx], y[idx] - classes[0]

    (xt, yt), (xs, ys) = take(d.x_train, d.y_train, per_train), take(d.x_test, d.y_test, per_test)
    return Dataset("digits", xt, yt, xs, ys, [str(c) for c in classes])


def test_a_net_pretrained_on_digits_0_to_5_learns_6_to_9_better_than_from_scratch(tmp_path):
    # conv features (strokes) carry over from one set of digits to another; the head has another
    # class count (6 -> 4), so it starts fresh. Fine-tuned and scratch runs see the same 36
    # images for the same 2 epochs (10 steps), with the same seed and rates.
    line = "INPUT -> [CONV3-16 -> RELU -> POOL2]*2 -> FC"
    pre = TrainConfig(out=str(tmp_path / "pre"), epochs=2, batch_size=20, lr=0.05, progress=False)
    assert fit(line, _digits(range(0, 6), 100, 20), pre)["test_top1"] > 70  # measured: 82.5%
    new = _digits(range(6, 10), 10, 100)
    cfg = TrainConfig(epochs=2, batch_size=8, lr=0.05, schedule="cosine", progress=False)
    tuned = fit(line, new, cfg.replace(weights=str(tmp_path / "pre" / "best.pt")))
    scratch = fit(line, new, cfg)
    # measured: 65.75% vs 49.75% (seed 0); seeds 1 and 2 gave 79.25 vs 49.25 and 74.75 vs 26.5
    assert tuned["test_top1"] >= scratch["test_top1"] + 10, (tuned["test_top1"], scratch)


def test_a_torchvision_resnet18_file_fine_tunes_from_the_cli(tmp_path, cli):
    from PIL import Image
    from safetensors.torch import save_file

    from convnet.train import read_checkpoint

    torch.manual_seed(0)
    state = create_model("resnet18").state_dict()  # torchvision's keys, 1000 classes
    weights = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    g = torch.Generator().manual_seed(0)
    for k, name in enumerate(("red", "blue")):  # 32x32 pictures, one colour per class
        (tmp_path / "images" / name).mkdir(parents=True)
        for i in range(5):
            pixels = torch.randint(0, 60, (32, 32, 3), generator=g, dtype=torch.uint8)
            pixels[..., 2 * k] += 180
            Image.fromarray(pixels.numpy()).save(tmp_path / "images" / name / f"{i}.png")
    argv = ("train", "resnet18", "--data", tmp_path / "images", "--weights", weights)
    code, out, err = cli(
        *argv, "--freeze", "layer1", "--epochs", "1", "--batch", "4", "-o", tmp_path / "run"
    )
    assert code == 0, err
    loaded = len(state) - 2  # every tensor of the file but the 1000-class head
    assert (
        f"weights: loaded {loaded} tensors from {weights}; started fresh: fc.weight, fc.bias" in out
    )
    assert "froze layer1" in out and "learning rates: head 0.01, backbone 0.001" in out
    saved = read_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["config"]["lr_backbone_mult"] == 0.1  # the finetune recipe, chosen by --weights
    trained = saved["model"]
    assert trained["fc.weight"].shape == (2, 512)
    for k, v in state.items():
        if k.startswith("layer1."):  # frozen: weights and batch-norm statistics as in the file
            assert torch.equal(trained[k], v), k
    assert not torch.equal(trained["conv1.weight"], state["conv1.weight"])
