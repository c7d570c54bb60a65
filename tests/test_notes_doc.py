"""docs/notes.md is the generator's output: every command in it runs and the file is current.

The generator (docs/make_notes.py) runs every command of the document and computes each
verdict from the tool's output; this test regenerates it into a temporary file and compares it
with the checked-in copy, masking only the values that vary by machine (timings, throughput,
the training-memory estimate, the accuracy of the short training runs).
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "make_notes.py"
DOC = ROOT / "docs" / "notes.md"


def _generator():
    spec = importlib.util.spec_from_file_location("make_notes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_notes():
    return _generator()


def test_normalize_masks_only_varying_values(make_notes):
    text = "epoch 1: 12.5 s, 1,234 images/s, ETA 0:03\nTraining memory at batch 1: 737 MB estimated peak (x)"
    masked = make_notes.normalize(text)
    assert "12.5" not in masked and "1,234" not in masked and "0:03" not in masked
    assert "737" not in masked and "(x)" in masked
    kept = "output volume 55x55x96 = 290,400 neurons; S=2 gives 3; 75% discarded; F=7, S=1"
    assert make_notes.normalize(kept) == kept


def test_notes_document_is_current(make_notes, tmp_path):
    out = tmp_path / "notes.md"
    assert make_notes.main(["--out", str(out)]) == 0  # any failing command raises here
    new = out.read_text(encoding="utf-8")
    assert "**Verdict: reproduced.**" in new and "| section | verdict |" in new
    old = DOC.read_text(encoding="utf-8")
    if make_notes.normalize(old) != make_notes.normalize(new):
        diff = "\n".join(
            difflib.unified_diff(
                make_notes.normalize(old).splitlines(),
                make_notes.normalize(new).splitlines(),
                "docs/notes.md",
                "generated",
                lineterm="",
                n=1,
            )
        )
        pytest.fail(f"docs/notes.md is stale; run python docs/make_notes.py\n{diff[:6000]}")
