"""Package boundaries, read from the source with ``ast``: every import of ``src/convnet``
checked against a small table of rules, so a new violation fails naming the file, the line
and the import.

Rules (ARCHITECTURE.md): no module imports another package's underscore module or name (what
is shared is public where it belongs); arrows point one way, cli -> features -> models/layers
-> torch; the NumPy reference engine's core imports neither torch nor the rest of convnet
(only its torch bridge does); nothing but the CLI imports the CLI.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import convnet

SRC = Path(convnet.__file__).parent
PACKAGES = frozenset(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())
FEATURES = ("train", "analysis", "surgery", "viz", "cli", "data")


@dataclass(frozen=True)
class Import:
    file: str  # the importing file, relative to src/convnet: "train/loop.py"
    line: int
    target: tuple[str, ...]  # a convnet module below the root ("models", "outputs"); or external
    names: tuple[str, ...] = ()  # what ``from TARGET import ...`` takes
    external: bool = False  # True: target[0] is another distribution (torch, numpy, ...)

    @property
    def importer(self) -> str:
        """The importing package; "" for modules at the root (resolve.py, io.py, errors.py)."""
        parts = self.file.split("/")
        return parts[0] if len(parts) > 1 else ""

    @property
    def package(self) -> str:
        """The imported package; "" for the root's own modules and names."""
        return self.target[0] if self.target and self.target[0] in PACKAGES else ""

    def __str__(self) -> str:
        what = ".".join(("convnet", *self.target)) if not self.external else ".".join(self.target)
        return f"{self.file}:{self.line} imports {what}" + (
            f" ({', '.join(self.names)})" if self.names else ""
        )


