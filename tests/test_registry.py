"""The registry, safe weight loading and the CLI's error contract."""

import pytest
import torch

import convnet
from convnet.errors import ConvnetError, WeightsError


def test_unknown_model_suggests_close_names():
    with pytest.raises(ConvnetError, match=r"did you mean .*vgg16"):
        convnet.create_model("vgg61")


def test_list_models_glob_and_substring():
    assert "vgg16" in convnet.list_models("vgg*")
    assert set(convnet.list_models("bn")) >= {"vgg11_bn", "vgg16_bn"}


def test_weights_roundtrip_safetensors_and_pth(tmp_path):
    from convnet.io import save_tensors

    src = convnet.create_model("lenet5")
    for name in ("w.safetensors", "w.pth"):
        save_tensors(tmp_path / name, src.state_dict())
        dst = convnet.create_model("lenet5", weights=str(tmp_path / name))
        for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
            assert torch.equal(a, b), k


def test_weights_never_unpickle_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, path)
    with pytest.raises(WeightsError, match="weights_only"):
        convnet.create_model("lenet5", weights=str(path))


def test_weights_mismatch_lists_keys(tmp_path):
    from convnet.io import save_tensors

    state = convnet.create_model("lenet5").state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["features.0.bias"]
    save_tensors(tmp_path / "w.safetensors", state)
    with pytest.raises(
        WeightsError,
        match=r"missing 1 keys \(features.0.bias\).*unexpected 1 keys \(extra.weight\)",
    ):
        convnet.create_model("lenet5", weights=str(tmp_path / "w.safetensors"))


def test_head_reinitialized_for_other_num_classes(tmp_path, capsys):
    from convnet.io import save_tensors

    src = convnet.create_model("lenet5", num_classes=10)
    save_tensors(
        tmp_path / "w.safetensors", {f"module.{k}": v for k, v in src.state_dict().items()}
    )
    dst = convnet.create_model("lenet5", num_classes=5, weights=str(tmp_path / "w.safetensors"))
    assert torch.equal(dst.features[0].weight, src.features[0].weight)
    assert dst.classifier[-1].weight.shape == (5, 84)
    assert "fine-tuning" in capsys.readouterr().err


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    from convnet.io import atomic_open

    target = tmp_path / "f.txt"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write("half")
        raise RuntimeError("crash")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
