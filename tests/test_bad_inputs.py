"""No input gets a traceback: every subcommand against a corpus of bad inputs (issue 14).

Each case runs the CLI in-process inside a folder of the user's files (a checkpoint, a run
folder, an image, crafted data, hand-edited checkpoints) and asserts what the issue promises:
exit 2, exactly one line on stderr of the form ``convnet CMD: error: ...``, no traceback, and
nothing in the user's folder created, changed or removed (names, sizes and mtimes compared).

Unwritable outputs are simulated in-process because the tests may run as root, for whom a
read-only folder is writable: opening or creating anything under ``ro/`` raises EACCES and
under ``full/`` raises ENOSPC (the disk is full), through ``os.open`` (tempfile, atomic
writes), ``open``/``io.open`` and ``os.mkdir``.
"""

from __future__ import annotations

import builtins
import errno
import importlib.util
import io
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from convnet import notation
from convnet.train.checkpoint import save_checkpoint

PATTERN = "INPUT[28x28x1] -> CONV3-4 -> RELU -> POOL2 -> FC10"


def _spec(**over) -> dict:
    spec = {
        "model": PATTERN,
        "num_classes": 10,
        "in_chans": 1,
        "input_size": [1, 28, 28],
        "data_size": [28, 28],
        "classes": [str(i) for i in range(10)],
        "mean": [0.13],
        "std": [0.31],
        "source": None,
        "data": "mnist-sample",
    }
    spec.update(over)
    return spec


