"""``convnet compare``: the notes' comparison of architectures, measured.

Checked against independent computations: MACs and parameters by hand (LeNet-5, ResNet-20),
peak memory of a two-layer net by arithmetic, forward time of a model that sleeps a known time,
energy of a known power curve (a fake NVML, a fake RAPL tree), the batch-size parser against the
sequence it names, and the classic models' accuracies against torchvision's published numbers.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from hypothesis import assume, given
from hypothesis import strategies as st

from convnet.cli.compare import parse_batches, parse_measure
from convnet.compare.measure import BatchTiming, inference_peak, time_batches
from convnet.compare.power import RaplMeter, counter_delta, open_meter, rapl_zones
from convnet.errors import ConvnetError

# ---- the batch-size and measure parsers -----------------------------------------------------


@given(st.integers(1, 8), st.integers(2, 4), st.integers(3, 7))
def test_an_ellipsis_continues_the_ratio_of_the_two_sizes_before_it(a, r, n):
    sizes = [a * r**i for i in range(n)]
    assume(sizes[-1] <= 4096)
    text = f"{sizes[0]},{sizes[1]},...,{sizes[-1]}"
    assert parse_batches(text) == tuple(sizes)


@given(st.integers(3, 50), st.integers(1, 40), st.integers(2, 8))
def test_an_ellipsis_continues_the_difference_when_there_is_no_whole_ratio(a, d, n):
    if (a + d) % a == 0:  # a whole ratio of at least 2: that is the geometric reading
        d += 1
    sizes = [a + d * i for i in range(n + 1)]
    assert parse_batches(f"{a},{a + d},...,{sizes[-1]}") == tuple(sizes)


@given(st.lists(st.integers(1, 4096), min_size=1, max_size=10))
def test_a_plain_list_is_taken_as_written_or_refused_when_not_increasing(sizes):
    text = ",".join(map(str, sizes))
    if all(a < b for a, b in zip(sizes, sizes[1:])):
        assert parse_batches(text) == tuple(sizes)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="once, smallest first"):
            parse_batches(text)


@pytest.mark.parametrize(
    "text, message",
    [
        ("0,1", "not a batch size in 1..4096"),
        ("1,2,4097", "not a batch size"),
        ("1,2,4,...,60", "60 is not on the sequence 1, 2, 4, 8"),
        ("1,...,8", "after two sizes"),
        ("1,2,...", "after two sizes"),
        ("1,x", "'x' is not a batch size"),
    ],
)
def test_a_bad_batch_list_is_refused_naming_what_is_wrong(text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        parse_batches(text)


def test_measure_lists_read_in_any_order_and_power_needs_time():
    assert parse_measure("power, TIME") == ("time", "power")
    assert parse_measure("memory") == ("memory",)
    with pytest.raises(argparse.ArgumentTypeError, match="add time"):
        parse_measure("memory,power")
    with pytest.raises(argparse.ArgumentTypeError, match="choose from time, memory, power"):
        parse_measure("speed")


# ---- power: NVML absent and present, RAPL from a fake sysfs tree ------------------------------


def test_without_nvml_the_power_column_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    meter, why = open_meter("cuda:0")
    assert meter is None and "nvidia-ml-py" in why and "convnet[power]" in why


def _fake_nvml(watts_at) -> types.ModuleType:
    """A stand-in for nvidia-ml-py: power in milliwatts as a function of the time."""
    nvml = types.ModuleType("pynvml")
    nvml.calls = []
    nvml.nvmlInit = lambda: nvml.calls.append("init")
    nvml.nvmlShutdown = lambda: nvml.calls.append("shutdown")
    nvml.nvmlDeviceGetHandleByIndex = lambda i: ("gpu", i)
    nvml.nvmlDeviceGetPowerUsage = lambda handle: int(1000 * watts_at(time.perf_counter()))
    return nvml


def test_nvml_energy_is_the_integral_of_the_sampled_power(monkeypatch):
    t0 = time.perf_counter()
    nvml = _fake_nvml(lambda t: 100.0 + 400.0 * (t - t0))  # a ramp: 100 W rising 400 W/s
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    meter, why = open_meter("cuda:0", interval=0.005)
    assert meter is not None, why
    assert "NVML" in meter.source and nvml.calls == ["init"]
    meter.start()
    a = time.perf_counter() - t0
    time.sleep(0.15)
    energy = meter.stop()
    b = time.perf_counter() - t0
    meter.close()
    assert nvml.calls == ["init", "shutdown"]
    # integral of 100 + 400 t from a to b, within the sampling's timing slack
    exact = 100.0 * (b - a) + 200.0 * (b * b - a * a)
    assert energy.joules == pytest.approx(exact, rel=0.1)
    assert energy.seconds == pytest.approx(b - a, rel=0.1)
    assert energy.watts == pytest.approx(exact / (b - a), rel=0.1)


def _zone(root: Path, name: str, label: str, uj: int, max_uj: int = 2**32) -> Path:
    d = root / name
    d.mkdir()
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


def test_rapl_sums_the_packages_and_follows_a_counter_that_wraps(tmp_path):
    p0 = _zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    _zone(tmp_path, "intel-rapl:0:0", "core", 7)  # part of package 0: never added again
    p1 = _zone(tmp_path, "intel-rapl:1", "package-1", 2**32 - 500_000)
    meter, why = open_meter("cpu", rapl_root=tmp_path)
    assert isinstance(meter, RaplMeter), why
    assert [z.name for z in meter.zones] == ["package-0", "package-1"]
    meter.start()
    (p0 / "energy_uj").write_text("3500000\n")  # +2.5 J
    (p1 / "energy_uj").write_text("1500000\n")  # wrapped: 0.5 J to the top, then 1.5 J
    energy = meter.stop()
    assert energy.joules == pytest.approx(2.5 + 2.0, abs=1e-6)
    assert counter_delta(10, 30, 100) == 20 and counter_delta(90, 10, 100) == 20  # 10 + 10


def test_no_power_counter_means_the_column_says_not_available_here(tmp_path):
    zones, why = rapl_zones(tmp_path / "missing")
    assert zones == [] and "no RAPL package counters" in why
    meter, why = open_meter("cpu", rapl_root=tmp_path)
    assert meter is None and "no RAPL" in why


# ---- time and memory, against models whose answers are known ---------------------------------


class _Sleeper(nn.Module):
    """Takes 4 ms per image in the batch."""

    def forward(self, x):
        time.sleep(0.004 * x.shape[0])
        return x


def test_forward_time_is_the_median_run_divided_by_the_batch():
    timings = time_batches(
        _Sleeper(),
        (3, 2, 2),
        (1, 4),
        device=torch.device("cpu"),
        dtype=torch.float32,
        warmup=1,
        repeats=3,
        max_seconds=60,
    )
    assert [t.batch for t in timings] == [1, 4] and all(len(t.seconds) == 3 for t in timings)
    for t in timings:
        assert 4.0 <= t.ms_per_image < 12.0  # sleep never returns early; a busy machine is late
        assert t.images_per_s == pytest.approx(1000.0 / t.ms_per_image)
    # the time cap: a 16 ms run already passes 0.01 s, so there is one run, not five
    (capped,) = time_batches(
        _Sleeper(),
        (1,),
        (4,),
        device=torch.device("cpu"),
        dtype=torch.float32,
        warmup=0,
        repeats=5,
        max_seconds=0.01,
    )
    assert len(capped.seconds) == 1


def test_energy_per_image_and_mean_power_follow_from_the_meter():
    t = BatchTiming(8, seconds=[0.5, 0.4, 0.6], joules=120.0, meter_seconds=1.5)
    assert t.median_s == 0.5 and t.ms_per_image == 62.5
    assert t.j_per_image == pytest.approx(120.0 / 24) and t.watts == pytest.approx(80.0)


def test_measured_inference_peak_of_a_two_layer_net_is_its_arithmetic():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(100, 300, bias=False), nn.ReLU(), nn.Linear(300, 20, bias=False))
    x = torch.randn(7, 100)
    weights = 100 * 300 + 300 * 20
    # at the ReLU the first layer's output and the ReLU's are both alive; then the ReLU's and
    # the logits: the peak is the larger of the two moments
    live = max(7 * 300 + 7 * 300, 7 * 300 + 7 * 20)
    assert inference_peak(net.eval(), x) == 4 * (weights + 7 * 100 + live)


@pytest.mark.parametrize("channels_last", [True, False])
def test_the_inference_estimate_follows_the_allocator_in_either_layout(channels_last):
    """NCHW convolutions keep a channel-blocked copy of their output; channels-last ones
    (what compare times) write in place: 38% apart here, and each estimate within 2%."""
    from convnet.analysis.memory import estimate_inference_memory
    from convnet.compare.measure import make_input, prepare

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))
    cpu = torch.device("cpu")
    net = prepare(net, cpu, torch.float32) if channels_last else net.eval()
    x = make_input(8, (16, 32, 32), cpu, torch.float32)
    x = x if channels_last else x.contiguous()
    est = estimate_inference_memory(net, (16, 32, 32), 8, channels_last=channels_last)
    assert est.peak_bytes == pytest.approx(inference_peak(net, x), rel=0.02)


# ---- the whole comparison on two small models ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """LeNet-5 trained for one short epoch on 80 digits: a run folder with a test accuracy."""
    from convnet.data import Dataset, load
    from convnet.train import TrainConfig, fit

    d = load("mnist-sample")
    small = Dataset(
        "mnist-sample",
        d.x_train[:80],
        d.y_train[:80],
        d.x_test[:50],
        d.y_test[:50],
        d.classes,
        d.mean,
        d.std,
    )
    out = tmp_path_factory.mktemp("runs") / "lenet-here"
    fit("lenet5", small, TrainConfig(out=str(out), epochs=1, batch_size=32, progress=False))
    return out


@pytest.fixture(scope="module")
def compared(tiny_run, tmp_path_factory):
    from convnet.compare import compare

    empty = tmp_path_factory.mktemp("no-rapl")  # no power counters: "not available here"
    out = tiny_run / "compare"
    result = compare(
        [str(tiny_run), "resnet20"],
        batches=[1, 2],
        repeats=1,
        warmup=1,
        out=out,
        progress=False,
        rapl_root=empty,
    )
    return result, out


def test_counts_and_accuracies_are_the_models_own(compared, tiny_run):
    result, _ = compared
    lenet, resnet = result.models
    assert lenet.label == "lenet-here" and resnet.label == "resnet20"
    # LeNet-5 by hand: C1 5x5x1x6 at 28x28, C3 5x5x6x16 at 10x10, C5 5x5x16x120, F6 120x84, 84x10
    assert lenet.macs == 25 * 6 * 28 * 28 + 25 * 6 * 16 * 100 + 25 * 16 * 120 + 120 * 84 + 84 * 10
    assert lenet.params == 61_706
    # ResNet-20: a 3x3 conv to 16, then 6 3x3 convs at each of 16 (32x32), 32 (16x16) and
    # 64 (8x8) channels, the first of each later stage from half the channels; the FC 64 x 10
    stage = lambda c, hw, first: 9 * (first * c + 5 * c * c) * hw * hw  # noqa: E731
    expected = 9 * 3 * 16 * 32 * 32 + stage(16, 32, 16) + stage(32, 16, 16) + stage(64, 8, 32)
    assert resnet.macs == expected + 64 * 10 and resnet.params == 269_722
    own = json.loads((tiny_run / "result.json").read_text())
    assert lenet.own_top1 == own["test_top1"] and lenet.top1 is None  # not the paper's
    assert resnet.top1 is None and resnet.own_top1 is None  # the card reports no accuracy


def test_memory_is_estimated_and_measured_within_ten_percent(compared):
    result, _ = compared
    for m in result.models:
        assert m.memory_batch == 2 and m.train_batch == 2
        assert m.inference_measured > 4 * m.params and m.training_measured > 4 * m.params
        assert abs(m.training_error) < 0.10, m.label
        assert abs(m.inference_error) < 0.10, m.label


def test_the_files_are_written_with_their_columns(compared):
    result, out = compared
    names = sorted(p.name for p in out.iterdir())
    assert names == ["accuracy_vs_ops.png", "compare.csv", "compare.json", "time_vs_batch.png"]
    for png in ("accuracy_vs_ops.png", "time_vs_batch.png"):
        from PIL import Image

        data = (out / png).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
            assert im.size[0] > 600 and im.size[1] > 400
    rows = list(csv.DictReader(io.StringIO((out / "compare.csv").read_text())))
    from convnet.compare.results import CSV_COLUMNS

    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["model"], r["batch"]) for r in rows] == [
        ("lenet-here", "1"),
        ("lenet-here", "2"),
        ("resnet20", "1"),
        ("resnet20", "2"),
    ]
    assert int(rows[2]["macs"]) == result.models[1].macs and int(rows[0]["params"]) == 61_706
    assert {r["power"] for r in rows} == {result.power}
    assert result.power.startswith("not available here: no RAPL package counters under ")
    data = json.loads((out / "compare.json").read_text())
    assert data["batches"] == [1, 2] and data["measured"] == ["time", "memory", "power"]
    model = data["models"][1]
    for key in ("params", "macs", "gmacs", "top1", "inference_estimate", "inference_measured"):
        assert key in model
    timing = model["timings"][1]
    assert timing["batch"] == 2 and timing["j_per_image"] is None
    assert timing["ms_per_image"] == pytest.approx(1000 * timing["median_s"] / 2)


def test_the_conclusions_name_the_models_the_data_pick(compared):
    result, _ = compared
    text = result.render("text")
    lines = {line.split(":")[0]: line for line in text.splitlines() if "seed 004" in line}
    assert lines["most accurate"].startswith("most accurate: lenet-here (top-1 ")
    assert lines["most operations"].startswith("most operations: resnet20 (0.0406 GMACs")
    assert "not compared here (no VGG among these models)" in lines["most operations"]
    assert lines["most efficient"].startswith("most efficient: lenet-here")
    assert "J/image @2" in text and "not available here" in text


def test_the_run_report_shows_the_comparison(compared):
    from convnet.viz.report import comparison_section

    result, out = compared
    html = "".join(comparison_section(out))
    assert "<h2>Comparison</h2>" in html and html.count("data:image/png;base64,") == 2
    lenet = result.models[0]  # its own test accuracy, marked as measured here
    assert f"{lenet.own_top1:.1f} / {lenet.own_top5:.1f} (here)" in html
    assert "lenet-here" in html and "resnet20" in html and "most operations" in html


# ---- families, cards and the command line ----------------------------------------------------


def test_the_classic_family_is_the_notes_figure_with_the_published_accuracies():
    from convnet.compare import family_models
    from convnet.models import get_card

    # torchvision's IMAGENET1K_V1 weights, single 224 crop (its published acc@1 / acc@5); the
    # Inception cards quote their papers at 299
    published = {
        "alexnet": (56.522, 79.066),
        "vgg16": (71.592, 90.382),
        "vgg19": (72.376, 90.876),
        "googlenet": (69.778, 89.530),
        "resnet18": (69.758, 89.078),
        "resnet34": (73.314, 91.420),
        "resnet50": (76.130, 92.862),
        "resnet101": (77.374, 93.546),
        "resnet152": (78.312, 94.046),
        "inception_v3": (78.8, 94.4),
        "inception_v4": (80.0, 95.0),
    }
    assert family_models("classic") == list(published)
    for name, (top1, top5) in published.items():
        card = get_card(name)
        assert (card.top1, card.top5) == (top1, top5) and card.accuracy_source, name
        assert card.input_size[1] == (299 if name.startswith("inception") else 224)
    assert family_models("VGG") == [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
    with pytest.raises(ConvnetError, match="unknown family 'transformers': use classic or"):
        family_models("transformers")


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "name the models to compare, or a family"),
        (["lenet5", "--batches", "4,2"], "give each batch size once, smallest first"),
        (["lenet5", "--measure", "power"], "add time"),
        (["lenet5", "--device", "tpu"], "use cpu, cuda or cuda:N"),
        (["lenet5", "--repeats", "0"], "must be in 1..1000"),
        (["lenet5", "--max-seconds", "nan"], "must be in (0, 3600] seconds"),
        (["nosuchnet"], "unknown model 'nosuchnet'"),
    ],
)
def test_a_mistake_is_one_line_and_exit_2(cli, capsys, tmp_path, argv, message):
    try:
        code, _, err = cli("compare", *argv, "-o", tmp_path / "c", "--quiet")
    except SystemExit as e:  # argparse refuses a flag's value before the command runs
        code, err = e.code, capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("convnet compare: error: ") and message in lines[0], lines[0]
    assert not (tmp_path / "c").exists()
