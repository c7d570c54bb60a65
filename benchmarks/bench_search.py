"""Architecture search against LeNet-5, and the controllers against each other (issue 16).

For each seed (default 0, 1, 2) and controller (default reinforce, random, tpe), one
``convnet.search.run`` over the pattern space on the bundled MNIST sample with a wall-time
budget (default 10 minutes), children trained for ``--child-epochs`` on the training split and
scored on the validation split (10% of the training split, stratified; the test split is never
read during the search). The chosen net is the leaderboard's best validation top-1 among the lines
with no more multiply-adds than LeNet-5 (416,520 MACs); it is retrained with the ``lenet`` recipe
and scored on test once. LeNet-5 is trained with the same recipe and seed.

Reported per controller, as medians over the seeds: the best validation top-1 found, the chosen
net's test top-1 and MACs, and LeNet-5's test top-1; target 1 holds when the chosen net's
median test top-1 beats LeNet-5's median at no more MACs. Nothing is tuned per controller.

On a 2-core CPU the full run takes about 1.5-2 h (9 searches of 10 minutes, 12 trainings with the
35-epoch lenet recipe).

Rerun: ``python benchmarks/bench_search.py [--budget 10m] [--seeds 0 1 2]
[--controllers reinforce random tpe] [--json results.json]``
Quick check that it works: ``python benchmarks/bench_search.py --budget 20s --seeds 0
--controllers random --final-epochs 1 --child-images 300``
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

LENET5_MACS = 416_520


def chosen(rows: list[dict], macs_limit: int) -> dict | None:
    """The best validation top-1 among the lines within ``macs_limit`` (rows are sorted)."""
    return next((r for r in rows if r["macs"] <= macs_limit), None)


def one_search(controller: str, seed: int, args, tmp: Path) -> dict:
    from convnet.search import run
    from convnet.train import fit, recipe

    out = tmp / f"{controller}-{seed}"
    t0 = time.perf_counter()
    r = run("pattern", controller, args.data, trials=None, budget=args.budget,
            child_epochs=args.child_epochs, child_images=args.child_images, out=str(out),
            seed=seed, top_k=0, progress=False)  # fmt: skip
    searched = time.perf_counter() - t0
    pick = chosen(r["leaderboard"], LENET5_MACS)
    row = {"controller": controller, "seed": seed, "search_seconds": round(searched, 1),
           "counts": r["counts"], "best_val_top1": r["leaderboard"][0]["val_top1"] if r["leaderboard"] else None,
           "chosen": pick}  # fmt: skip
    if pick is not None:
        cfg = recipe("lenet", seed=seed, out=str(out / "final"), progress=False, **_epochs(args))
        row["chosen_test_top1"] = fit(pick["line"], args.data, cfg)["test_top1"]
    print(json.dumps(row), flush=True)
    return row


def _epochs(args) -> dict:
    return {"epochs": args.final_epochs} if args.final_epochs else {}


def lenet(seed: int, args, tmp: Path) -> float:
    from convnet.train import fit, recipe

    cfg = recipe(
        "lenet", seed=seed, out=str(tmp / f"lenet5-{seed}"), progress=False, **_epochs(args)
    )
    return fit("lenet5", args.data, cfg)["test_top1"]


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
    p.add_argument("--child-epochs", type=int, default=1, help="(default: 1)")
    p.add_argument("--child-images", type=int, default=0, help="0: all (default: 0)")
    p.add_argument(
        "--final-epochs", type=int, default=None, help="(default: the lenet recipe's 35)"
    )
    p.add_argument("--json", default=None, help="write every row and the summary here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        tmp = Path(tmp)
        base = {s: lenet(s, args, tmp) for s in args.seeds}
        print(
            f"LeNet-5 ({LENET5_MACS:,} MACs), lenet recipe, test top-1 by seed: {base}", flush=True
        )
        rows = [one_search(c, s, args, tmp) for s in args.seeds for c in args.controllers]
    lenet_med = median(list(base.values()))
    print(f"\nbudget {args.budget} per search, seeds {args.seeds}; medians over seeds")
    print(
        f"{'controller':<10} {'best val %':>10} {'chosen test %':>13} {'chosen MACs':>12} {'LeNet-5 test %':>15}  target"
    )
    summary = {}
    for c in args.controllers:
        mine = [r for r in rows if r["controller"] == c]
        val = median([r["best_val_top1"] for r in mine])
        test = median([r.get("chosen_test_top1") for r in mine])
        macs = median([r["chosen"]["macs"] for r in mine if r["chosen"]])
        beats = test is not None and lenet_med is not None and test > lenet_med
        summary[c] = {
            "best_val_top1": val,
            "chosen_test_top1": test,
            "chosen_macs": macs,
            "beats_lenet5": beats,
        }
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
