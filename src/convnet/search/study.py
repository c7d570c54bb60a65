"""The search loop, over a study in Optuna's storage.

One *trial* is one sampled architecture. A worker: asks the study for a trial; the controller
fills in its decisions; the space decodes them; an invalid sample (a layer that does not fit,
by the notes' rule), or one over ``max_macs``, is recorded as PRUNED with the reason and costs
no training (Optuna's samplers rank a PRUNED trial below every COMPLETE one); a valid one
is trained by ``convnet.train.fit`` on the training split for ``child_epochs`` and told its
validation top-1 (and its MACs, for ``--objective val-macs``). The test split is never given
to a child: the child's data set holds the validation split in the place of the test split.

Counting is exact across workers and machines: a valid trial trains only when fewer than
``trials`` valid trials with lower numbers are COMPLETE or RUNNING (trial numbers are handed out
by the storage, atomically); one beyond is FAILed as ``surplus`` before training. A search that
was killed leaves RUNNING trials behind: ``--resume`` FAILs them as ``interrupted`` and queues
their decisions again, so the architecture is trained once and counted once.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.dataset import Dataset
from .controllers import CONTROLLERS, Reinforce, optuna_sampler, scalar_reward
from .space import SPACES, Child, SearchError, make_space

OBJECTIVES = ("val", "val-macs")
PRUNERS = ("none", "asha")
HALVING = 3  # successive halving keeps the best third at each rung (Li et al. 2020, ASHA)
STUDY = "search"
LENET5_MACS = 416_520  # LeNet-5 at 32x32 (convnet summary lenet5): the MACs to beat
INSTALL = "pip install 'convnet[search]'"
MAX_REJECTED_IN_A_ROW = 500  # a controller stuck on rejected samples is a bug worth stopping on


@dataclass
class SearchConfig:
    """What a search is asked to do (``convnet search``'s options, with units)."""

    space: str = "pattern"
    controller: str = "reinforce"
    data: str = "mnist-sample"
    trials: int | None = 20  # valid (trained) trials; None: until the budget runs out
    budget: float | None = None  # seconds of wall time for starting trials; None: no limit
    child_epochs: int = 1  # epochs each child trains (with pruner "asha": at most)
    pruner: str = "none"  # "asha": successive halving stops children at 1, 3, 9, ... epochs
    child_images: int = 0  # training images each child sees (0: the whole training split)
    objective: str = "val"
    out: str = "runs/search"
    workers: int = 1
    storage: str | None = None  # None: sqlite:///OUT/study.db
    seed: int = 0
    val_split: float = 0.1  # share of the training split each child is validated on
    top_k: int = 1  # best lines retrained with the full recipe and scored on test once
    recipe: str = "lenet"
    final_epochs: int | None = None  # None: the recipe's
    macs_target: int = LENET5_MACS
    max_macs: int | None = None  # children above this many multiply-adds are rejected untrained
    progress: bool = True

    def check(self) -> None:
        """Raise SearchError naming the first option that cannot work, and the fix."""
        from ..train.config import RECIPES

        for name, value, allowed in (
            ("space", self.space, SPACES),
            ("controller", self.controller, CONTROLLERS),
            ("objective", self.objective, OBJECTIVES),
            ("pruner", self.pruner, PRUNERS),
            ("recipe", self.recipe, tuple(RECIPES)),
        ):
            if value not in allowed:
                raise SearchError(f"--{name} {value!r}: give one of {', '.join(allowed)}")
        if self.trials is None and self.budget is None:
            raise SearchError("give --trials N or --budget TIME (or both)")
        ranges = (
            ("trials", self.trials, 1, 100_000),
            ("budget", self.budget, 1, 30 * 86_400),
            ("child-epochs", self.child_epochs, 1, 1000),
            ("child-images", self.child_images, 0, 10**9),
            ("workers", self.workers, 1, 256),
            ("top-k", self.top_k, 0, 100),
            ("final-epochs", self.final_epochs, 1, 10_000),
            ("macs-target", self.macs_target, 1, 10**15),
            ("max-macs", self.max_macs, 1, 10**15),
            ("seed", self.seed, 0, 2**31 - 1),
        )
        for name, value, lo, hi in ranges:
            if value is not None and not lo <= value <= hi:
                raise SearchError(f"--{name} {value}: give a value in [{lo}, {hi}]")
        if self.pruner != "none" and self.objective != "val":
            raise SearchError(
                f"--pruner {self.pruner} compares children on validation top-1 alone: give "
                "--objective val (or --pruner none)"
            )
        if not 0 < self.val_split < 1:
            raise SearchError(f"--val-split {self.val_split}: give a fraction in (0, 1), e.g. 0.1")
        if self.storage and not self.storage.startswith(("sqlite:///", "postgresql")):
            raise SearchError(
                f"--storage {self.storage!r}: give sqlite:///PATH or postgresql://USER@HOST/DB"
            )

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(Path(self.out) / 'study.db').resolve()}"

    def fixed(self) -> dict[str, Any]:
        """The settings a resumed search must keep: they define what a trial and its reward are."""
        keys = (
            "space",
            "controller",
            "data",
            "child_epochs",
            "child_images",
            "objective",
            "pruner",
        )
        return {
            k: getattr(self, k) for k in (*keys, "seed", "val_split", "macs_target", "max_macs")
        }


