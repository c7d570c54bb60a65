"""Cold start of the CLI: each command's wall time against `python -c "import torch"`.

Every command runs in a fresh process, as a user types it, and is timed from spawn to exit;
the figure is the median of --repeat runs (3 by default). Torch's own import is timed the same
way in the same run, and each command is reported with its excess over it: what convnet adds.
Each command runs once untimed first, with bytecode writing on (``PYTHONDONTWRITEBYTECODE`` is
removed from the children's environment): torch's modules are compiled when pip installs them,
and convnet's must be too, or every start would time Python compiling convnet's sources.
Issue 13's targets: `convnet summary vgg16|resnet50|densenet121` within torch's import + 0.3 s,
`convnet models` within + 0.5 s, `convnet explain conv ...` under 0.3 s in all. Run on a quiet
machine: other processes on the same cores lengthen every figure.

Run: python benchmarks/bench_startup.py [--repeat 3]
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


def cold(argv: list[str], repeat: int) -> float:
    """Median wall time of ``repeat`` fresh processes running ``argv`` (output discarded), after
    one untimed run that leaves the bytecode compiled."""
    times = []
    for i in range(repeat + 1):
        t = time.perf_counter()
        subprocess.run(
            argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV
        )
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per command (default: 3)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    print(f"median of {args.repeat} cold runs per command\n")
    print(f"{'command':<30} {'wall (s)':>9} {'over torch (s)':>15} {'target':>14}")
    torch_s = None
    for label, argv, budget in COMMANDS:
        wall = cold(argv, args.repeat)
        if torch_s is None:
            torch_s = wall
            print(f"{label:<30} {wall:>9.2f} {'':>15} {'':>14}", flush=True)
            continue
        over = wall - torch_s
        if budget is None:
            target = f"< {EXPLAIN_TARGET:.1f} s {'ok' if wall < EXPLAIN_TARGET else 'MISSED'}"
        else:
            target = f"+{budget:.1f} s {'ok' if over <= budget else 'MISSED'}"
        print(f"{label:<30} {wall:>9.2f} {over:>+15.2f} {target:>14}", flush=True)


if __name__ == "__main__":
    main()
