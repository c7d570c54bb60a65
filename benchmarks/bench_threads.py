"""Training on a busy machine: the default thread count against --threads 1, quiet and busy.

Issue 14: with one other CPU-bound process running, `convnet train lenet5` took 41.8 s with the
old default (two threads on two cores) against 17.7 s with `--threads 1` (13.7 s quiet), because
torch's intra-op threads wait for one another and one of them shares its core with the
competitor. The default now counts the idle cores at the start of the run (/proc/stat over
0.1 s) and uses that many threads. Goal: with a competitor the default is no slower than
--threads 1; on a quiet machine it is no slower than before (all usable cores).

One run measures four cases, each a fresh `convnet train MODEL --epochs E` process timed from
spawn to exit (median of --repeat): quiet + default, quiet + --threads 1, busy + default and
busy + --threads 1, where busy means one competitor process spinning `while True: pass` for the
whole command. Run on an otherwise quiet machine: any other load shifts every figure.

Run: python benchmarks/bench_threads.py [--model lenet5] [--epochs 3] [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import machine  # noqa: E402

SPIN = "while True: pass"


def train_seconds(model: str, epochs: int, threads: int | None, busy: bool) -> float:
    """Wall time of one `convnet train` process, with or without a spinning competitor."""
    competitor = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        if competitor is not None:
            time.sleep(0.5)  # the competitor is running before the run samples the idle cores
        with tempfile.TemporaryDirectory() as out:
            argv = [sys.executable, "-m", "convnet", "train", model, "--epochs", str(epochs)]
            argv += ["-o", str(Path(out) / "run"), "--quiet"]
            if threads is not None:
                argv += ["--threads", str(threads)]
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter() - start
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5", help="model to train (default lenet5)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case, median (default 1)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"convnet train {args.model} --epochs {args.epochs}, median of {args.repeat}")
    rows = {}
    for busy in (False, True):
        for threads in (None, 1):
            runs = [
                train_seconds(args.model, args.epochs, threads, busy) for _ in range(args.repeat)
            ]
            rows[busy, threads] = statistics.median(runs)
            label = f"{'busy' if busy else 'quiet':5} {'default' if threads is None else '--threads 1':12}"
            print(f"{label} {rows[busy, threads]:7.1f} s", flush=True)
    busy_ok = rows[True, None] <= rows[True, 1] * 1.05  # 5%: one run's noise
    print(
        f"busy: default / --threads 1 = {rows[True, None] / rows[True, 1]:.2f} "
        f"({'met' if busy_ok else 'NOT met'}: the default no slower than --threads 1)"
    )
    print(f"quiet: default / --threads 1 = {rows[False, None] / rows[False, 1]:.2f}")


if __name__ == "__main__":
    main()