def need_optuna():
    """Optuna, or a SearchError with the one line that installs it."""
    try:
        import optuna
    except ImportError:
        raise SearchError(f"search needs Optuna: {INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def open_storage(url: str):
    """Optuna's RDB storage for ``url``: SQLite waits up to 60 s for a lock (several workers
    write to one file), PostgreSQL needs psycopg2."""
    optuna = need_optuna()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": 60}}
    url = postgres_driver(url)
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=None)
    except ImportError as e:
        raise SearchError(
            f"--storage {url.split(':')[0]} needs its driver ({e}): {INSTALL}"
        ) from None
    if url.startswith("sqlite"):
        _fast_sqlite(storage.engine)
    return storage


def _fast_sqlite(engine) -> None:
    """Write-ahead logging without an fsync per commit: Optuna commits once per parameter, and
    ~40 fsyncs per trial cost seconds on a slow disk. WAL also lets workers read while one
    writes; a crash can lose the last commits, never corrupt the file."""
    from sqlalchemy import event

    def pragmas(conn, _record) -> None:
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # connections opened before the listener get the pragmas when reopened


def postgres_driver(url: str) -> str:
    """A bare ``postgresql://`` URL with the driver that is installed: SQLAlchemy 2.1 defaults
    to psycopg 3, convnet[search] installs psycopg2; an explicit ``postgresql+DRIVER://`` stays."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url[len("postgresql://") :]
    return url


def search_data(cfg: SearchConfig, data: Any = None) -> tuple[Dataset, Dataset]:
    """(the full data set with its validation split, the children's data set). The children's
    holds the training split (its first ``child_images`` of a seeded permutation when given)
    and the validation split twice, as validation and in the place of test: the trainer scores
    its "test" split at the end, and during a search that must not be the real one."""
    from ..data import load
    from ..data.splits import with_validation

    data = load(cfg.data, progress=False) if data is None else data
    data, _ = with_validation(data, cfg.val_split)
    x, y = data.x_train, data.y_train
    if 0 < cfg.child_images < x.shape[0]:
        keep = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(cfg.seed))
        x, y = x[keep[: cfg.child_images]], y[keep[: cfg.child_images]]
    child = dataclasses.replace(
        data, x_train=x, y_train=y, x_test=data.x_val, y_test=data.y_val, name=f"{data.name}/search"
    )
    return data, child


def make_study(cfg: SearchConfig, storage, sampler=None, create: bool = False):
    """The study in ``storage``, with ``sampler`` and the pruner of ``cfg.pruner``: for "asha",
    Optuna's asynchronous successive halving over epochs (rungs at 1, 3, 9, ... epochs; a child
    goes on past a rung only while its validation top-1 is in the best third there)."""
    optuna = need_optuna()
    directions = ["maximize"] if cfg.objective == "val" else ["maximize", "minimize"]
    pruner = (
        optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=HALVING)
        if cfg.pruner == "asha"
        else optuna.pruners.NopPruner()
    )
    if create:
        return optuna.create_study(
            storage=storage,
            study_name=STUDY,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    return optuna.load_study(storage=storage, study_name=STUDY, sampler=sampler, pruner=pruner)


@dataclass
class Worker:
    """One process's share of a search: its data, space, study and controller."""

    cfg: SearchConfig
    index: int = 0
    data: Any = None  # a Dataset instead of loading cfg.data (Python callers, tests)
    on_trial: Any = None  # called with the study after each finished trial

    def __post_init__(self) -> None:
        _, self.child_data = search_data(self.cfg, self.data)
        c = self.child_data
        self.space = make_space(self.cfg.space, tuple(c.x_train.shape[1:]), len(c.classes))
        seed = self.cfg.seed * 7919 + self.index  # workers draw different samples
        self.sampler = optuna_sampler(self.cfg.controller, seed)
        self.study = make_study(self.cfg, open_storage(self.cfg.storage_url()), self.sampler)
        self.controller = (
            Reinforce(self.space.decisions, self.cfg.seed)
            if self.cfg.controller == "reinforce"
            else None
        )
        self.applied: set[int] = set()

    def run(self, deadline: float | None) -> None:
        """Trials until ``trials`` valid ones are done or being trained, or past ``deadline``
        (``time.time()`` seconds)."""
        rejected_in_a_row = 0
        while deadline is None or time.time() < deadline:
            if self.cfg.trials is not None and self._claimed() >= self.cfg.trials:
                return
            status = self.one_trial()
            if status == "surplus":
                return
            rejected_in_a_row = rejected_in_a_row + 1 if status == "rejected" else 0
            if rejected_in_a_row >= MAX_REJECTED_IN_A_ROW:
                limit = f" or over --max-macs {self.cfg.max_macs:,}" if self.cfg.max_macs else ""
                raise SearchError(
                    f"{rejected_in_a_row} samples in a row from {self.cfg.controller} were invalid"
                    f"{limit}; the input may be too small for this space"
                    + (", or --max-macs too low" if limit else "")
                )

    def _claimed(self, below: int | None = None) -> int:
        """Valid trials trained (COMPLETE, or PRUNED by the halving after training) or RUNNING
        (with numbers below ``below`` when given)."""
        n = 0
        for t in self.study.get_trials(deepcopy=False):
            if below is not None and t.number >= below:
                continue
            n += trained(t) or t.state.name == "RUNNING" and bool(t.user_attrs.get("valid"))
        return n

    def _wait_for_lower(self, number: int, timeout: float = 30.0) -> None:
        """Wait until every RUNNING trial numbered below ``number`` has been decoded (valid or
        invalid is written within milliseconds of its ask), so the count below is final."""
        from optuna.trial import TrialState

        end = time.time() + timeout
        while time.time() < end:
            pending = [
                t
                for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.number < number and "valid" not in t.user_attrs
            ]
            if not pending:
                return
            time.sleep(0.05)

    def one_trial(self) -> str:
        """Ask, decode, and train one trial; returns "done", "rejected" (invalid or over
        ``max_macs``), "failed" or "surplus"."""
        from optuna.trial import TrialState

        if self.controller is not None:
            self._replay()
        trial = self.study.ask()
        if self.controller is not None:
            actions = self.controller.sample(trial.number)
            self.sampler.pending = {d.name: a for d, a in zip(self.space.decisions, actions)}
        sample = [
            trial.suggest_categorical(d.name, list(range(len(d.choices))))
            for d in self.space.decisions
        ]
        child = self.space.decode(sample)
        trial.set_user_attr("worker", self.index)
        trial.set_user_attr("text", child.text)
        over = self.cfg.max_macs is not None and child.macs > self.cfg.max_macs
        if child.invalid or over:  # rejected untrained: "invalid" or "over_macs" says why
            if child.invalid:
                trial.set_user_attr("invalid", child.invalid)
            else:
                trial.set_user_attr("macs", child.macs)
                trial.set_user_attr(
                    "over_macs", f"{child.macs:,} MACs > --max-macs {self.cfg.max_macs:,}"
                )
            trial.set_user_attr("valid", False)
            self.study.tell(trial, state=TrialState.PRUNED)
            return "rejected"
        for key, value in (("params", child.params), ("macs", child.macs), ("valid", True)):
            trial.set_user_attr(key, value)
        trial.set_user_attr("line", self.model_line(trial.number, child))
        if self.cfg.trials is not None:
            self._wait_for_lower(trial.number)
            if self._claimed(below=trial.number) >= self.cfg.trials:
                trial.set_user_attr("surplus", True)
                self.study.tell(trial, state=TrialState.FAIL)
                return "surplus"
        return self._train(trial, child)

    def _train(self, trial, child: Child) -> str:
        from optuna.trial import TrialState

        from ..errors import ConvnetError
        from ..train import fit, recipe
        from ..train.distributed import usable_cores

        cfg = recipe(
            self.cfg.recipe,
            epochs=self.cfg.child_epochs,
            eval_every=1 if self.cfg.pruner != "none" else self.cfg.child_epochs,
            progress=False,
            seed=self.cfg.seed + trial.number,
            num_threads=max(1, usable_cores() // self.cfg.workers),
        )
        t0 = time.perf_counter()
        halved = False

        def on_epoch(epoch: int, val_top1: float | None) -> bool:
            """Report the epoch's validation to the pruner; True stops the child at this rung
            (the last epoch is not a rung: that child is complete)."""
            nonlocal halved
            if self.cfg.pruner == "none" or val_top1 is None or epoch >= self.cfg.child_epochs:
                return False
            trial.report(val_top1 / 100, epoch)
            halved = trial.should_prune()
            return halved

        try:
            result = fit(self.space.build(child), self.child_data, cfg, on_epoch=on_epoch)
        except (
            ConvnetError,
            RuntimeError,
        ) as e:  # a child that cannot train fails, the search goes on
            trial.set_user_attr("error", str(e).splitlines()[0][:500])
            self.study.tell(trial, state=TrialState.FAIL)
            return "failed"
        seconds = time.perf_counter() - t0
        val = (result["val_top1"] or 0.0) / 100
        trial.set_user_attr("seconds", round(seconds, 3))
        trial.set_user_attr("epochs", result["epochs"])
        trial.set_user_attr("val_loss", result.get("val_loss"))  # at its best epoch: breaks ties
        values = [val] if self.cfg.objective == "val" else [val, float(child.macs)]
        if halved:  # stopped at a rung: PRUNED, its value the best validation so far
            trial.set_user_attr("val_top1", val)
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, values)
        if self.on_trial is not None:
            self.on_trial(self.study)
        return "done"

    def model_line(self, number: int, child: Child) -> str:
        """What ``convnet train`` takes to rebuild the child: the pattern line, or for a NASNet
        child a ``nets/trial_N.py:Net`` file written into the run folder."""
        if self.space.name == "pattern":
            return child.text
        from ..io import atomic_write_text

        path = Path(self.cfg.out) / "nets" / f"trial_{number:04d}.py"
        c = self.child_data
        atomic_write_text(
            path,
            f'"""NASNet child of search trial {number} (convnet search --space nasnet)."""\n\n'
            "from convnet.search.space import build_nasnet_child\n\n"
            f"CELLS = {child.text}\n\n\n"
            "def Net():\n"
            f"    return build_nasnet_child(CELLS, num_classes={len(c.classes)}, "
            f"in_chans={c.x_train.shape[1]})\n",
        )
        return f"{path}:Net"

    def _replay(self) -> None:
        """Bring the REINFORCE policy up to date: one update per finished trial not yet applied,
        in trial-number order (a COMPLETE trial's reward; an invalid sample's, or one over
        ``--max-macs``, is 0)."""
        for t in sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.number in self.applied:
                continue
            reward = trial_reward(t, self.cfg.objective, self.cfg.macs_target)
            if reward is None:
                continue
            actions = [int(t.params[d.name]) for d in self.space.decisions]
            self.controller.update(actions, reward, t.number)
            self.applied.add(t.number)


