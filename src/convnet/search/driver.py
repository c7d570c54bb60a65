"""``convnet.search.run``: a whole search, from the options to the leaderboard.

The run folder OUT holds ``search.json`` (the settings), ``study.db`` (the study, unless
``--storage`` names another database), ``nets/`` (NASNet children as ``file.py:Net``),
``final/trial_N/`` (the top-k lines retrained with the full recipe, each scored on test once),
``leaderboard.csv``/``.json``, ``pareto.png`` and, for reinforce, ``controller.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..io import atomic_write_text
from ..train.distributed import TRAINING_PRELOAD, process_context
from ..train.run import validation_rank
from ..train.run_folder import claim_run_folder
from . import report
from .space import SearchError
from .study import (
    LENET5_MACS,
    SearchConfig,
    Worker,
    fail_interrupted,
    make_study,
    need_optuna,
    open_storage,
    parse_budget,
)


def run(
    space: str = "pattern",
    controller: str = "reinforce",
    data: Any = "mnist-sample",
    *,
    trials: int | None = 20,
    budget: str | float | None = None,
    child_epochs: int = 1,
    child_images: int = 0,
    pruner: str = "none",
    objective: str = "val",
    out: str = "runs/search",
    resume: bool = False,
    workers: int = 1,
    storage: str | None = None,
    seed: int = 0,
    val_split: float = 0.1,
    top_k: int = 1,
    recipe: str = "lenet",
    final_epochs: int | None = None,
    macs_target: int = LENET5_MACS,
    max_macs: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Search ``space`` with ``controller`` on ``data`` (a ``convnet.data.load`` spec or a
    Dataset) and return ``{"leaderboard": rows, "counts": ..., "final": ..., "chosen": row,
    "out": OUT}``.

    ``trials`` valid children are trained (``budget``: or until that much wall time has
    passed, "10m"), each for ``child_epochs`` on the training split (its first ``child_images``
    when given) and scored on the validation split (``val_split`` of the training split unless
    the data has its own). The ``top_k`` best distinct lines are then retrained with
    ``recipe`` (for ``final_epochs``, default the recipe's) on the full training split and
    scored on the test split once; ``chosen`` is the retrained line with the best validation
    top-1 after its retraining (on a tie the lower validation loss, then fewer MACs; None when
    ``top_k`` is 0): the choice never looks at test. ``pruner="asha"`` makes ``child_epochs``
    a ceiling: successive halving stops each child at 1, 3, 9, ... epochs unless its
    validation top-1 is in the best third of those that reached that epoch, so the budget goes
    to the promising lines.
    ``max_macs`` rejects children with more multiply-adds untrained (a hard constraint, beside
    ``objective="val-macs"``'s soft one). ``resume`` continues the search in ``out``;
    ``workers`` processes share the study; ``storage`` is an Optuna RDB URL (default: SQLite
    in ``out``).
    """
    cfg = SearchConfig(
        space=space, controller=controller, data=data if isinstance(data, str) else getattr(data, "name", "data"),
        trials=trials, budget=parse_budget(budget), child_epochs=child_epochs,
        child_images=child_images, pruner=pruner, objective=objective, out=str(out), workers=workers,
        storage=storage, seed=seed, val_split=val_split, top_k=top_k, recipe=recipe,
        final_epochs=final_epochs, macs_target=macs_target, max_macs=max_macs,
        progress=progress,
    )  # fmt: skip
    cfg.check()
    need_optuna()
    dataset = None if isinstance(data, str) else data
    with claim_run_folder(cfg.out, resume=resume):
        _record_settings(cfg, resume)
        study = make_study(cfg, open_storage(cfg.storage_url()), create=True)
        requeued = fail_interrupted(study) if resume else 0
        if requeued and cfg.progress:
            print(f"resume: {requeued} interrupted trial(s) queued again", flush=True)
        deadline = time.time() + cfg.budget if cfg.budget else None
        bar = report.TrialBar(cfg.progress, cfg.trials)
        try:
            _search(cfg, dataset, deadline, bar)
        finally:
            bar.close()
        final = _retrain(cfg, study, dataset)
        return _outputs(cfg, study, final)


def _record_settings(cfg: SearchConfig, resume: bool) -> None:
    """Write OUT/search.json; a resumed search must keep the settings that define its trials."""
    path = Path(cfg.out) / "search.json"
    if resume and path.is_file():
        before = json.loads(path.read_text()).get("fixed", {})
        changed = [k for k, v in cfg.fixed().items() if k in before and before[k] != v]
        if changed:
            what = ", ".join(
                f"--{k.replace('_', '-')} {before[k]} (now {cfg.fixed()[k]})" for k in changed
            )
            raise SearchError(
                f"--resume continues a search with {what}; give those values or a new --out"
            )
    settings = {"fixed": cfg.fixed(), "trials": cfg.trials, "budget_s": cfg.budget,
                "workers": cfg.workers, "storage": cfg.storage_url(), "top_k": cfg.top_k,
                "recipe": cfg.recipe, "final_epochs": cfg.final_epochs}  # fmt: skip
    atomic_write_text(path, json.dumps(settings, indent=1) + "\n")


