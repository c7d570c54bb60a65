"""Cold start of the CLI: each command's wall time against `python -c "import torch"`.

Every command runs in a fresh process, as a user types it, and is timed from spawn to exit.
Runs are interleaved in rounds: in each, ``python -c "import torch"`` and then every command, so
a slow moment of the machine lands on both sides of a pair; a command's excess (what convnet
adds to torch's import) is the median over rounds of its time minus that round's import. The
same quantity without the noise of two processes: "after torch", the seconds a command spends in
one process from just after ``import torch`` to its end (its imports and its work).
Each command runs once untimed first, with bytecode writing on (``PYTHONDONTWRITEBYTECODE`` is
removed from the children's environment): torch's modules are compiled when pip installs them,
and convnet's must be too, or every start would time Python compiling convnet's sources.
Issue 13's targets: `convnet summary vgg16|resnet50|densenet121` within torch's import + 0.3 s,
`convnet models` within + 0.5 s, `convnet explain conv ...` under 0.3 s in all. Run on a quiet
machine: other processes on the same cores lengthen every figure.

Run: python benchmarks/bench_startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402

CONVNET = [sys.executable, "-m", "convnet"]
COMMANDS: list[tuple[str, list[str], float | None]] = [
    # (label, argv, target excess over torch's import in s; None: an absolute target below)
    ('python -c "import torch"', [sys.executable, "-c", "import torch"], None),
    ("convnet summary vgg16", [*CONVNET, "summary", "vgg16"], 0.3),
    ("convnet summary resnet50", [*CONVNET, "summary", "resnet50"], 0.3),
    ("convnet summary densenet121", [*CONVNET, "summary", "densenet121"], 0.3),
    ("convnet models", [*CONVNET, "models"], 0.5),
    (
        "convnet explain conv ...",
        [*CONVNET, "explain", "conv", "--input", "3x227x227", "--filter", "11", "--stride", "4"]
        + ["--pad", "0", "--filters", "96"],
        None,
    ),
]
EXPLAIN_TARGET = 0.3  # s, absolute: explain is arithmetic and imports no torch


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# convnet's part measured inside one process: from just after torch's import to the command's end
AFTER_TORCH = (
    "import contextlib, io, sys, time, torch\n"
    "t = time.perf_counter()\n"
    "from convnet.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    main(sys.argv[1:])\n"
    "print(time.perf_counter() - t, file=sys.stderr)\n"
)


def after_torch(argv: list[str]) -> float | None:
    """Seconds a convnet command spends after torch is imported, in one fresh process."""
    if argv[:3] != CONVNET:
        return None
    done = subprocess.run(
        [sys.executable, "-c", AFTER_TORCH, *argv[3:]],
        check=True,
        capture_output=True,
        text=True,
        env=ENV,
    )
    return float(done.stderr.strip().splitlines()[-1])


def once(argv: list[str]) -> float:
    """Wall time of one fresh process running ``argv`` (output discarded)."""
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="rounds (default: 5)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(
        f"{args.repeat} rounds; in each, torch's import and then every command, one fresh process "
        "each; a command's excess is the median over rounds of its time minus that round's import\n"
    )
    for _, argv, _ in COMMANDS:  # compile the bytecode, warm the page cache
        once(argv)
    walls: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    inside: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    for _ in range(args.repeat):
        for label, argv, _ in COMMANDS:
            walls[label].append(once(argv))
            t = after_torch(argv)
            if t is not None:
                inside[label].append(t)
    torch_label = COMMANDS[0][0]
    print(
        f"{'command':<30} {'wall (s)':>9} {'over torch (s)':>15} {'after torch (s)':>16} "
        f"{'target':>14}"
    )
    for label, _, budget in COMMANDS:
        wall = statistics.median(walls[label])
        if label == torch_label:
            print(f"{label:<30} {wall:>9.2f} {'':>15} {'':>16} {'':>14}", flush=True)
            continue
        after = f"{statistics.median(inside[label]):.2f}" if inside[label] else ""
        over = statistics.median(a - b for a, b in zip(walls[label], walls[torch_label]))
        if budget is None:
            target = f"< {EXPLAIN_TARGET:.1f} s {'ok' if wall < EXPLAIN_TARGET else 'MISSED'}"
            over_s = ""
        else:
            target = f"+{budget:.1f} s {'ok' if over <= budget else 'MISSED'}"
            over_s = f"{over:+.2f}"
        print(f"{label:<30} {wall:>9.2f} {over_s:>15} {after:>16} {target:>14}", flush=True)


if __name__ == "__main__":
    main()