def trained(t) -> bool:
    """Whether trial ``t`` trained a child: COMPLETE, or PRUNED by the halving after training
    (an invalid or over-MACs sample is PRUNED untrained, with ``valid`` False)."""
    return t.state.name == "COMPLETE" or (
        t.state.name == "PRUNED" and bool(t.user_attrs.get("valid"))
    )


def trial_val(t) -> float | None:
    """A trained trial's validation top-1 in [0, 1] (for a halved one, its best before the stop)."""
    if t.state.name == "COMPLETE":
        return t.values[0]
    return t.user_attrs.get("val_top1") if trained(t) else None


def trial_reward(t, objective: str, macs_target: float) -> float | None:
    """The reward the controller learns from trial ``t``: a trained child's ``scalar_reward``
    (a halved one's from its validation before the stop), 0 for a sample rejected untrained
    (invalid by the notes' rule, or over ``--max-macs``), None when there is none yet."""
    if t.state.name == "COMPLETE":
        return scalar_reward(list(t.values), objective, macs_target)
    if trained(t):
        return scalar_reward([trial_val(t)], objective, macs_target)
    if t.state.name == "PRUNED":
        return 0.0
    return None


def fail_interrupted(study) -> int:
    """FAIL the RUNNING trials a killed search left behind and queue the valid ones' decisions
    again (``retry_of`` names the trial). Returns how many were re-queued."""
    from optuna.trial import TrialState

    queued = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)
        if t.user_attrs.get("valid"):
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            queued += 1
    return queued


def parse_budget(text: str | float | None) -> float | None:
    """'10m', '90s', '1.5h', '600' (seconds) -> seconds; None stays None."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    s = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    scale = units.get(s[-1:], None)
    number = s[:-1] if scale else s
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise SearchError(f"--budget {text!r}: give a time such as 90s, 10m or 1.5h") from None
    if not math.isfinite(value) or value <= 0:
        raise SearchError(f"--budget {text!r}: give a positive time such as 90s, 10m or 1.5h")
    return value
