"""What the pattern space can reach under LeNet-5's multiply-adds, by hand (issue 16, target 1).

The search's target asks for a line of the ``pattern`` space at no more than LeNet-5's 416,520
MACs that beats LeNet-5's test top-1 under the ``lenet`` recipe (median of 3 seeds). This script
asks whether such a line is there to be found: it trains hand-designed lines of the space, the
two- and three-stage conv nets a designer following the notes would try first, beside LeNet-5,
with the same recipe, seeds and data, and reports each line's test top-1 per seed and median.

Each line is written as the space's own decisions and decoded by ``PatternSpace``, so it is in
the space by construction (filter sizes, counts and strides from its lists, P = (F - 1) / 2, the
notes' fit rule), and its MACs are the space's arithmetic, checked against the limit. Nothing
here is chosen on test: the lines were fixed before the run, and every one is reported.

``--lines unpadded`` trains instead LeNet-like lines outside the space, whose convolutions are
unpadded (P = 0) as LeNet-5's are: whether a padding choice added to the space would help. Their
MACs are convnet's summary of the built line, which checks that every layer fits by the notes'
rule.

Rerun: ``python benchmarks/bench_space_ceiling.py [--lines space|unpadded] [--seeds 0 1 2]
[--jobs 2] [--json out.json]`` (two trainings at a time, each pinned to its own core with one
thread: about 10 minutes on 2 cores for the space's lines).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench_search import LENET5_MACS, lenet, median, pinned_pool

# name -> (stages, fully connected widths): a stage is ([(F, K, S) per conv], pool after it);
# the name lists each stage's convs as F-K, then the FC widths before the classifier
LINES = {
    "3-8 | 3-16 | fc128": ([([(3, 8, 1)], True), ([(3, 16, 1)], True)], [128]),
    "3-8 | 3-16 | fc128-64": ([([(3, 8, 1)], True), ([(3, 16, 1)], True)], [128, 64]),
    "3-8 | 3-16 | fc64": ([([(3, 8, 1)], True), ([(3, 16, 1)], True)], [64]),
    "3-4 | 3-16 | fc256": ([([(3, 4, 1)], True), ([(3, 16, 1)], True)], [256]),
    "5-4 | 5-8 | fc128": ([([(5, 4, 1)], True), ([(5, 8, 1)], True)], [128]),
    # a third conv stage: at 7x7 a 2x2/2 pool does not fit (3.5), so it ends without one
    "3-4 | 3-16 | 3-16 | fc64": (
        [([(3, 4, 1)], True), ([(3, 16, 1)], True), ([(3, 16, 1)], False)],
        [64],
    ),
    "3-4 | 3-8 | 3-16 | fc64": (
        [([(3, 4, 1)], True), ([(3, 8, 1)], True), ([(3, 16, 1)], False)],
        [64],
    ),
    "3-8 | 3-8 | 3-16 3-16 | fc64": (
        [([(3, 8, 1)], True), ([(3, 8, 1)], True), ([(3, 16, 1), (3, 16, 1)], False)],
        [64],
    ),
}


# the same form, convolutions unpadded (outside the space): LeNet-5's layout and its neighbours
UNPADDED = {
    "5-8 | 5-16 | fc120-84": ([([(5, 8, 1)], True), ([(5, 16, 1)], True)], [120, 84]),
    "5-6 | 5-16 | fc256": ([([(5, 6, 1)], True), ([(5, 16, 1)], True)], [256]),
    "5-8 | 5-16 | fc64": ([([(5, 8, 1)], True), ([(5, 16, 1)], True)], [64]),
    "5-10 | 5-16 | fc32": ([([(5, 10, 1)], True), ([(5, 16, 1)], True)], [32]),
}


def unpadded(stages, fcs, input_size=(1, 28, 28), num_classes=10) -> tuple[str, int]:
    """The line with P = 0 in every convolution, and its MACs: convnet's summary of the built
    line, strict, so a layer that does not fit by the notes' rule is an error."""
    import convnet
    from convnet.notation import build

    depth, h, w = input_size
    parts = [f"INPUT[{w}x{h}x{depth}]"]
    for convs, pool in stages:
        parts += [p for f, k, s in convs for p in (f"CONV(F={f},S={s},P=0,K={k})", "RELU")]
        parts += ["POOL"] * pool
    parts += [p for width in fcs for p in (f"FC-{width}", "RELU")]
    text = " -> ".join([*parts, f"FC-{num_classes}"])
    model = build(text, device="meta")
    macs = convnet.summary(model, input_size, training_memory=False, strict=True).totals["macs"]
    if macs > LENET5_MACS:
        raise SystemExit(f"{text} is over the limit ({macs:,} MACs)")
    return text, macs


