"""docs/notes.md is the generator's output: every command in it runs and the file is current.

The generator (docs/make_notes.py) runs every command of the document and computes each
verdict from the tool's output. One test per section regenerates that section alone and compares
it with the checked-in copy (so pytest-xdist spreads the sections over its workers), masking only
the values that vary by machine (timings, throughput, the training-memory estimate, the accuracy
of the short training runs); one more checks the frame: the header, the verdict table and the
order of the sections.
"""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "make_notes.py"
DOC = ROOT / "docs" / "notes.md"
STALE = "docs/notes.md is stale; run python docs/make_notes.py"


def _generator():
    spec = importlib.util.spec_from_file_location("make_notes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_notes = _generator()  # imports only the standard library: cheap at collection


def _diff(old: str, new: str) -> str:
    lines = difflib.unified_diff(
        make_notes.normalize(old).splitlines(),
        make_notes.normalize(new).splitlines(),
        "docs/notes.md",
        "generated",
        lineterm="",
        n=1,
    )
    return "\n".join(lines)[:6000]


def test_normalize_masks_only_varying_values():
    text = "epoch 1: 12.5 s, 1,234 images/s, ETA 0:03\nTraining memory at batch 1: 737 MB estimated peak (x)"
    masked = make_notes.normalize(text)
    assert "12.5" not in masked and "1,234" not in masked and "0:03" not in masked
    assert "737" not in masked and "(x)" in masked
    kept = "output volume 55x55x96 = 290,400 neurons; S=2 gives 3; 75% discarded; F=7, S=1"
    assert make_notes.normalize(kept) == kept


def test_section_helpers_split_a_rendered_document():
    doc = make_notes.Doc()
    for anchor, held in (("one", True), ("two", False)):
        doc.section(f"Section {anchor}", anchor)
        doc.text(f"body of {anchor}")
        doc.verdict([(held, "a check")])
    text = doc.render()
    assert make_notes.anchors(text) == ["one", "two"]
    assert make_notes.index_rows(text) == [
        ("one", "Section one", "reproduced"),
        ("two", "Section two", "differs"),
    ]
    two = make_notes.section_text(text, "two")
    assert two.startswith('## <a id="two"></a>Section two') and "body of one" not in two
    assert "✗ a check" in two
    with pytest.raises(KeyError):
        make_notes.section_text(text, "three")


def test_document_frame_is_current():
    """Header, one verdict row per section in the generator's order, sections in that order."""
    text = DOC.read_text(encoding="utf-8")
    assert text.startswith(make_notes.HEADER), STALE
    rows = make_notes.index_rows(text)
    assert len(rows) == len(make_notes.SECTIONS), STALE
    assert [a for a, _, _ in rows] == make_notes.anchors(text), STALE


@pytest.mark.parametrize(
    "position", range(len(make_notes.SECTIONS)), ids=[s.__name__ for s in make_notes.SECTIONS]
)
def test_notes_section_is_current(position):
    section = make_notes.SECTIONS[position]
    doc = make_notes.generate([section])  # any failing command raises here
    ((anchor, title, verdict),) = doc.verdicts
    new = doc.render()
    assert "**Verdict: " in new
    old = DOC.read_text(encoding="utf-8")
    rows = make_notes.index_rows(old)
    assert position < len(rows) and rows[position] == (anchor, title, verdict), (
        f"{STALE}: verdict row {position} should be {(anchor, title, verdict)}"
    )
    old_section = make_notes.section_text(old, anchor)
    new_section = make_notes.section_text(new, anchor)
    if make_notes.normalize(old_section) != make_notes.normalize(new_section):
        pytest.fail(f"{STALE}\n{_diff(old_section, new_section)}")
