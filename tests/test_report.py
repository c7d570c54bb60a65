"""The HTML run report: built from a real (tiny) training run, self-contained, and rendered by
headless Chromium without console errors, broken images or a blank page."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from convnet import ConvnetError

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).is_file()),
    None,
)

# Inserted into a copy of the page: records script errors, console.error calls and images that
# did not decode into attributes of <body>, which --dump-dom then prints.
HARNESS = """<script>
window.__errors = [];
addEventListener('error', e => { window.__errors.push(String(e.message || 'resource failed: ' + (e.target && e.target.src || '').slice(0, 40))); }, true);
const ce = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); ce(...a); };
addEventListener('load', () => {
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.body.setAttribute('data-broken-images', String(broken));
  document.body.setAttribute('data-errors', JSON.stringify(window.__errors));
  document.body.setAttribute('data-loaded', '1');
});
</script>"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """LeNet-5 trained for 2 short epochs on 320 real MNIST digits: a complete run folder."""
    from convnet.data import Dataset, load
    from convnet.train import TrainConfig, fit

    d = load("mnist-sample")
    small = Dataset(
        "mnist-sample",
        d.x_train[:320],
        d.y_train[:320],
        d.x_test[:100],
        d.y_test[:100],
        d.classes,
        d.mean,
        d.std,
    )
    out = tmp_path_factory.mktemp("runs") / "tiny"
    fit(
        "lenet5", small, TrainConfig(out=str(out), epochs=2, batch_size=64, lr=0.05, progress=False)
    )
    return out


@pytest.fixture(scope="module")
def page(run):
    """The report as ``convnet report RUN -o RUN/report.html --images 2`` writes it (built once:
    a report takes seconds); the command's stdout is kept beside it in ``stdout.txt``."""
    import contextlib
    import io

    from convnet.cli import main

    path, out = run / "report.html", io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["report", str(run), "-o", str(path), "--images", "2"]) == 0
    (run / "stdout.txt").write_text(out.getvalue())
    return path


def test_report_is_self_contained_with_every_section(page, run):
    text = page.read_text()
    for heading in (
        "Configuration",
        "Model",
        "Training curves",
        "Confusion matrix",
        "First-layer filters",
        "Activation maps",
        "Feature hierarchy",
    ):
        assert f"<h2>{heading}</h2>" in text
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", text)  # nothing fetched
    assert "<link" not in text and "@import" not in text and "url(" not in text
    imgs = re.findall(r"src='data:(image/png|image/svg\+xml);base64,([A-Za-z0-9+/=]+)'", text)
    assert len(imgs) == 6  # curves, confusion, filters, activation maps, overlay, hierarchy
    for mime, data in imgs:
        raw = base64.b64decode(data)
        assert raw.startswith(b"\x89PNG") if mime == "image/png" else b"<svg" in raw[:2000]
    # the summary table agrees with LeNet-5's parameter count (the paper's 61,706 with C3 full)
    assert "61,706 parameters" in text
    assert "features.3</td><td>Conv2d" in text
    result = __import__("json").loads((run / "result.json").read_text())
    assert f"{result['test_top1']:.2f}%" in text and "validation top-1 (best.pt)" in text


def test_report_errors_and_cli(cli, run, page, tmp_path):
    from convnet.viz import build_report

    with pytest.raises(ConvnetError, match="run folder not found"):
        build_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvnetError, match="not a run folder"):
        build_report(tmp_path / "empty")
    # the page fixture ran `convnet report RUN -o RUN/report.html --images 2`
    assert (run / "stdout.txt").read_text().strip() == str(page) and page.stat().st_size > 20_000
    code, out, err = cli(
        "viz",
        "activations",
        run / "best.pt",
        "mnist:4",
        "--layer",
        "features.1",
        "--top",
        "4",
        "-o",
        tmp_path / "a",
    )
    assert code == 0, err
    assert (tmp_path / "a.png").is_file() and (tmp_path / "a.svg").is_file()
    code, out, err = cli("viz", "curves", run, "-o", tmp_path / "c", "--format", "svg")
    assert code == 0 and (tmp_path / "c.svg").is_file()


def _chromium(html: Path, tmp: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
            "--window-size=1200,2000", *flags, html.as_uri(),
        ],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def _problems(html: Path, tmp: Path) -> list[str]:
    """Script errors, console messages and undecodable images Chromium reports for ``html``."""
    probe = tmp / ("probe-" + html.name)
    text = html.read_text()
    probe.write_text(
        text.replace("<head>", "<head>" + HARNESS, 1) if "<head>" in text else HARNESS + text
    )
    proc = _chromium(probe, tmp, "--dump-dom", "--virtual-time-budget=5000")
    body = re.search(r"<body([^>]*)>", proc.stdout)
    assert body and 'data-loaded="1"' in body.group(1), f"page never loaded: {proc.stderr[-2000:]}"
    attrs = dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', body.group(1)))
    problems = [f"console: {line}" for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    problems += [
        f"error: {e}" for e in __import__("json").loads(attrs["data-errors"].replace("&quot;", '"'))
    ]
    if attrs["data-broken-images"] != "0":
        problems.append(f"{attrs['data-broken-images']} image(s) did not decode")
    return problems


@pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium at /usr/bin/chromium (Debian: apt-get install chromium)"
)
def test_report_renders_in_chromium(page, tmp_path):
    assert _problems(page, tmp_path) == []
    shot = tmp_path / "shot.png"
    proc = _chromium(page, tmp_path, f"--screenshot={shot}")
    assert shot.is_file(), proc.stderr[-2000:]
    from PIL import Image

    px = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("L"), dtype=float)
    assert px.shape == (2000, 1200)
    assert px.std() > 20  # text, tables and figures, not a blank page
    assert (px.std(axis=1) > 5).mean() > 0.3  # content down the page, not one block of text


@pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium at /usr/bin/chromium (Debian: apt-get install chromium)"
)
def test_browser_check_catches_a_broken_page(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!doctype html><html><head><title>x</title></head><body><h1>x</h1>"
        "<img src='data:image/png;base64,AAAA'><script>notDefined();</script></body></html>"
    )
    problems = _problems(bad, tmp_path)
    assert any("notDefined" in p for p in problems)
    assert "1 image(s) did not decode" in problems
