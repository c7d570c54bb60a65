"""What a search leaves to read: the leaderboard (terminal, CSV, JSON), pareto.png, controller.png,
and the progress bar over trials."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..io import atomic_open, atomic_write_text
from ..train.run import validation_rank
from .controllers import BASELINE_DECAY
from .study import trained, trial_reward, trial_val

COLUMNS = (
    "rank", "trial", "line", "val_top1", "val_loss", "epochs", "params", "macs", "seconds",
    "test_top1",
)  # fmt: skip


def leaderboard(study, final: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per trained child (COMPLETE, or halved: stopped at a rung by ``--pruner``), best
    validation top-1 first; on a tie the lower validation loss (at the child's best epoch), then
    fewer MACs: ``line`` (what ``convnet train`` takes), ``val_top1`` (percent), ``val_loss``,
    ``epochs`` it trained, ``params``, ``macs``, ``seconds`` (the child's training), and
    ``test_top1`` for the lines retrained at the end."""
    final = final or {}
    rows = []
    for t in study.get_trials(deepcopy=False):
        if not trained(t):
            continue
        a = t.user_attrs
        row = {
            "trial": t.number,
            "line": a.get("line", a.get("text", "")),
            "val_top1": round(100 * trial_val(t), 2),
            "val_loss": a.get("val_loss"),
            "epochs": a.get("epochs"),
            "params": int(a.get("params", 0)),
            "macs": int(a.get("macs", 0)),
            "seconds": a.get("seconds"),
            "test_top1": (final.get(t.number) or {}).get("test_top1"),
        }
        rows.append(row)
    rows.sort(key=lambda r: (*validation_rank(r["val_top1"], r["val_loss"]), r["macs"], r["trial"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return [{k: r[k] for k in COLUMNS} for r in rows]


def counts(study) -> dict[str, int]:
    """Trials by outcome: trained (to the last epoch), halved (trained, then stopped at a rung by
    --pruner), invalid (rejected by the notes' rule), over_macs (rejected by --max-macs), failed
    (a child that could not train), interrupted (by a kill; re-queued), surplus (beyond
    --trials)."""
    from optuna.trial import TrialState

    c = dict(
        trained=0, halved=0, invalid=0, over_macs=0, failed=0, interrupted=0, surplus=0,
        queued=0, running=0,
    )  # fmt: skip
    retried = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False)}
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if t.state == TrialState.COMPLETE:
            c["trained"] += 1
        elif trained(t):
            c["halved"] += 1
        elif t.state == TrialState.PRUNED and "invalid" in a:
            c["invalid"] += 1
        elif t.state == TrialState.PRUNED and "over_macs" in a:
            c["over_macs"] += 1
        elif t.state == TrialState.FAIL:
            key = (
                "surplus"
                if a.get("surplus")
                else "interrupted"
                if t.number in retried
                else "failed"
            )
            c[key] += 1
        elif t.state == TrialState.WAITING:
            c["queued"] += 1
        elif t.state == TrialState.RUNNING:
            c["running"] += 1
    return c


def write_leaderboard(out: Path, rows: list[dict[str, Any]], extra: dict[str, Any]) -> None:
    """``leaderboard.csv`` (the columns of COLUMNS) and ``leaderboard.json`` (rows and ``extra``:
    the settings and the counts), written atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "leaderboard.csv", buf.getvalue())
    atomic_write_text(
        out / "leaderboard.json", json.dumps({**extra, "rows": rows}, indent=1) + "\n"
    )


def print_leaderboard(rows: list[dict[str, Any]], c: dict[str, int], limit: int = 10) -> None:
    """The best ``limit`` rows as a table on stdout, and the counts in one line."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="search leaderboard (validation top-1; test only for retrained lines)")
    for col, just in (
        ("#", "right"),
        ("trial", "right"),
        ("line", "left"),
        ("val %", "right"),
        ("val loss", "right"),
        ("epochs", "right"),
        ("params", "right"),
        ("MACs", "right"),
        ("s", "right"),
        ("test %", "right"),
    ):
        # a number never wraps (the line folds instead); the line folds at any character
        table.add_column(col, justify=just, overflow="fold", no_wrap=col != "line")
    for r in rows[:limit]:
        table.add_row(
            str(r["rank"]),
            str(r["trial"]),
            r["line"],
            f"{r['val_top1']:.2f}",
            f"{r['val_loss']:.4f}" if r["val_loss"] is not None else "",
            str(r["epochs"] or ""),
            f"{r['params']:,}",
            f"{r['macs']:,}",
            f"{r['seconds']:.1f}" if r["seconds"] is not None else "",
            f"{r['test_top1']:.2f}" if r["test_top1"] is not None else "",
        )
    # a terminal's (or COLUMNS') width; piped or redirected without COLUMNS, 200 columns rather
    # than rich's 80, which folded the lines to a few characters
    console = Console(width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200)
    console.print(table)
    console.print(", ".join(f"{v} {k}" for k, v in c.items() if v or k in ("trained", "invalid")))


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (macs, acc) no other point beats: fewer or equal MACs and higher or
    equal accuracy, one of them strictly. Sorted by MACs."""
    front = []
    for i, (m, a) in enumerate(points):
        dominated = any(
            (m2 <= m and a2 >= a) and (m2 < m or a2 > a)
            for j, (m2, a2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def plot_pareto(rows: list[dict[str, Any]], path: Path, macs_ref: int | None = None) -> None:
    """pareto.png: validation top-1 against MACs (log scale) for every trained child, the front
    joined, ringed and labelled with trial numbers; ``macs_ref`` as a dashed vertical line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(max(r["macs"], 1), r["val_top1"]) for r in rows]
    front = pareto_front(pts)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=130)
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=22, color="0.55", label="trained child")
    fx, fy = [pts[i][0] for i in front], [pts[i][1] for i in front]
    ax.step(fx, fy, where="post", color="tab:red", lw=1.5)
    ax.scatter(fx, fy, s=60, facecolors="none", edgecolors="tab:red", lw=1.5, label="Pareto front")
    for i in front:  # the trial number, to find the line in the leaderboard
        ax.annotate(f"trial {rows[i]['trial']}", pts[i], textcoords="offset points", xytext=(6, -10),
                    fontsize=7, color="tab:red")  # fmt: skip
    if macs_ref:
        ax.axvline(macs_ref, color="tab:blue", ls="--", lw=1, label=f"LeNet-5: {macs_ref:,} MACs")
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds (MACs) per image, log scale")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(f"architecture search: {len(rows)} trained children")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def controller_curve(study, objective: str, macs_target: float) -> list[tuple[int, float, float]]:
    """(trial, reward, moving average) for every reward the controller learned from, in trial
    order: the baseline recurrence b = R_0, then b <- beta b + (1 - beta) R."""

    out, b = [], None
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        r = trial_reward(t, objective, macs_target)
        if r is None:
            continue
        b = r if b is None else BASELINE_DECAY * b + (1 - BASELINE_DECAY) * r
        out.append((t.number, r, b))
    return out