def parse_imports(file: str, source: str) -> Iterator[Import]:
    """Every import statement of ``source`` (module level or inside functions), resolved to
    absolute convnet module paths; ``file`` is its path relative to src/convnet."""
    here = tuple(file.split("/")[:-1])  # the package a relative import starts from
    for node in ast.walk(ast.parse(source, file)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = tuple(alias.name.split("."))
                if parts[0] == "convnet":
                    yield Import(file, node.lineno, parts[1:])
                else:
                    yield Import(file, node.lineno, parts, external=True)
        elif isinstance(node, ast.ImportFrom):
            module = tuple(node.module.split(".")) if node.module else ()
            if node.level:
                base = here[: len(here) - (node.level - 1)]
            elif module and module[0] == "convnet":
                base, module = (), module[1:]
            else:
                yield Import(file, node.lineno, module, external=True)
                continue
            names = tuple(a.name for a in node.names)
            if module:
                yield Import(file, node.lineno, base + module, names)
            else:  # ``from . import a, b``: each name may be a module of its own
                yield from (Import(file, node.lineno, base + (n,)) for n in names)


def all_imports() -> list[Import]:
    found = [
        imp
        for path in SRC.rglob("*.py")
        for imp in parse_imports(path.relative_to(SRC).as_posix(), path.read_text("utf-8"))
    ]
    return sorted(found, key=lambda i: (i.file, i.line))


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_cross_import(i: Import) -> bool:
    if i.external or i.package == i.importer:
        return False
    below = i.target[1:] if i.package else i.target  # the parts inside the imported package
    return any(_private(p) for p in (*below, *i.names))


def arrow(low: str, banned: tuple[str, ...]) -> Callable[[Import], bool]:
    return lambda i: i.importer == low and not i.external and i.package in banned


def imports_cli(i: Import) -> bool:
    return not i.external and i.package == "cli" and i.importer != "cli" and i.file != "__main__.py"


def _torch_free_roots(imports: list[Import]) -> set[str]:
    """The root's modules that import only the standard library, numpy and each other."""
    roots = {i.file[:-3] for i in imports if "/" not in i.file}
    leaves = set(roots)
    changed = True
    while changed:  # drop a module that imports torch, a package or a non-leaf root module
        changed = False
        for i in imports:
            name = i.file[:-3]
            if name not in leaves or "/" in i.file:
                continue
            bad = (i.external and i.target[0] == "torch") or (
                not i.external and (i.package or (i.target and i.target[0] not in leaves))
            )
            if bad:
                leaves.discard(name)
                changed = True
    return leaves


def reference_core(imports: list[Import]) -> Callable[[Import], bool]:
    """The reference engine's core (all but torch_bridge*.py) imports no torch and no other
    convnet package; torch-free root modules (errors, arith) are fine."""
    leaves = _torch_free_roots(imports)

    def rule(i: Import) -> bool:
        if i.importer != "reference" or "torch_bridge" in i.file.rsplit("/", 1)[-1]:
            return False
        if i.external:
            return i.target[0] == "torch"
        if i.package:
            return i.package != "reference"
        return not i.target or i.target[0] not in leaves

    return rule


def rules(imports: list[Import]) -> list[tuple[str, Callable[[Import], bool], str]]:
    """(name, violated by, what to do): the whole policy."""
    low = (
        "models/layers/notation sit under the features (cli -> features -> models/layers -> torch)"
    )
    return [
        (
            "private",
            private_cross_import,
            "another package's private module or name: make the shared piece public where it belongs",
        ),
        *[(f"{p} -> features", arrow(p, FEATURES), low) for p in ("models", "layers", "notation")],
        ("cli", imports_cli, "only the CLI (and python -m convnet) imports convnet.cli"),
        (
            "reference core",
            reference_core(imports),
            "the NumPy engine's core stays free of torch and the rest of convnet; only "
            "reference/torch_bridge*.py may import them",
        ),
    ]


@functools.cache
def source_imports() -> list[Import]:
    """The tree's imports, parsed once per test process and only where a test asks (parsing the
    whole tree at collection cost each pytest worker 2 s)."""
    return all_imports()


@pytest.mark.parametrize("name", [r[0] for r in rules([])])
def test_import_rule_holds(name):
    _, broken_by, why = next(r for r in rules(source_imports()) if r[0] == name)
    bad = [str(i) for i in source_imports() if broken_by(i)]
    assert not bad, f"{why}:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize(
    "file, source, rule",
    [
        ("train/x.py", "from ..models._registry import MODELS", "private"),
        ("train/x.py", "from ..models.vgg import _vgg", "private"),
        ("viz/x.py", "from .._io import atomic_open", "private"),  # the root's private module
        ("cli/x.py", "import convnet.surgery._graph", "private"),
        ("data/x.py", "from convnet.analysis import _ops", "private"),
        ("models/x.py", "def f():\n    from ..train import fit", "models -> features"),
        ("notation/x.py", "from convnet.viz import filters", "notation -> features"),
        ("layers/x.py", "from ..data import load", "layers -> features"),
        ("train/x.py", "from ..cli import main", "cli"),
        ("reference/layers.py", "import torch", "reference core"),
        ("reference/net.py", "from ..models import create_model", "reference core"),
        ("reference/net.py", "from ..resolve import resolve_model", "reference core"),
    ],
)
def test_each_rule_catches_its_violation(file, source, rule):
    # the checker itself: a planted import is reported by its rule, with file and line
    planted = list(parse_imports(file, source))
    _, broken_by, _ = next(r for r in rules(source_imports() + planted) if r[0] == rule)
    hits = [str(i) for i in planted if broken_by(i)]
    assert hits and hits[0].startswith(f"{file}:"), (rule, source)


@pytest.mark.parametrize(
    "file, source",
    [
        ("train/x.py", "from ..models.outputs import output_kind"),
        ("models/_zoo.py", "from ._registry import register_model"),  # inside its own package
        ("__init__.py", "from ._private_root import x"),  # the root's own
        ("reference/torch_bridge.py", "import torch"),
        ("reference/im2col.py", "from ..errors import ShapeError"),
        ("__main__.py", "from .cli import main"),
        ("train/x.py", "from ..viz.heatmap import save_heatmap"),
    ],
)
def test_allowed_imports_pass(file, source):
    planted = list(parse_imports(file, source))
    assert not [(r[0], str(i)) for r in rules(source_imports()) for i in planted if r[1](i)]


def test_import_surgery_leaves_matplotlib_out():
    code = "import sys, convnet.surgery; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", "import convnet.surgery loaded matplotlib"