def _write_world(root: Path) -> None:
    """The user's files: a good checkpoint and run folder, an image, and damaged variants."""
    from PIL import Image

    torch.manual_seed(0)
    net = notation.build(PATTERN)
    weights = net.state_dict()
    save_checkpoint(root / "net.pt", {"spec": _spec(), "model": weights})
    run = root / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", {"spec": _spec(), "model": weights})
    (run / "metrics.jsonl").write_text(
        '{"epoch": 1, "train_loss": 1.0, "val_top1": 50.0, "lr": 0.1}\n'
    )
    (run / "config.json").write_text(json.dumps({"model": PATTERN, "epochs": 1}) + "\n")
    Image.fromarray(np.arange(784, dtype=np.uint8).reshape(28, 28)).save(root / "digit.png")
    (root / "afile.txt").write_text("a plain file, not a folder\n")
    (root / "notes.txt").write_text("not an image\n")
    (root / "empty.png").write_bytes(b"")
    (root / "ro").mkdir()
    (root / "full").mkdir()
    (root / "adir").mkdir()
    (root / "adir" / "keep.txt").write_text("keep\n")
    # user code that fails
    (root / "broken.py").write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes=10, in_chans=1):\n"
        "        super().__init__()\n"
        "        raise ValueError('my own bug')\n"
    )
    (root / "badforward.py").write_text(
        "import torch.nn as nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, num_classes=10, in_chans=1):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(4, num_classes)\n"
        "    def forward(self, x):\n"
        "        raise RuntimeError('forward is broken')\n"
    )
    (root / "syntax.py").write_text("def oops(:\n")
    # hand-edited checkpoints
    bad = {
        "nospec": {"model": weights},
        "nomodel": {"spec": _spec()},
        "specstr": {"spec": "a string where a dict belongs", "model": weights},
        "modelstr": {"spec": _spec(), "model": "a string"},
        "modellist": {"spec": _spec(), "model": [1, 2, 3]},
        "classesint": {"spec": _spec(num_classes="ten"), "model": weights},
        "inputsize": {"spec": _spec(input_size=[1, 28]), "model": weights},
        "modelnum": {"spec": _spec(model=123), "model": weights},
        "unknown": {"spec": _spec(model="no_such_net"), "model": weights},
        "wrongshape": {"spec": _spec(), "model": {k: v[:1] for k, v in weights.items()}},
        "missingkey": {"spec": _spec(), "model": dict(list(weights.items())[:2])},
        "meanstr": {"spec": _spec(mean="x", std=None), "model": weights},
        "classnames": {"spec": _spec(classes=5), "model": weights},
        "filemodel": {
            "spec": _spec(model="evil.py:Net", source={"file": "evil.py", "sha256": "0" * 64}),
            "model": weights,
        },
        "nan": {"spec": _spec(num_classes=float("nan")), "model": weights},
        "negclasses": {"spec": _spec(num_classes=-3), "model": weights},
    }
    for name, state in bad.items():
        save_checkpoint(root / f"{name}.pt", state)
    torch.save([1, 2, 3], root / "alist.pt")
    (root / "zero.pt").write_bytes(b"")
    (root / "text.pt").write_text("hello\n")
    good = (root / "net.pt").read_bytes()
    (root / "truncated.pt").write_bytes(good[: len(good) // 2])

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch PWNED",))

    (root / "pickle.pt").write_bytes(pickle.dumps({"spec": Evil()}))
    (root / "emptyrun").mkdir()
    # crafted data files
    (root / "empty.npz").write_bytes(b"")
    (root / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(root / "nolabels.npz", x=np.zeros((4, 1, 8, 8), np.float32))
    np.savez(
        root / "biglabel.npz",
        x=np.zeros((4, 1, 8, 8), np.float32),
        y=np.array([0, 1, 2, 10**12]),
    )
    np.savez(
        root / "neglabel.npz",
        x=np.zeros((4, 1, 8, 8), np.float32),
        y=np.array([0, -1, 2, 3]),
    )
    (root / "idx").mkdir()
    (root / "idx" / "train-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x03" + (-1 & 0xFFFFFFFF).to_bytes(4, "big") + b"\x00" * 8
    )


@pytest.fixture(scope="module")
def parser():
    """One parser for the whole corpus: building it (every subcommand's options) is most of a
    refused command's cost, and parsing does not change it."""
    import convnet.cli

    return convnet.cli.build_parser()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("user")
    _write_world(root)
    return root


# --- the corpus ---------------------------------------------------------------------------

CKPTS = ["{root}/net.pt", "{root}/run"]
BAD_CKPTS = [
    "nospec",
    "nomodel",
    "specstr",
    "modelstr",
    "modellist",
    "classesint",
    "inputsize",
    "modelnum",
    "unknown",
    "wrongshape",
    "missingkey",
    "meanstr",
    "classnames",
    "filemodel",
    "nan",
    "negclasses",
    "alist",
    "zero",
    "text",
    "truncated",
    "pickle",
]
MISSING = ["{root}/nope.pt", "{root}/emptyrun", "{root}/afile.txt", "{root}/adir"]
OUTPUTS = {  # an output path that cannot be written, by why
    "read-only folder": "{root}/ro/out",
    "disk full": "{root}/full/out",
    "a path under a file": "{root}/afile.txt/out",
    "a missing folder under a file": "{root}/afile.txt/sub/out",
}
# CUDA devices this machine does not have (on a GPU machine, an index past its last GPU)
ABSENT_CUDA = (
    [f"cuda:{torch.cuda.device_count()}", "cuda:99"]
    if torch.cuda.is_available()
    else ["cuda", "cuda:7"]
)
DEVICES = [*ABSENT_CUDA, "foo", "meta", "cpu:banana", "mps", "tpu", ""]
VIZ_IMAGE = ["activations", "deconv", "occlusion"]
VIZ_MODEL = ["filters", "rf", "patches", "hierarchy", "codes"]
VIZ_LAYER = {"activations": ["--layer", "0"], "rf": ["--layer", "0"]}


def _viz(fig: str, model: str, *more: str) -> list[str]:
    argv = ["viz", fig, model]
    if fig in VIZ_IMAGE:
        argv.append("{root}/digit.png")
    argv += VIZ_LAYER.get(fig, [])
    if fig in ("patches", "hierarchy", "codes"):
        argv += ["--images", "8", "--batch", "8"]
    return argv + list(more)


def _codes_cases(add) -> None:
    """CNN codes (``convnet features``) and the linear classifier on them (``convnet linear``)."""
    for bad in BAD_CKPTS[:10] + MISSING:
        path = bad if bad.startswith("{") else f"{{root}}/{bad}.pt"
        add(f"features-{bad}", "features", path, "-o", "{root}/adir/codes.safetensors")
    for why, out in OUTPUTS.items():
        add(f"features-out-{why}", "features", "{root}/net.pt", "-o", out + ".safetensors")
        add(f"linear-out-{why}", "linear", "{root}/net.pt", "-o", out + ".safetensors")
    for flags in (["-o", "{root}/adir/codes.txt"], ["-o", "{root}/adir"], ["--batch", "0"],
                  ["--device", "foo"], ["--device", ABSENT_CUDA[0]], ["--data", "{root}/empty.npz"],
                  ["--val-split", "1"], ["--layer", "no.such"]):  # fmt: skip
        more = [] if "-o" in flags else ["-o", "{root}/adir/codes.safetensors"]
        add(f"features{''.join(flags)}", "features", "{root}/net.pt", *flags, *more)
    for codes in ["{root}/nope.safetensors", "{root}/net.pt", "{root}/notes.txt",
                  "{root}/empty.npz", "{root}/adir"]:  # fmt: skip
        add(f"linear-{codes}", "linear", codes)
    for flags in (["--reg", "-1"], ["--reg", "nan"], ["--max-iter", "0"], ["--loss", "x"]):
        add(f"linear{''.join(flags)}", "linear", "{root}/nope.safetensors", *flags)


def _corpus() -> list[tuple[str, list[str]]]:
    cases: list[tuple[str, list[str]]] = []

    def add(name, *argv):
        cases.append((name, list(argv)))

    # damaged, hand-edited and unsafe checkpoints, in every command that loads one
    for bad in BAD_CKPTS + MISSING:
        path = bad if bad.startswith("{") else f"{{root}}/{bad}.pt"
        add(f"eval-{bad}", "eval", path)
        add(f"predict-{bad}", "predict", path, "{root}/digit.png")
        add(f"surgery-{bad}", "surgery", path)
        add(f"viz-filters-{bad}", "viz", "filters", path, "-o", "{root}/adir/f")
        add(f"report-{bad}", "report", path, "-o", "{root}/adir/r.html")
    for bad in BAD_CKPTS[:8]:
        path = f"{{root}}/{bad}.pt"
        add(f"viz-activations-{bad}", *_viz("activations", path))
        add(f"eval-ensemble-{bad}", "eval", "{root}/net.pt", "--ensemble", path)
    # unwritable outputs
    for why, out in OUTPUTS.items():
        add(f"train-out-{why}", "train", PATTERN, "--epochs", "1", "-o", out)
        add(f"surgery-out-{why}", "surgery", "{root}/net.pt", "-o", out + ".safetensors")
        add(f"report-out-{why}", "report", "{root}/run", "-o", out + ".html")
        add(f"predict-heatmap-{why}", "predict", "{root}/net.pt", "{root}/digit.png",
            "--dense", "--heatmap", out + ".png")  # fmt: skip
        add(f"compare-out-{why}", "compare", PATTERN, "--measure", "memory", "-o", out,
            "--quiet", "--batches", "1")  # fmt: skip
        for fig in ["filters", "activations", "rf", "occlusion"]:
            add(f"viz-{fig}-out-{why}", *_viz(fig, "{root}/net.pt", "-o", out))
        add(f"viz-curves-out-{why}", "viz", "curves", "{root}/run", "-o", out)
    for fig in ["filters", "rf"]:
        add(f"viz-{fig}-o-is-dir", *_viz(fig, "{root}/net.pt", "-o", "{root}/adir"))
    add("report-o-is-dir", "report", "{root}/run", "-o", "{root}/adir")
    add("surgery-o-is-dir", "surgery", "{root}/net.pt", "-o", "{root}/adir")
    add("predict-heatmap-is-dir", "predict", "{root}/net.pt", "{root}/digit.png", "--dense",
        "--heatmap", "{root}/adir")  # fmt: skip
    add("train-o-is-file", "train", PATTERN, "--epochs", "1", "-o", "{root}/afile.txt")
    # devices that are not there
    for dev in DEVICES:
        add(f"train-device-{dev}", "train", PATTERN, "--epochs", "1", "--device", dev,
            "-o", "{root}/adir/t")  # fmt: skip
        add(f"eval-device-{dev}", "eval", "{root}/net.pt", "--device", dev)
    for dev in ABSENT_CUDA:
        add(f"compare-device-{dev}", "compare", PATTERN, "--device", dev, "-o", "{root}/adir/c")
    # numeric options out of range
    numeric = {
        "train": [
            ["--nproc", "0"],
            ["--nproc", "-1"],
            ["--nproc", "100000"],
            ["--threads", "100000"],
            ["--threads", "-1"],
            ["--threads", "1e3"],
            ["--seed", str(10**23)],
            ["--seed", "-1"],
            ["--seed", "nan"],
            ["--epochs", "0"],
            ["--epochs", "10**9"],
            ["--batch", "0"],
            ["--batch", "-5"],
            ["--batch", str(10**12)],
            ["--lr", "0"],
            ["--lr", "nan"],
            ["--lr", "inf"],
            ["--lr", "-1"],
            ["--momentum", "1"],
            ["--momentum", "nan"],
            ["--crop-padding", "5000"],
            ["--crop-padding", "-1"],
            ["--cutout", "-1"],
            ["--image-size", "100000"],
            ["--image-size", "0"],
            ["--val-split", "1"],
            ["--val-split", "-0.1"],
            ["--eval-batch-size", "0"],
            ["--eval-batch-size", str(10**12)],
            ["--dist-timeout", "0"],
            ["--dist-timeout", "inf"],
            ["--weight-decay", "inf"],
            ["--gamma", "0"],
            ["--label-smoothing", "1"],
            ["--ema", "1"],
            ["--warmup-epochs", "inf"],
            ["--milestones", "nan"],
            ["--step-size", "0"],
            ["--clip-grad", "nan"],
            ["--checkpoint-every", "-1"],
            ["--early-stop", "-1"],
            ["--eval-every", "0"],
            ["--onecycle-pct", "1"],
            ["--betas", "1", "0.9"],
            ["--data", "no-such-data"],
            ["--data", "{root}/empty.npz"],
            ["--data", "{root}/junk.npz"],
            ["--data", "{root}/nolabels.npz"],
            ["--data", "{root}/biglabel.npz"],
            ["--data", "{root}/neglabel.npz"],
            ["--data", "{root}/idx"],
            ["--data", "{root}/notes.txt"],
            ["--weights", "{root}/zero.pt"],
            ["--weights", "{root}/pickle.pt"],
            ["--weights", "{root}/nope.safetensors"],
            ["--freeze", "no.such.layer"],
        ],  # fmt: skip
        "eval": [
            ["--batch", "0"],
            ["--batch", "-1"],
            ["--batch", str(10**12)],
            ["--batch", "x"],
            ["--data", "no-such-data"],
            ["--data", "{root}/empty.npz"],
            ["--data", "{root}/biglabel.npz"],
            ["--data", "{root}/junk.npz"],
            ["--split", "val", "--data", "{root}/nolabels.npz"],
        ],  # fmt: skip
        "predict": [
            ["--top", "-1"],
            ["--top", "0"],
            ["--top", "x"],
            ["--top", str(10**9)],
            ["--dense", "--scales", "1000"],
            ["--dense", "--scales", "0"],
            ["--dense", "--scales", "nan"],
            ["--dense", "--scales", "inf"],
            ["--dense", "--scales", "-1"],
            ["--dense", "--scales", "100"],
            ["--dense", "--shifts", "0"],
            ["--dense", "--shifts", "100000"],
        ],  # fmt: skip
        "summary": [
            ["--memory", "inf"],
            ["--memory", "nan"],
            ["--memory", "0"],
            ["--memory", "-1"],
            ["--memory", "1e30"],
            ["--batch", "0"],
            ["--batch", str(10**12)],
            ["--input", "0"],
            ["--input", "100000"],
            ["--input", "1x100000x100000"],
            ["--input", "3x224"],
            ["--num-classes", "0"],
            ["--num-classes", str(10**12)],
        ],  # fmt: skip
        "explain": [
            ["stack", "--depth", "100000000"],
            ["stack", "--depth", "1e8"],
            ["stack", "--depth", "0"],
            ["stack", "--depth", "-3"],
            ["stack", "--filter", "0"],
            ["stack", "--filter", str(10**9)],
            ["stack", "--channels", "-2"],
            ["conv", "--input", "3x32x32", "--filter", "0", "--filters", "8"],
            ["conv", "--input", "3x32x32", "--filter", "3", "--filters", "0"],
            ["conv", "--input", "3x32x32", "--filter", "3", "--filters", "8", "--stride", "0"],
            ["conv", "--input", "3x32x32", "--filter", "3", "--filters", "8", "--pad", "-1"],
            ["conv", "--input", "3x32x32", "--filter", "3", "--filters", str(10**15)],
            ["conv", "--input", "3x32x32", "--filter", "3", "--filters", "8", "--dilation", "0"],
            ["pool", "--input", "3x32x32", "--filter", "0"],
            ["pool", "--input", "3x32x32", "--stride", "0"],
            ["pool", "--input", "3x32x32", "--filter", "100000"],
            ["fc", "--input", "512x7x7", "--outputs", "0"],
            ["fc", "--input", "512x7x7", "--outputs", str(10**15)],
            ["fc", "--input", "0x7x7", "--outputs", "10"],
        ],  # fmt: skip
    }
    for flags in numeric["train"]:
        add(f"train{''.join(flags)}", "train", PATTERN, "--epochs", "1", *flags,
            "-o", "{root}/adir/t")  # fmt: skip
    for flags in numeric["eval"]:
        add(f"eval{''.join(flags)}", "eval", "{root}/net.pt", *flags)
    for flags in numeric["predict"]:
        add(f"predict{''.join(flags)}", "predict", "{root}/net.pt", "{root}/digit.png", *flags)
    for flags in numeric["summary"]:
        add(f"summary{''.join(flags)}", "summary", PATTERN, *flags)
    for flags in numeric["explain"]:
        add(f"explain-{''.join(flags)}", "explain", *flags)
    # viz numeric options and images
    for fig in VIZ_IMAGE + VIZ_MODEL:
        for flags in (["--dpi", "0"], ["--dpi", "100000"], ["--dpi", "-3"], ["--format", "gif"]):
            add(f"viz-{fig}{''.join(flags)}", *_viz(fig, "{root}/net.pt", *flags,
                "-o", "{root}/adir/v"))  # fmt: skip
        if fig == "occlusion":
            continue  # it has no --layer nor --input to get wrong
        add(f"viz-{fig}-layer", *_viz(fig, "{root}/net.pt", "--layer", "no.such",
            "-o", "{root}/adir/v"))  # fmt: skip
        if fig == "filters":
            continue
        add(f"viz-{fig}-input", *_viz(fig, "{root}/net.pt", "--input", "1x100000x100000",
            "-o", "{root}/adir/v"))  # fmt: skip
    for fig in VIZ_IMAGE:
        for img in ["{root}/nope.png", "{root}/notes.txt", "{root}/empty.png", "{root}/adir",
                    "mnist:-1", "mnist:99999999", "skimage:no_such"]:  # fmt: skip
            argv = _viz(fig, "{root}/net.pt", "-o", "{root}/adir/v")
            argv[3] = img
            add(f"viz-{fig}-image-{img}", *argv)
    for fig in ["patches", "hierarchy", "codes"]:
        for flags in (["--images", "-1"], ["--batch", "0"], ["--batch", "100000"],
                      ["--data", "{root}/empty.npz"], ["--data", "no-such-data"]):  # fmt: skip
            add(f"viz-{fig}{''.join(flags)}", *_viz(fig, "{root}/net.pt", *flags,
                "-o", "{root}/adir/v"))  # fmt: skip
    for flags in (["--size", "0"], ["--size", "1000"], ["--stride", "0"], ["--class", "99"],
                  ["--class", "cat"], ["--batch", "0"]):  # fmt: skip
        add(f"viz-occlusion{''.join(flags)}", *_viz("occlusion", "{root}/net.pt", *flags,
            "-o", "{root}/adir/v"))  # fmt: skip
    for flags in (
        ["--unit", "999,999"],
        ["--unit", "x"],
        ["--channel", "99", "--image", "{root}/digit.png"],
    ):
        add(f"viz-rf{''.join(flags)}", *_viz("rf", "{root}/net.pt", *flags,
            "-o", "{root}/adir/v"))  # fmt: skip
    for flags in (["--channel", "99"], ["--count", "0"], ["--count", "100000"]):
        add(f"viz-deconv{''.join(flags)}", *_viz("deconv", "{root}/net.pt", *flags,
            "-o", "{root}/adir/v"))  # fmt: skip
    for flags in (["--perplexity", "0"], ["--perplexity", "1000"], ["--thumbnails", "-1"],
                  ["--seed", str(10**23)]):  # fmt: skip
        add(f"viz-codes{''.join(flags)}", *_viz("codes", "{root}/net.pt", *flags,
            "-o", "{root}/adir/v"))  # fmt: skip
    for run in ["{root}/emptyrun", "{root}/nope", "{root}/afile.txt"]:
        add(f"viz-curves-{run}", "viz", "curves", run, "-o", "{root}/adir/v")
    # pattern lines that build nothing trainable, and user code that fails
    for line in ["INPUT[28x28x1] -> RELU", "INPUT[28x28x1] -> POOL2", "INPUT[28x28x1]",
                 "INPUT[28x28x1] -> RELU -> POOL2 -> RELU"]:  # fmt: skip
        add(f"train-noparams-{line}", "train", line, "--epochs", "1", "-o", "{root}/adir/t")
        add(f"surgery-noparams-{line}", "surgery", line)
    for spec in ["{root}/broken.py:Net", "{root}/badforward.py:Net", "{root}/syntax.py:Net",
                 "{root}/broken.py:Nope", "{root}/nope.py:Net"]:  # fmt: skip
        add(f"summary-{spec}", "summary", spec, "--input", "1x28x28")
        add(f"train-{spec}", "train", spec, "--epochs", "1", "-o", "{root}/adir/t")
        add(f"surgery-{spec}", "surgery", spec, "--input", "1x28x28")
        add(f"viz-filters-{spec}", "viz", "filters", spec, "-o", "{root}/adir/v")
    # models, data, compare
    for pat in ["[", "*[", "\x00"]:
        add(f"models-{pat!r}", "models", pat, "--no-macs", "--format", "nope")
    for spec in ["{root}/empty.npz", "{root}/junk.npz", "{root}/biglabel.npz", "{root}/idx",
                 "{root}/notes.txt", "no-such-data", "{root}/nope"]:  # fmt: skip
        add(f"data-info-{spec}", "data", "info", spec)
    add("data-get-unknown", "data", "get", "nosuchset", "--dir", "{root}/adir")
    add("data-get-ro", "data", "get", "mnist", "--dir", "{root}/ro", "--mirror",
        "http://127.0.0.1:9")  # fmt: skip
    for flags in (["--batches", "0"], ["--batches", "x"], ["--repeats", "0"],
                  ["--max-seconds", "inf"], ["--memory-batch", "0"], ["--input", "0"],
                  ["--family", "nosuch"]):  # fmt: skip
        add(f"compare{''.join(flags)}", "compare", PATTERN, *flags, "-o", "{root}/adir/c")
    add("compare-nothing", "compare", "-o", "{root}/adir/c")
    if importlib.util.find_spec("convnet.cli.features") is not None:
        _codes_cases(add)
    # architecture search
    for flags in (["--trials", "0"], ["--budget", "x"], ["--budget", "-5s"],
                  ["--child-epochs", "0"], ["--workers", "0"], ["--seed", str(10**23)],
                  ["--val-split", "1"], ["--top-k", "-1"], ["--out", "{root}/afile.txt"],
                  ["--out", "{root}/ro/s"], ["--out", "{root}/afile.txt/s"]):  # fmt: skip
        more = [] if "--out" in flags else ["--out", "{root}/adir/s"]
        add(f"search{''.join(flags)}", "search", *flags, *more)
    add("compare-bad-ckpt", "compare", "{root}/specstr.pt", "-o", "{root}/adir/c")
    return cases


CORPUS = _corpus()


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and mtime, and every folder (whose own mtime moves with the temporary
    files of an atomic write, so it is not compared)."""
    return {
        str(p.relative_to(root)): (0, 0) if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def faults(world, monkeypatch):
    _install_faults(world, monkeypatch)


def _install_faults(world, monkeypatch):
    """Writes under ro/ fail with EACCES, under full/ with ENOSPC (see the module docstring)."""
    refused = {
        str(world / "ro"): (errno.EACCES, "Permission denied"),
        str(world / "full"): (errno.ENOSPC, "No space left on device"),
    }

    def check(path, writing: bool) -> None:
        if not writing or isinstance(path, int):
            return
        text = os.path.abspath(os.fsdecode(path))
        for folder, (code, why) in refused.items():
            if text.startswith(folder + os.sep):
                raise OSError(code, why, text)

    real_os_open, real_open, real_mkdir = os.open, builtins.open, os.mkdir

    def os_open(path, flags, *a, **k):
        check(path, bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
        return real_os_open(path, flags, *a, **k)

    def any_open(file, mode="r", *a, **k):
        check(file, any(c in mode for c in "wax+"))
        return real_open(file, mode, *a, **k)

    def mkdir(path, *a, **k):
        check(path, True)
        return real_mkdir(path, *a, **k)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", any_open)
    monkeypatch.setattr(io, "open", any_open)
    monkeypatch.setattr(os, "mkdir", mkdir)


def test_corpus_is_large():
    assert len(CORPUS) >= 300
    assert len({name for name, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("argv", [a for _, a in CORPUS], ids=[n for n, _ in CORPUS])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    argv, world, faults, parser, cli, capsys, monkeypatch
):
    import convnet.cli

    monkeypatch.setattr(convnet.cli, "build_parser", lambda command=None: parser)
    monkeypatch.chdir(world)
    monkeypatch.setenv("CONVNET_DATA", str(world / "adir" / "data"))
    before = _snapshot(world)
    try:
        code, out, err = cli(*[a.format(root=world) for a in argv])
    except SystemExit as e:  # argparse's own refusal, as the installed command exits
        code, err = e.code, capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (code, err[-2000:])
    assert "Traceback" not in err
    assert len(lines) == 1, err[-2000:]
    assert re.match(rf"convnet {argv[0]}( [a-z]+)?: error: \S", lines[0]), lines[0]
    assert _snapshot(world) == before