def line_of(kind: str, name: str) -> tuple[str, int]:
    """(line, MACs) of a named line: decoded by the space, or written unpadded."""
    if kind == "space":
        child = decode(*LINES[name])
        return child.text, child.macs
    return unpadded(*UNPADDED[name])


def decode(stages, fcs, input_size=(1, 28, 28), num_classes=10):
    """The space's decisions for ``stages`` and ``fcs``, decoded: the space's own line and MACs."""
    from convnet.search import PatternSpace

    space = PatternSpace(input_size, num_classes)
    want = {"M": len(stages), "K": len(fcs)}
    for m, (convs, pool) in enumerate(stages):
        want[f"N{m}"], want[f"pool{m}"] = len(convs), pool
        for n, (f, k, s) in enumerate(convs):
            want |= {f"F{m}{n}": f, f"K{m}{n}": k, f"S{m}{n}": s}
    want |= {f"fc{k}": width for k, width in enumerate(fcs)}
    sample = [d.choices.index(want[d.name]) if d.name in want else 0 for d in space.decisions]
    child = space.decode(sample)
    if child.invalid or child.macs > LENET5_MACS:
        raise SystemExit(f"not a valid line under the limit: {child.text} ({child.invalid})")
    return child


def train(name: str, seed: int, args, tmp: Path) -> dict:
    from convnet.train import fit, recipe

    text, macs = line_of(args.lines, name)
    extra = {"epochs": args.final_epochs} if args.final_epochs else {}
    out = tmp / f"line{list(CHOICES[args.lines]).index(name)}-{seed}"
    cfg = recipe("lenet", seed=seed, out=str(out), progress=False, **extra)
    r = fit(text, args.data, cfg)
    row = {"name": name, "seed": seed, "line": text, "macs": macs,
           "val_top1": r["val_top1"], "test_top1": r["test_top1"]}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


CHOICES = {"space": LINES, "unpadded": UNPADDED}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lines", default="space", choices=tuple(CHOICES),
                   help="the space's lines, or unpadded ones outside it (default: space)")  # fmt: skip
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="(default: 0 1 2)")
    p.add_argument("--data", default="mnist-sample", help="(default: mnist-sample)")
    p.add_argument("--final-epochs", type=int, default=None,
                   help="epochs of every training (default: the lenet recipe's 35)")  # fmt: skip
    p.add_argument(
        "--jobs", type=int, default=2, help="trainings at a time, one core each (default: 2)"
    )
    p.add_argument("--json", default=None, help="write every row and the summary here")
    args = p.parse_args()
    lines = CHOICES[args.lines]
    for name in lines:  # every line fits and is under the limit (the space's: in the space)
        line_of(args.lines, name)
    with pinned_pool(args.jobs, "bench-ceiling-") as (pool, tmp):
        base = {s: pool.submit(lenet, s, args, tmp) for s in args.seeds}
        jobs = [pool.submit(train, n, s, args, tmp) for n in lines for s in args.seeds]
        rows = [f.result() for f in jobs]
        base = {s: f.result() for s, f in base.items()}
    lenet_med = median(list(base.values()))
    print(f"\nLeNet-5 ({LENET5_MACS:,} MACs), lenet recipe, test top-1 by seed: {base}, "
          f"median {lenet_med}")  # fmt: skip
    print(
        f"{'line (stages | FC)':<32} {'MACs':>9} {'test % by seed':>20} {'median':>7}  vs LeNet-5"
    )
    summary = {}
    for name in lines:
        mine = [r for r in rows if r["name"] == name]
        tests = [r["test_top1"] for r in mine]
        med = median(tests)
        verdict = "beats" if med > lenet_med else ("ties" if med == lenet_med else "below")
        summary[name] = {"line": mine[0]["line"], "macs": mine[0]["macs"], "test_top1": tests,
                         "median": med, "vs_lenet5": verdict}  # fmt: skip
        seeds = " / ".join(f"{t:.1f}" for t in tests)
        print(f"{name:<32} {mine[0]['macs']:>9,} {seeds:>20} {med:>7.1f}  {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps({"lenet5": base, "rows": rows, "summary": summary},
                                              indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
