"""A checkpoint never runs code: a model recorded as ``file.py:Name`` is built only when the user
names the file again, and only while its sha256 is the recorded one.

The checkpoints are written directly with convnet's ``save_checkpoint`` (no training); the
model file writes a marker file when it is imported, so "no code ran" is observable.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn as nn

from convnet.errors import CheckpointError
from convnet.train import load_checkpoint
from convnet.train.checkpoint import save_checkpoint

CLASSES = ["a", "b", "c"]

# The user's model file. Importing it leaves MARKER beside it: the proof that it ran.
MODEL_FILE = """
from pathlib import Path

import torch.nn as nn

Path(__file__).with_name("MARKER").write_text("imported")


class Net(nn.Sequential):
    def __init__(self, num_classes=3, in_chans=1):
        super().__init__(
            nn.Conv2d(in_chans, 4, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4, num_classes),
        )
"""


def same_net() -> nn.Module:
    """The network MODEL_FILE defines, built here without importing the file."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )


def make_run(folder, file_as_recorded: str, with_source: bool = True):
    """A run folder holding net.py (or the recorded file name) and best.pt trained "from" it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file_as_recorded.rpartition("/")[2]
    path.write_text(MODEL_FILE)
    torch.manual_seed(0)
    net = same_net()
    spec = {
        "model": f"{file_as_recorded}:Net",
        "num_classes": 3,
        "in_chans": 1,
        "input_size": [1, 8, 8],
        "data_size": [8, 8],
        "classes": CLASSES,
        "mean": [0.5],
        "std": [0.25],
    }
    if with_source:
        spec["source"] = {
            "file": file_as_recorded,
            "abspath": str(path.resolve()),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "name": "Net",
        }
    save_checkpoint(folder / "best.pt", {"spec": spec, "model": net.state_dict()})
    return folder / "best.pt", path, net


@pytest.fixture
def run(tmp_path):
    return make_run(tmp_path / "run", str(tmp_path / "run" / "net.py"))


def one_line_refusal(code: int, err: str, marker) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "--model" in err and "net.py:Net" in err, err
    assert not marker.exists(), "the checkpoint's model file was imported"


@pytest.mark.parametrize(
    "argv",
    [
        ("eval", "{ckpt}", "--data", "mnist-sample"),
        ("predict", "{ckpt}", "{image}"),
        ("viz", "filters", "{ckpt}", "-o", "{tmp}/f"),
        ("surgery", "{ckpt}"),
        ("report", "{folder}"),
    ],
    ids=["eval", "predict", "viz", "surgery", "report"],
)
def test_commands_refuse_to_import_a_checkpoints_model_file(cli, run, tmp_path, argv):
    ckpt, model_file, _ = run
    image = tmp_path / "x.png"
    _png(image)
    names = {"ckpt": ckpt, "image": image, "tmp": tmp_path, "folder": ckpt.parent}
    code, _, err = cli(*(a.format(**names) for a in argv))
    one_line_refusal(code, err, model_file.with_name("MARKER"))


def test_load_checkpoint_refuses_too(run):
    ckpt, model_file, _ = run
    for target in (ckpt, ckpt.parent):  # the file and its run folder
        with pytest.raises(CheckpointError, match="never runs code") as e:
            load_checkpoint(target)
        assert "\n" not in str(e.value) and "model='" in str(e.value)
    assert not model_file.with_name("MARKER").exists()


def test_a_relative_path_in_the_run_folder_is_refused(cli, tmp_path, monkeypatch):
    # `cd shared_run && convnet eval best.pt` used to import shared_run/helpers.py
    folder = tmp_path / "shared_run"
    for with_source in (True, False):  # also a checkpoint from before sources were recorded
        ckpt, model_file, _ = make_run(folder, "helpers.py", with_source=with_source)
        monkeypatch.chdir(folder)
        code, _, err = cli("eval", "best.pt", "--data", "mnist-sample")
        assert code == 2 and err.count("\n") == 1 and "--model helpers.py:Net" in err, err
        assert not (folder / "MARKER").exists()


def test_a_recorded_path_is_never_followed(tmp_path):
    # a hand-made spec naming another checkpoint is refused, not loaded as one
    other, _, net = make_run(tmp_path / "other", str(tmp_path / "other" / "net.py"))
    spec = {"model": str(other), "num_classes": 3, "in_chans": 1, "input_size": [1, 8, 8]}
    save_checkpoint(tmp_path / "x.pt", {"spec": spec, "model": net.state_dict()})
    with pytest.raises(CheckpointError, match="neither a zoo name nor a pattern line"):
        load_checkpoint(tmp_path / "x.pt")


def test_naming_the_file_again_loads_it(cli, run, tmp_path):
    ckpt, model_file, net = run
    model, info = load_checkpoint(ckpt, model=f"{model_file}:Net")
    assert model_file.with_name("MARKER").exists()  # the user named it: it may run
    want = net.state_dict()
    assert all(torch.equal(model.state_dict()[k], want[k]) for k in want)
    assert info["classes"] == CLASSES and info["source"]["name"] == "Net"

    image = tmp_path / "x.png"
    pixels = _png(image)
    code, out, err = cli("predict", ckpt, image, "--top", "1", "--model", f"{model_file}:Net")
    assert code == 0, err
    with torch.no_grad():  # the same net on the same normalized pixels, computed here
        x = (torch.from_numpy(pixels).float() / 255 - 0.5) / 0.25
        p = net(x[None, None]).softmax(1)[0]
    best = int(p.argmax())
    assert out.split()[1] == CLASSES[best]
    assert float(out.split()[2].rstrip("%")) == pytest.approx(100 * float(p[best]), abs=0.01)

    code, out, err = cli(
        "viz", "filters", ckpt, "--model", f"{model_file}:Net", "-o", tmp_path / "f"
    )
    assert code == 0 and (tmp_path / "f.png").is_file(), err


def test_a_changed_file_is_refused_before_it_runs(cli, run):
    ckpt, model_file, _ = run
    model_file.write_text(MODEL_FILE + "\n# edited\n")
    with pytest.raises(CheckpointError, match="has changed since the checkpoint") as e:
        load_checkpoint(ckpt, model=f"{model_file}:Net")
    assert "\n" not in str(e.value)
    code, _, err = cli("surgery", ckpt, "--model", f"{model_file}:Net")
    assert code == 2 and err.count("\n") == 1 and "sha256" in err, err
    assert not model_file.with_name("MARKER").exists()


def test_model_is_only_for_checkpoints(cli):
    code, _, err = cli("viz", "filters", "lenet5", "--model", "net.py:Net")
    assert code == 2 and err.count("\n") == 1 and "not a checkpoint" in err, err


def _png(path) -> np.ndarray:
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def test_a_run_trained_from_a_file_records_it_and_needs_it_named(tmp_path):
    # end to end: the loop stores the resolver's model_source as spec["source"]
    from convnet.train import TrainConfig, fit, read_checkpoint
    from test_train import tiny_data

    model_file = tmp_path / "net.py"
    model_file.write_text(MODEL_FILE)
    out = tmp_path / "run"
    cfg = TrainConfig(out=str(out), epochs=1, batch_size=32, lr=0.05, progress=False)
    fit(f"{model_file}:Net", tiny_data(n_train=64, n_test=32), cfg)
    source = read_checkpoint(out / "last.pt")["spec"]["source"]
    assert source["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert (source["file"], source["name"]) == (str(model_file), "Net")
    model_file.with_name("MARKER").unlink()  # training imported it, as it should
    with pytest.raises(CheckpointError, match="never runs code"):
        load_checkpoint(out)
    assert not model_file.with_name("MARKER").exists()
    model, info = load_checkpoint(out, model=f"{model_file}:Net")
    assert info["num_classes"] == 4 and model[-1].out_features == 4


def test_training_from_a_checkpoint_records_the_model_it_was_built_from(tmp_path):
    # MODEL may be a checkpoint: its recorded model (not the path) is what the new run records
    from convnet.train import TrainConfig, fit, read_checkpoint
    from test_train import TINY, tiny_data

    data = tiny_data(n_train=64, n_test=32)
    for src, out in ((TINY, "a"), (str(tmp_path / "a" / "best.pt"), "b")):
        cfg = TrainConfig(out=str(tmp_path / out), epochs=1, batch_size=32, progress=False)
        fit(src, data, cfg)
    assert read_checkpoint(tmp_path / "b" / "last.pt")["spec"]["model"] == TINY