def _search(cfg: SearchConfig, dataset: Any, deadline: float | None, bar: report.TrialBar) -> None:
    """Run the workers: in this process for one, else ``workers`` spawned processes sharing the
    study while this one shows the progress bar from the storage."""
    if cfg.workers == 1:
        Worker(cfg, 0, dataset, on_trial=bar.update).run(deadline)
        return
    # no forked torch thread pools; each worker trains children, so it needs what a rank needs
    ctx = process_context(("convnet.search.study", *TRAINING_PRELOAD))
    procs = [
        ctx.Process(target=_worker_main, args=(cfg, i, dataset, deadline), daemon=False)
        for i in range(cfg.workers)
    ]
    for p in procs:
        p.start()
    study = make_study(cfg, open_storage(cfg.storage_url()))
    try:
        while any(p.is_alive() for p in procs):
            bar.update(study)
            time.sleep(0.5)
    finally:
        for p in procs:
            p.join()
    bar.update(study)
    bad = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode]
    if bad:
        raise SearchError(
            f"search worker(s) {', '.join(f'{i} (exit code {c})' for i, c in bad)} stopped; "
            "continue with --resume"
        )


def _worker_main(cfg: SearchConfig, index: int, dataset: Any, deadline: float | None) -> None:
    Worker(cfg, index, dataset).run(deadline)


def distinct_lines(rows: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The first ``k`` rows with distinct lines (rows best first, so each is its line's best)."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if len(best) == k:
            break
        best.setdefault(r["line"], r)
    return list(best.values())


def _retrain(cfg: SearchConfig, study, dataset: Any) -> dict[int, dict[str, Any]]:
    """The ``top_k`` best distinct lines (a line sampled again is one line: its best trial)
    retrained with the full recipe into OUT/final/trial_N and scored on test once; a line
    already retrained (its result.json there) is read back, not retrained."""
    from ..train import fit, recipe

    rows = distinct_lines(report.leaderboard(study), cfg.top_k)
    final: dict[int, dict[str, Any]] = {}
    for r in rows:
        folder = Path(cfg.out) / "final" / f"trial_{r['trial']:04d}"
        done = folder / "result.json"
        if done.is_file():
            final[r["trial"]] = json.loads(done.read_text())
            continue
        overrides = dict(
            out=str(folder), seed=cfg.seed, val_split=cfg.val_split, progress=cfg.progress
        )
        if cfg.final_epochs:
            overrides["epochs"] = cfg.final_epochs
        if cfg.progress:
            print(
                f"retraining #{r['rank']} (trial {r['trial']}) with the {cfg.recipe} recipe: {r['line']}",
                flush=True,
            )
        result = fit(
            r["line"],
            dataset if dataset is not None else cfg.data,
            recipe(cfg.recipe, **overrides),
            resume=(folder / "last.pt").is_file(),
        )
        final[r["trial"]] = {
            k: result.get(k) for k in ("val_top1", "val_loss", "test_top1", "test_top5", "epochs")
        }
    return final


def chosen(rows: list[dict[str, Any]], final: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """The retrained row whose retraining scored the best validation top-1 (on a tie the lower
    validation loss of that retraining, then fewer MACs, then the better search rank), with that
    ``final_val_top1``; None when nothing was retrained."""
    done = [r for r in rows if (final.get(r["trial"]) or {}).get("val_top1") is not None]
    if not done:
        return None
    best = min(
        done,
        key=lambda r: (
            *validation_rank(final[r["trial"]]["val_top1"], final[r["trial"]].get("val_loss")),
            r["macs"],
            r["rank"],
        ),
    )
    return {**best, "final_val_top1": final[best["trial"]]["val_top1"]}


def _outputs(cfg: SearchConfig, study, final: dict[int, dict[str, Any]]) -> dict[str, Any]:
    out = Path(cfg.out)
    rows = report.leaderboard(study, final)
    c = report.counts(study)
    pick = chosen(rows, final)
    extra = {
        "settings": cfg.fixed(),
        "counts": c,
        "final": {str(k): v for k, v in final.items()},
        "chosen": pick,
    }
    report.write_leaderboard(out, rows, extra)
    if rows:
        report.plot_pareto(rows, out / "pareto.png", cfg.macs_target)
    if cfg.controller == "reinforce":
        curve = report.controller_curve(study, cfg.objective, cfg.macs_target)
        if curve:
            report.plot_controller(curve, out / "controller.png")
    if cfg.progress:
        report.print_leaderboard(rows, c)
        if pick is not None:
            print(
                f"chosen on validation after retraining: trial {pick['trial']} "
                f"(val {pick['final_val_top1']:.2f}%, test {pick['test_top1']:.2f}%, "
                f"{pick['macs']:,} MACs): {pick['line']}"
            )
    return {"leaderboard": rows, "counts": c, "final": final, "chosen": pick, "out": str(out)}