def plot_controller(curve: list[tuple[int, float, float]], path: Path) -> None:
    """controller.png: the reward of each trial (rejected samples at 0) and its moving average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=130)
    ax.scatter(
        [c[0] for c in curve],
        [c[1] for c in curve],
        s=14,
        color="0.5",
        label="reward (a rejected sample: 0)",
    )
    ax.plot(
        [c[0] for c in curve],
        [c[2] for c in curve],
        color="tab:red",
        lw=2,
        label=f"moving average (beta = {BASELINE_DECAY})",
    )
    ax.set_xlabel("trial")
    ax.set_ylabel("reward (validation accuracy)")
    ax.set_title("REINFORCE controller")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _save(fig, path: Path) -> None:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")


class TrialBar:
    """A rich progress bar over trials on stderr: trained / asked, best validation top-1 so far,
    the last child's training time. Off when disabled or not a terminal."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.progress = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(stderr=True)
        if not console.is_terminal:
            return
        self.progress = Progress(
            TextColumn("search"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task("trials", total=total, stats="")
        self.progress.start()

    def update(self, study) -> None:
        if self.progress is None:
            return
        rows = leaderboard(study)
        c = counts(study)
        last = max((r for r in rows), key=lambda r: r["trial"], default=None)
        stats = f"best {rows[0]['val_top1']:.2f}%" if rows else "best -"
        if last is not None and last["seconds"] is not None:
            stats += f" | last trial {last['seconds']:.1f}s"
        stats += f" | {c['invalid']} invalid"
        if c["over_macs"]:
            stats += f" | {c['over_macs']} over --max-macs"
        self.progress.update(self.task, completed=c["trained"] + c["halved"], stats=stats)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
