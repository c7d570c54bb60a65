"""torchvision-format weight files load unchanged: state dicts written here in torchvision's key
layout (names and shapes typed in from torchvision's published architectures) load into our models."""

import pytest
import torch

import convnet
from convnet.errors import WeightsError
from convnet.io import save_tensors
from convnet.models import create_model, get_card, list_models


def _resnet18_layout() -> dict[str, tuple[int, ...]]:
    """torchvision resnet18's state-dict keys and shapes (without num_batches_tracked)."""
    convs: list[tuple[str, tuple[int, ...]]] = [("conv1", (64, 3, 7, 7))]
    bns: list[tuple[str, int]] = [("bn1", 64)]
    # (stage, block): (in, out, has downsample)
    blocks = {
        ("layer1", 0): (64, 64, False),
        ("layer1", 1): (64, 64, False),
        ("layer2", 0): (64, 128, True),
        ("layer2", 1): (128, 128, False),
        ("layer3", 0): (128, 256, True),
        ("layer3", 1): (256, 256, False),
        ("layer4", 0): (256, 512, True),
        ("layer4", 1): (512, 512, False),
    }
    for (stage, i), (cin, cout, down) in blocks.items():
        p = f"{stage}.{i}"
        convs += [(f"{p}.conv1", (cout, cin, 3, 3)), (f"{p}.conv2", (cout, cout, 3, 3))]
        bns += [(f"{p}.bn1", cout), (f"{p}.bn2", cout)]
        if down:
            convs.append((f"{p}.downsample.0", (cout, cin, 1, 1)))
            bns.append((f"{p}.downsample.1", cout))
    layout = {f"{name}.weight": shape for name, shape in convs}
    for name, c in bns:
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{name}.{suffix}"] = (c,)
    layout["fc.weight"] = (1000, 512)
    layout["fc.bias"] = (1000,)
    return layout


# Spot checks of torchvision's names and shapes for every torchvision-compatible family.
TORCHVISION_KEYS = {
    "alexnet": {"features.0.weight": (64, 3, 11, 11), "features.10.weight": (256, 256, 3, 3), "classifier.1.weight": (4096, 9216), "classifier.6.weight": (1000, 4096)},
    "vgg16": {"features.0.weight": (64, 3, 3, 3), "features.28.weight": (512, 512, 3, 3), "classifier.0.weight": (4096, 25088), "classifier.6.bias": (1000,)},
    "vgg16_bn": {"features.1.running_var": (64,), "features.40.weight": (512, 512, 3, 3), "classifier.3.weight": (4096, 4096)},
    "resnet50": {"layer1.0.downsample.0.weight": (256, 64, 1, 1), "layer4.2.conv3.weight": (2048, 512, 1, 1), "fc.weight": (1000, 2048)},
    "resnet152": {"layer3.35.bn3.running_mean": (1024,), "layer2.7.conv2.weight": (128, 128, 3, 3)},
    "resnext50_32x4d": {"layer1.0.conv2.weight": (128, 4, 3, 3), "layer4.0.conv2.weight": (1024, 32, 3, 3)},
    "wide_resnet50_2": {"layer1.0.conv1.weight": (128, 64, 1, 1), "layer4.0.conv2.weight": (1024, 1024, 3, 3)},
    "googlenet": {"conv1.conv.weight": (64, 3, 7, 7), "conv1.bn.running_var": (64,), "inception3a.branch3.1.conv.weight": (32, 16, 3, 3), "inception5b.branch4.1.bn.weight": (128,), "aux1.conv.conv.weight": (128, 512, 1, 1), "aux2.fc1.weight": (1024, 2048), "fc.weight": (1000, 1024)},
    "squeezenet1_0": {"features.0.weight": (96, 3, 7, 7), "features.3.squeeze.weight": (16, 96, 1, 1), "features.12.expand3x3.weight": (256, 64, 3, 3), "classifier.1.weight": (1000, 512, 1, 1)},
    "squeezenet1_1": {"features.0.weight": (64, 3, 3, 3), "features.12.expand1x1.bias": (256,)},
    "densenet121": {"features.conv0.weight": (64, 3, 7, 7), "features.denseblock1.denselayer1.conv1.weight": (128, 64, 1, 1), "features.denseblock4.denselayer16.conv2.weight": (32, 128, 3, 3), "features.transition3.conv.weight": (512, 1024, 1, 1), "features.norm5.weight": (1024,), "classifier.weight": (1000, 1024)},
    "densenet161": {"features.conv0.weight": (96, 3, 7, 7), "features.denseblock1.denselayer1.conv1.weight": (192, 96, 1, 1), "classifier.weight": (1000, 2208)},
    "densenet169": {"features.norm5.weight": (1664,)},
    "densenet201": {"features.norm5.weight": (1920,)},
    # more of these four in tests/test_zoo_new.py
    "inception_v3": {"Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7), "AuxLogits.fc.weight": (1000, 768)},
    "resnext101_64x4d": {"layer1.0.conv2.weight": (256, 4, 3, 3)},
}  # fmt: skip

# torchvision's densenet121 file spells the dense layers' submodules the legacy way.
DENSENET121_LEGACY = {
    "features.denseblock1.denselayer1.norm.1.weight": (64,),
    "features.denseblock1.denselayer1.norm.1.running_var": (64,),
    "features.denseblock1.denselayer1.conv.1.weight": (128, 64, 1, 1),
    "features.denseblock1.denselayer1.norm.2.bias": (128,),
    "features.denseblock1.denselayer1.conv.2.weight": (32, 128, 3, 3),
    "features.denseblock3.denselayer24.norm.1.weight": (992,),
    "features.denseblock4.denselayer16.conv.1.weight": (128, 992, 1, 1),
    "features.transition1.norm.weight": (256,),  # transitions were never renamed
    "features.transition1.conv.weight": (128, 256, 1, 1),
}


def _random_state(layout: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.rand(shape, generator=g) + 0.5 for k, shape in layout.items()}


def test_resnet18_keys_are_exactly_torchvision(tmp_path):
    layout = _resnet18_layout()
    with torch.device("meta"):
        own = create_model("resnet18").state_dict()
    own = {k: tuple(v.shape) for k, v in own.items() if not k.endswith("num_batches_tracked")}
    assert own == layout
    state = _random_state(layout)  # a file without num_batches_tracked, as torchvision's are
    save_tensors(tmp_path / "resnet18.safetensors", state)
    model = create_model("resnet18", weights=str(tmp_path / "resnet18.safetensors"))
    for k, v in state.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_resnet18_pth_with_ddp_prefix_and_new_head(tmp_path, capsys):
    state = {f"module.{k}": v for k, v in _random_state(_resnet18_layout()).items()}
    torch.save(state, tmp_path / "ddp.pth")
    model = create_model("resnet18", num_classes=10, weights=str(tmp_path / "ddp.pth"))
    assert torch.equal(model.layer4[1].conv2.weight, state["module.layer4.1.conv2.weight"])
    assert model.fc.weight.shape == (10, 512)
    assert "fine-tuning" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(TORCHVISION_KEYS))
