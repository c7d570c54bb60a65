"""Architecture search against LeNet-5, and the controllers against each other (issue 16).

For each seed (default 0, 1, 2) and controller (default reinforce, random, tpe), one
``convnet.search.run`` over the pattern space on the bundled MNIST sample with a wall-time
budget (default 10 minutes) and the search's hard limit of LeNet-5's multiply-adds (416,520
MACs; a sample over it is rejected untrained). Children train with the ``lenet`` recipe for at
most ``--child-epochs`` (default 9) under successive halving (``--pruner asha``: a child goes on
past 1 and 3 epochs only while its validation top-1 is in the best third there), on the
training split, scored on the validation split (10% of the training split, stratified); the test
split is never read during the search. The ``--top-k`` (default 3) best lines are then
retrained with the full ``lenet`` recipe; the chosen net is the one whose retraining scored the
best validation top-1, and its test top-1 is the one reported (the choice never looks at test).
LeNet-5 is trained with the same recipe and seed.

Reported per controller, as medians over the seeds: the best validation top-1 a child reached
in the search, the chosen net's test top-1 and MACs, and LeNet-5's test top-1; target 1 holds
when the chosen net's median test top-1 beats LeNet-5's median (at no more MACs, which the
limit guarantees). Nothing is tuned per controller.

``--jobs 2`` runs two searches at a time, each process pinned to its own core with one thread
(a search's budget is wall time: two searches must not share a core). On a 2-core CPU the
default run takes about an hour.

Rerun: ``python benchmarks/bench_search.py [--budget 10m] [--seeds 0 1 2]
[--controllers reinforce random tpe] [--jobs 2] [--json results.json]``
Quick check that it works: ``python benchmarks/bench_search.py --budget 20s --seeds 0
--controllers random --final-epochs 1 --child-epochs 1 --top-k 1``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

LENET5_MACS = 416_520


def one_search(controller: str, seed: int, args, tmp: Path) -> dict:
    from convnet.search import run

    out = tmp / f"{controller}-{seed}"
    t0 = time.perf_counter()
    r = run("pattern", controller, args.data, trials=None, budget=args.budget,
            child_epochs=args.child_epochs, pruner=args.pruner, max_macs=LENET5_MACS,
            out=str(out), seed=seed, top_k=args.top_k, final_epochs=args.final_epochs,
            progress=False)  # fmt: skip
    board = r["leaderboard"]
    row = {"controller": controller, "seed": seed,
           "seconds": round(time.perf_counter() - t0, 1), "counts": r["counts"],
           "best_val_top1": board[0]["val_top1"] if board else None,
           "retrained": [{k: b[k] for k in ("line", "val_top1", "epochs", "macs", "test_top1")}
                         | {"final_val_top1": r["final"][b["trial"]]["val_top1"]}
                         for b in board if b["trial"] in r["final"]],
           "chosen": r["chosen"]}  # fmt: skip
    row["chosen_test_top1"] = r["chosen"]["test_top1"] if r["chosen"] else None
    print(json.dumps(row), flush=True)
    return row


def lenet(seed: int, args, tmp: Path) -> float:
    from convnet.train import fit, recipe

    extra = {"epochs": args.final_epochs} if args.final_epochs else {}
    cfg = recipe("lenet", seed=seed, out=str(tmp / f"lenet5-{seed}"), progress=False, **extra)
    test = fit("lenet5", args.data, cfg)["test_top1"]
    print(f"LeNet-5 seed {seed}: test top-1 {test:.2f}%", flush=True)
    return test


@contextlib.contextmanager
def pinned_pool(jobs: int, prefix: str):
    """``jobs`` spawned processes, each pinned to a core of its own with one thread, and a
    temporary folder for their runs (removed after the pool has shut down)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    cores = ctx.Manager().Queue()
    for c in sorted(os.sched_getaffinity(0))[:jobs]:
        cores.put(c)
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_pin, initargs=(cores,)) as pool,
    ):
        yield pool, Path(tmp)


def _pin(cores) -> None:
    """Pool initializer: this worker takes one core of its own, one thread."""
    import torch

    os.sched_setaffinity(0, {cores.get()})
    torch.set_num_threads(1)


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", default="10m", help="search wall time per run (default: 10m)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="(default: 0 1 2)")
    p.add_argument("--controllers", nargs="+", default=["reinforce", "random", "tpe"],
                   help="(default: reinforce random tpe)")  # fmt: skip
    p.add_argument("--data", default="mnist-sample", help="(default: mnist-sample)")
    p.add_argument(
        "--child-epochs", type=int, default=9, help="most epochs a child trains (default: 9)"
    )
    p.add_argument("--pruner", default="asha", choices=("asha", "none"), help="(default: asha)")
    p.add_argument("--top-k", type=int, default=3, help="lines retrained at the end (default: 3)")
    p.add_argument("--final-epochs", type=int, default=None,
                   help="(default: the lenet recipe's 35)")  # fmt: skip
    p.add_argument(
        "--jobs", type=int, default=1, help="searches at a time, one core each (default: 1)"
    )
    p.add_argument("--json", default=None, help="write every row and the summary here")
    args = p.parse_args()
    with pinned_pool(args.jobs, "bench-search-") as (pool, tmp):
        searches = [
            pool.submit(one_search, c, s, args, tmp) for s in args.seeds for c in args.controllers
        ]
        base = {s: pool.submit(lenet, s, args, tmp) for s in args.seeds}
        rows = [f.result() for f in searches]
        base = {s: f.result() for s, f in base.items()}
    lenet_med = median(list(base.values()))
    print(f"\nLeNet-5 ({LENET5_MACS:,} MACs), lenet recipe, test top-1 by seed: {base}")
    print(f"budget {args.budget} per search, seeds {args.seeds}; medians over seeds")
    print(f"{'controller':<10} {'best val %':>10} {'chosen test %':>13} {'chosen MACs':>12} "
          f"{'LeNet-5 test %':>15}  target")  # fmt: skip
    summary = {}
    for c in args.controllers:
        mine = [r for r in rows if r["controller"] == c]
        val = median([r["best_val_top1"] for r in mine])
        test = median([r["chosen_test_top1"] for r in mine])
        macs = median([r["chosen"]["macs"] for r in mine if r["chosen"]])
        beats = test is not None and lenet_med is not None and test > lenet_med
        summary[c] = {"best_val_top1": val, "chosen_test_top1": test, "chosen_macs": macs,
                      "beats_lenet5": beats}  # fmt: skip
        print(f"{c:<10} {_f(val):>10} {_f(test):>13} {_f(macs, ',.0f'):>12} {_f(lenet_med):>15}  "
              f"{'beats LeNet-5' if beats else 'does not beat LeNet-5'}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(
            json.dumps({"lenet5": base, "rows": rows, "summary": summary}, indent=1)
        )


def _f(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


if __name__ == "__main__":
    main()