def test_torchvision_key_spot_checks(name):
    assert get_card(name).torchvision_keys
    with torch.device("meta"):
        own = create_model(name).state_dict()
    for key, shape in TORCHVISION_KEYS[name].items():
        assert key in own, key
        assert tuple(own[key].shape) == shape, key


def test_every_torchvision_family_is_spot_checked():
    flagged = {n for n in list_models() if get_card(n).torchvision_keys}
    families = {get_card(n).family for n in flagged}
    assert families == {get_card(n).family for n in TORCHVISION_KEYS}
    # alexnet, 8 vgg, 5 resnet, 3 resnext, 2 wide_resnet, googlenet, 4 densenet, 2 squeezenet,
    # inception_v3
    assert len(flagged) == 1 + 8 + 5 + 3 + 2 + 1 + 4 + 2 + 1


def _to_legacy(key: str) -> str:
    """What torchvision's old DenseNet files call a key: denselayerN.norm1 -> denselayerN.norm.1."""
    parts = key.split(".")
    if len(parts) > 2 and parts[-3].startswith("denselayer") and parts[-2][:-1] in ("norm", "conv"):
        parts[-2] = parts[-2][:-1] + "." + parts[-2][-1]
    return ".".join(parts)


def test_densenet121_legacy_file_loads(tmp_path):
    src = create_model("densenet121")
    state = {
        _to_legacy(k): v + 0.25
        for k, v in src.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    for key, shape in DENSENET121_LEGACY.items():
        assert tuple(state[key].shape) == shape, key
    assert not any(".norm1." in k or ".conv2." in k for k in state)
    save_tensors(tmp_path / "densenet121.safetensors", state)
    model = convnet.create_model("densenet121", weights=str(tmp_path / "densenet121.safetensors"))
    own = model.state_dict()
    torch.testing.assert_close(
        own["features.denseblock1.denselayer1.norm1.weight"],
        state["features.denseblock1.denselayer1.norm.1.weight"],
    )
    for k, v in src.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            torch.testing.assert_close(own[k], v + 0.25)


def test_wrong_architecture_file_is_one_clear_error(tmp_path):
    save_tensors(tmp_path / "r18.safetensors", _random_state(_resnet18_layout()))
    # resnet50's bottlenecks: its conv3/bn3 keys are missing from the file, and where names
    # coincide the shapes conflict (layer1.0.conv1 is 3x3 in resnet18, 1x1 in resnet50)
    pattern = r"does not fit ResNet: missing \d+ keys \(layer1.0.conv3.weight.*; shape conflicts \(layer1.0.conv1.weight: file \(64, 64, 3, 3\) vs model \(64, 64, 1, 1\)"
    with pytest.raises(WeightsError, match=pattern):
        create_model("resnet50", weights=str(tmp_path / "r18.safetensors"))


def test_googlenet_file_with_aux_heads_loads_without_them(tmp_path):
    src = create_model("googlenet")
    state = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert "aux1.fc2.weight" in state
    save_tensors(tmp_path / "googlenet.safetensors", state)
    model = create_model(
        "googlenet", aux_logits=False, weights=str(tmp_path / "googlenet.safetensors")
    )
    assert model.aux1 is None
    assert torch.equal(model.inception5b.branch1.conv.weight, src.inception5b.branch1.conv.weight)


def test_googlenet_fine_tuning_reinitializes_all_three_heads(tmp_path, capsys):
    src = create_model("googlenet")
    save_tensors(tmp_path / "g.safetensors", src.state_dict())
    model = create_model("googlenet", num_classes=10, weights=str(tmp_path / "g.safetensors"))
    assert model.fc.weight.shape == (10, 1024) and model.aux2.fc2.weight.shape == (10, 1024)
    assert torch.equal(model.aux1.fc1.weight, src.aux1.fc1.weight)  # only the class layers differ
    err = capsys.readouterr().err
    assert "fine-tuning" in err and "aux1.fc2.weight" in err
