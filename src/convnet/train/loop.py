"""The training loop: ``fit(model, data, config)``. ``_run`` reads top to bottom:

set up (three splits, model, pretrained weights, frozen layers, loaders, optimizer, schedule)
-> resume -> for each epoch: for each batch: ``train_step`` (forward under autocast, loss with
auxiliary heads, backward, clip, step, EMA); a checkpoint every N steps and at a SIGTERM -> end
of epoch (validate, record, save best and last; stop early when validation stopped improving)
-> finish (score the test split once, on the best checkpoint; result.json, confusion.json,
curves).

Every choice is made on the validation split (``convnet.data.splits``): best.pt, the plateau
schedule, early stopping. The test split is looked at once, at the end.

Around it: ``fit`` claims the run folder (one run per folder) and either trains in this process,
joins a torchrun process group, or spawns ``nproc`` processes (``distributed``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.splits import SplitInfo, with_validation
from ..errors import ConvnetError, TrainingError
from ..io import atomic_write_text
from ..models import LoadReport, load_weights_report
from ..models.outputs import AuxOutputs, output_kind
from . import distributed as D
from .checkpoint import read_checkpoint, restore_training_state, save_training_checkpoint
from .config import TrainConfig
from .evaluate import main_logits, main_output, validate
from .finetune import Frozen, freeze, group_rates
from .loader import Augment, Loader
from .metrics import EpochBar, EpochSums, RunLog, print_epoch, print_report
from .optim import EMA, LRSchedule, build_optimizer
from .run import Progress, RunSpec, prepare_model, validation_rank
from .run_folder import claim_run_folder

# settings a resumed run may not change: the saved model, optimizer and data order need them
_RESUME_FIXED = (
    "model",
    "data",
    "batch_size",
    "seed",
    "optimizer",
    "no_decay_bn_bias",
    "ema",
    "drop_last",
    "nproc",
    "val_split",  # another split trains and validates on other images
    "freeze",  # the optimizer's groups hold the trainable parameters
)
# settings that do not change what is computed
_RESUME_FREE = (
    "out",
    "progress",
    "device",
    "num_threads",
    "dist_timeout",
    "eval_batch_size",
    "checkpoint_every",
    "weights",  # read only when a run starts; a resumed one continues from its checkpoint
)


def split_outputs(out: Any, kind: str = "scores") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(main logits, auxiliary logits) from a tensor, tuple/namedtuple (main first) or dict.

    ``kind``: the model's :func:`~convnet.models.outputs.output_kind` (for the main output)."""
    main = main_logits(out, kind)
    if isinstance(out, AuxOutputs):  # a NamedTuple whose aux heads sit in one field
        aux = list(out.aux)
    elif isinstance(out, dict):
        aux = [v for v in out.values() if isinstance(v, torch.Tensor) and v is not main_output(out)]
    elif isinstance(out, tuple | list):
        aux = [v for v in out[1:] if isinstance(v, torch.Tensor)]
    else:
        aux = []
    return main, aux


def training_loss(
    out: Any, y: torch.Tensor, cfg: TrainConfig, kind: str = "scores"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``CE(main) + aux_weight * sum_i CE(aux_i)`` (GoogLeNet: 0.3 per auxiliary classifier)."""
    main, aux = split_outputs(out, kind)
    loss = F.cross_entropy(main.float(), y, label_smoothing=cfg.label_smoothing)
    for a in aux:
        loss = loss + cfg.aux_weight * F.cross_entropy(
            a.float(), y, label_smoothing=cfg.label_smoothing
        )
    return loss, main


def fit(
    model: nn.Module | str,
    data: Any = "mnist-sample",
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    on_epoch: Callable[[int, float | None], bool] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train ``model`` (a module, a zoo name, a pattern-language line or ``file.py:Name``) on
    ``data`` (a Dataset or a ``convnet.data.load`` spec) and return the result (result.json's
    keys, plus the test split's ``per_class`` and ``confusion``):

    - ``val_top1``: validation top-1 (percent) of the kept checkpoint, best.pt, the epoch
      ``best_epoch`` with the best validation top-1, the lower validation loss among equal
      top-1s (a few hundred images tie often) (None when nothing is validated);
    - ``test_top1``, ``test_top5``, ``test_loss``: the test split, scored once at the end on that
      checkpoint (``checkpoint`` "best"), or on the last weights when nothing is validated
      (``checkpoint`` "last");
    - ``last_val_top1``: validation top-1 of the last evaluation;
    - ``split``: where the validation split came from and the three sizes;
    - ``epochs``, ``steps``, ``stopped_early``, ``seconds``, ``wall_seconds``,
      ``images_per_second``, ``world_size``, ``out``, ``status`` ("done" or "terminated").

    ``config.out`` is the run folder: a new run needs it new or empty; ``resume`` continues the
    run in it (or finishes one killed after its last checkpoint); ``force`` moves what is there
    into ``out/replaced-TIME/`` first. While training, the folder is locked against other runs.
    With ``config.nproc > 1`` it spawns that many processes (DistributedDataParallel); under
    torchrun it joins the process group the environment describes.
    """
    cfg = (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
    if resume and force:
        raise ConvnetError(
            "--resume continues the run in --out and --force starts a new one there; give one"
        )
    D.pick_device(cfg.device)  # a device this machine lacks is refused before a folder is made
    world = D.env_world()
    if world is None and cfg.nproc > 1:
        if on_epoch is not None:
            raise ConvnetError("on_epoch runs in this process: train with nproc 1 to use it")
        return _spawn(model, data, cfg, resume, force)
    d = world or D.Dist()
    with claim_run_folder(cfg.out if d.is_main else None, resume=resume, force=force):
        return _train(model, data, cfg, resume, d, on_epoch=on_epoch)


def _spawn(model: Any, data: Any, cfg: TrainConfig, resume: bool, force: bool) -> dict[str, Any]:
    """Train in ``cfg.nproc`` processes; this one holds the run folder and passes SIGTERM on."""
    import tempfile

    tmp = None
    if cfg.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="convnet-run-")
        cfg = cfg.replace(out=tmp.name)
    out = Path(cfg.out)
    try:
        with claim_run_folder(out, resume=resume, force=force):
            try:
                D.spawn(_spawned, cfg.nproc, (model, data, cfg, resume))
            except D.RankDied as e:
                kept = (
                    f"{out / 'last.pt'} holds the last checkpoint (continue with --resume)"
                    if tmp is None and (out / "last.pt").is_file()
                    else "no checkpoint was saved"
                )
                raise TrainingError(f"{e}; {kept}") from None
        result = json.loads((out / "result.json").read_text())
        if tmp is not None:
            result["out"] = None
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def _spawned(
    rank: int, world: int, model: Any, data: Any, cfg: TrainConfig, resume: bool, *, stop=None
) -> None:
    _train(model, data, cfg, resume, D.Dist(rank, world, rank), stop)


def _train(
    model: Any,
    data: Any,
    cfg: TrainConfig,
    resume: bool,
    d: D.Dist,
    stop: D.StopRequest | None = None,
    on_epoch: Callable[[int, float | None], bool] | None = None,
) -> dict[str, Any]:
    device = D.local_device(d, cfg.device)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", d.world))
    threads = torch.get_num_threads()  # the caller's, restored after the run
    if device.type == "cpu" or cfg.num_threads:
        torch.set_num_threads(cfg.num_threads or D.default_threads(local_world))
    if d.enabled:
        D.init(d, device, cfg.dist_timeout)
    try:
        with stop or D.StopRequest() as stop:
            result = _run(model, data, cfg, resume, d, device, stop, on_epoch)
        D.barrier()  # tear the group down together: gloo can abort a rank that leaves early
        return result
    finally:
        D.shutdown()
        torch.set_num_threads(threads)


@dataclass
class Run:
    """What one training process holds: the run's description, the model and its optimizer,
    the data loaders and where the run stands."""

    cfg: TrainConfig
    d: D.Dist
    out: Path | None
    spec: RunSpec
    config: dict[str, Any]  # the resolved config, as config.json and checkpoints record it
    model: nn.Module  # the weights that are saved
    net: nn.Module  # what runs the forward pass: the model, DDP- and/or compile-wrapped
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    ema: EMA | None
    autocast: Any
    kind: str  # output_kind: a model ending in a softmax trains on log p
    loader: Loader
    val_loader: Loader | None  # None: nothing is validated (--val-split 0)
    test_loader: Loader
    split: SplitInfo
    frozen: Frozen  # parameters and batch-norm layers --freeze keeps fixed
    loaded: LoadReport | None  # what --weights loaded (None: no file, or a resumed run)
    progress: Progress
    guard: FiniteGuard
    log: RunLog | None = None
    best_state: dict[str, torch.Tensor] | None = None  # the evaluated weights of best.pt (CPU)


def _run(
    model: Any,
    data: Any,
    cfg: TrainConfig,
    resume: bool,
    d: D.Dist,
    device: torch.device,
    stop: D.StopRequest,
    on_epoch: Callable[[int, float | None], bool] | None = None,
) -> dict[str, Any]:
    t_start = time.perf_counter()
    if isinstance(data, str):
        from ..data import load

        data = load(data)
    data, split = with_validation(data, cfg.val_split)
    run = _setup(model, data, split, cfg, d, device, resume)
    if resume and run.out is not None:
        _resume(run)
    if run.out is not None and d.is_main:
        atomic_write_text(run.out / "config.json", json.dumps(run.config, indent=2) + "\n")
    run.log = RunLog(run.out if d.is_main else None, resume=resume)
    run.log.truncate(run.progress.epoch)
    _announce(run, device)
    sync_every = 1 if device.type == "cpu" and not d.enabled else 20
    p, n_batches = run.progress, len(run.loader)
    final: dict[str, Any] = {}
    stopping = False
    for epoch in range(p.epoch, cfg.epochs):
        if _stop_early(run):
            break
        run.frozen.train_mode(run.model)  # frozen batch-norm layers stay in eval mode
        sums = EpochSums(p.loss_sum, p.correct, device)
        bar = EpochBar(d.is_main and cfg.progress, epoch, cfg.epochs, n_batches, p.step_in_epoch)
        t_epoch = time.perf_counter() - p.epoch_seconds
        for k, xb, yb in run.loader.batches(epoch, start=p.step_in_epoch):
            loss, logits = train_step(run, xb, yb)
            run.guard.observe(loss, p.global_step)
            sums.add(loss, logits, yb)
            p.advance(len(yb))
            due = cfg.checkpoint_every > 0 and p.global_step % cfg.checkpoint_every == 0
            if due or (k + 1) % sync_every == 0 or k + 1 == n_batches:
                run.guard.check(run)
                stopping = D.agree(stop.requested, d)
                bar.update(
                    k + 1, *_running(sums, p), p.count * d.world, time.perf_counter() - t_epoch
                )
            if (due or stopping) and k + 1 < n_batches:
                _checkpoint_mid_epoch(run, sums, t_epoch)
            if stopping:
                break
        bar.close()
        if stopping and p.step_in_epoch < n_batches:
            break
        final = _end_epoch(run, epoch, sums, t_epoch)
        if stopping or (on_epoch is not None and _told_to_stop(on_epoch, epoch, final, d)):
            break
    return _finish(run, final, "terminated" if stopping else "done", t_start)


def _told_to_stop(on_epoch: Callable, epoch: int, final: dict[str, Any], d: D.Dist) -> bool:
    """``fit``'s ``on_epoch`` hook, asked in the main process; every rank learns its answer."""
    return D.agree(d.is_main and bool(on_epoch(epoch + 1, final.get("top1"))), d)


def _augment(cfg: TrainConfig, x_train: torch.Tensor) -> Augment:
    """The training augmentation of ``cfg``; the colour PCA for AlexNet's jitter is taken over
    the pixels of the training split only (the validation images are held out of it too)."""
    from ..data.augment import rgb_pca

    pca = rgb_pca(x_train) if cfg.pca_jitter > 0 else None
    return Augment(cfg.crop_padding, cfg.hflip, cfg.cutout, cfg.pca_jitter, pca)


def _setup(
    model: Any,
    data: Any,
    split: SplitInfo,
    cfg: TrainConfig,
    d: D.Dist,
    device: torch.device,
    resume: bool = False,
) -> Run:
    """Build the model for the data and everything that trains it; nothing is written (the
    pretrained weights are read, unless the run resumes from its own checkpoint)."""
    model, spec, frozen, loaded = _prepare_model(model, data, split, cfg, resume)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    common = dict(
        input_size=spec.input_size,
        mean=data.mean,
        std=data.std,
        rank=d.rank,
        world=d.world,
        device=device,
        channels_last=cfg.channels_last,
        resize=cfg.resize,
    )
    loader = Loader(
        data.x_train,
        data.y_train,
        cfg.batch_size,
        train=True,
        seed=cfg.seed,
        augment=_augment(cfg, data.x_train),
        drop_last=cfg.drop_last,
        **common,
    )
    val_loader = (
        Loader(data.x_val, data.y_val, cfg.eval_batch_size, train=False, **common)
        if split.val
        else None
    )
    test_loader = Loader(data.x_test, data.y_test, cfg.eval_batch_size, train=False, **common)
    if len(loader) == 0:
        raise ConvnetError(
            f"batch {cfg.batch_size} is larger than the {data.x_train.shape[0]} training images"
        )
    optimizer = build_optimizer(model, cfg)
    net = model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    out = Path(cfg.out) if cfg.out else None
    return Run(
        cfg=cfg,
        d=d,
        out=out,
        spec=spec,
        config={"model": spec.model, "data": spec.data, **cfg.to_dict()},
        model=model,
        net=net,
        optimizer=optimizer,
        schedule=LRSchedule(optimizer, cfg, len(loader)),
        ema=EMA(model, cfg.ema) if cfg.ema > 0 else None,
        autocast=D.autocast_for(cfg.precision, device),
        kind=output_kind(model),
        loader=loader,
        val_loader=val_loader,
        test_loader=test_loader,
        split=split,
        frozen=frozen,
        loaded=loaded,
        progress=Progress(),
        guard=FiniteGuard(device, d, out),
    )


def _prepare_model(
    model: Any, data: Any, split: SplitInfo, cfg: TrainConfig, resume: bool
) -> tuple[nn.Module, RunSpec, Frozen, LoadReport | None]:
    """The model built for the data (seeded), its pretrained weights loaded (``cfg.weights``;
    not when resuming: the checkpoint holds newer ones) and its ``cfg.freeze`` layers fixed;
    the run's spec, with the split; and what was frozen and loaded."""
    if split.val == 0 and (cfg.schedule == "plateau" or cfg.early_stop > 0):
        what = "the plateau schedule" if cfg.schedule == "plateau" else "--early-stop"
        raise ConvnetError(
            f"{what} follows the validation top-1, but nothing is validated (--val-split 0); "
            "give --val-split > 0 (e.g. 0.1) or another --schedule"
        )
    torch.manual_seed(cfg.seed)
    model, spec = prepare_model(model, data)
    loaded = load_weights_report(model, cfg.weights) if cfg.weights and not resume else None
    frozen = freeze(model, cfg.freeze)
    return model, dataclasses.replace(spec, split=split.to_dict()), frozen, loaded


def train_step(run: Run, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch at the schedule's rate for the current global step:
    forward under autocast, loss (with auxiliary heads), backward, clip, step, EMA update.
    Returns the loss and the main logits, detached; reads nothing back from the device."""
    run.schedule.set(run.progress.global_step)
    with run.autocast:
        outputs = run.net(x)
    loss, logits = training_loss(outputs, y, run.cfg, run.kind)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if run.cfg.clip_grad > 0:
        nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.clip_grad)
    run.optimizer.step()
    if run.ema is not None:
        run.ema.update(run.model)
    return loss.detach(), logits.detach()


def _running(sums: EpochSums, p: Progress) -> tuple[float, float]:
    """The epoch's mean loss and top-1 (percent) so far, on this process."""
    return float(sums.loss) / max(1, p.count), 100.0 * float(sums.correct) / max(1, p.count)


def _checkpoint(run: Run, name: str = "last.pt") -> None:
    """Save ``out/name`` (rank 0) once every rank agrees the loss and weights are finite."""
    run.guard.check(run, weights=True)  # a collective: every rank calls it
    if run.out is None or not run.d.is_main:
        return
    save_training_checkpoint(
        run.out / name,
        model=run.model,
        optimizer=run.optimizer,
        schedule=run.schedule,
        ema=run.ema,
        progress=run.progress.state_dict(),
        spec=run.spec.to_dict(),
        config=run.config,
    )
    if name == "last.pt":
        run.guard.saved_step = run.progress.global_step


def _checkpoint_mid_epoch(run: Run, sums: EpochSums, t_epoch: float) -> None:
    """Save last.pt inside an epoch, with the epoch's running sums over every process (rank 0
    resumes with them, the other ranks from zero)."""
    p, d = run.progress, run.d
    p.loss_sum, p.correct = float(D.all_sum(sums.loss, d)), int(D.all_sum(sums.correct, d))
    p.epoch_seconds = time.perf_counter() - t_epoch
    _checkpoint(run)


def _end_epoch(run: Run, epoch: int, sums: EpochSums, t_epoch: float) -> dict[str, Any]:
    """The epoch is complete: validate (when due), record it, save best.pt (when validation
    improved) and last.pt, in that order, so a kill between any two leaves a state --resume can
    finish. Returns the validation (empty when none was due or nothing is validated)."""
    p, cfg, d = run.progress, run.cfg, run.d
    train_seconds = time.perf_counter() - t_epoch
    images = p.count * d.world
    p.train_seconds += train_seconds
    p.train_images += images
    record = {
        "epoch": epoch + 1,
        "step": p.global_step,
        "lr": _head_lr(run.optimizer),
        "train_loss": float(D.all_sum(sums.loss, d)) / max(1, images),
        "train_top1": 100.0 * float(D.all_sum(sums.correct, d)) / max(1, images),
        "seconds": train_seconds,
        "images_per_second": images / max(train_seconds, 1e-9),
    }
    final: dict[str, Any] = {}
    due = (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs
    if due and run.val_loader is not None:
        final = _evaluate(run, run.val_loader)
        record.update(val_loss=final["loss"], val_top1=final["top1"], val_top5=final["top5"])
        run.schedule.epoch_end(final["top1"])
    p.next_epoch()
    p.seconds += time.perf_counter() - t_epoch
    val = record.get("val_top1")
    improved = val is not None and validation_rank(val, record["val_loss"]) < validation_rank(
        p.best_top1, p.best_loss
    )
    if improved:
        p.best_top1, p.best_loss, p.best_epoch = record["val_top1"], record["val_loss"], epoch + 1
        evaluated = run.ema.module if run.ema is not None else run.model
        run.best_state = {
            k: v.detach().to("cpu", copy=True) for k, v in evaluated.state_dict().items()
        }
    if d.is_main:
        run.log.append(record)
        if cfg.progress:
            print_epoch(record, cfg.epochs)
    if improved:
        _checkpoint(run, "best.pt")
    _checkpoint(run)
    return final


def _head_lr(optimizer: torch.optim.Optimizer) -> float:
    """The learning rate a record shows: the head's group's (``--lr`` unless ``--lr-head``)."""
    groups = optimizer.param_groups
    return next((g["lr"] for g in groups if g.get("name") == "head"), groups[0]["lr"])


def _early_stop_due(run: Run) -> bool:
    """Whether ``--early-stop N`` epochs have passed since the best validation top-1."""
    p, n = run.progress, run.cfg.early_stop
    return n > 0 and p.best_epoch > 0 and p.epoch - p.best_epoch >= n


def _stop_early(run: Run) -> bool:
    """:func:`_early_stop_due`, saying so when it ends the run."""
    p, n = run.progress, run.cfg.early_stop
    if not _early_stop_due(run):
        return False
    if run.d.is_main and run.cfg.progress:
        print(
            f"early stop after epoch {p.epoch}: no better validation top-1 in {n} epoch(s) "
            f"(best {p.best_top1:.2f}% at epoch {p.best_epoch})",
            flush=True,
        )
    return True


def _evaluate(run: Run, loader: Loader, weights: dict[str, torch.Tensor] | None = None) -> dict:
    """Top-1/top-5, loss, per-class accuracy and confusion on ``loader``'s split, with the
    evaluated weights (the EMA's when the run keeps one), or a copy of that module holding
    ``weights`` (the best checkpoint's)."""
    model = run.ema.module if run.ema is not None else run.model
    if weights is not None:
        model = copy.deepcopy(model)
        model.load_state_dict(weights)
    return validate(model, loader, run.spec.classes, run.autocast)


def _best_weights(run: Run) -> dict[str, torch.Tensor] | None:
    """The evaluated weights of best.pt: kept in memory since it was saved, or read back from
    the run folder (a resumed run that has not improved since); None when there is none."""
    if run.best_state is not None or run.out is None or not (run.out / "best.pt").is_file():
        return run.best_state
    state = read_checkpoint(run.out / "best.pt")
    ema = state.get("ema") if run.ema is not None else None
    return ema["weights"] if isinstance(ema, dict) else state["model"]


def _finish(run: Run, final: dict[str, Any], status: str, t_start: float) -> dict[str, Any]:
    """Score the test split once (the best checkpoint, or the last weights when nothing is
    validated), write result.json, confusion.json (the test split's) and the curves (rank 0),
    report, and return the result."""
    p, d, out = run.progress, run.d, run.out
    test: dict[str, Any] = {}
    if status == "done":
        if not final and run.val_loader is not None:  # resumed after the last checkpoint
            final = _evaluate(run, run.val_loader)
        best = _best_weights(run)
        test = _evaluate(run, run.test_loader, best)
    result = {
        "val_top1": p.best_top1 if p.best_top1 >= 0 else None,
        "val_loss": p.best_loss if p.best_epoch else None,  # the best epoch's (breaks ties)
        "best_epoch": p.best_epoch or None,
        "test_top1": test.get("top1"),
        "test_top5": test.get("top5"),
        "test_loss": test.get("loss"),
        "checkpoint": ("best" if p.best_epoch else "last") if test else None,
        "last_val_top1": final.get("top1"),
        "split": run.split.to_dict(),
        "epochs": p.epoch,
        "steps": p.global_step,
        "stopped_early": status == "done" and p.epoch < run.cfg.epochs,
        "seconds": round(p.seconds, 3),
        "wall_seconds": round(time.perf_counter() - t_start, 3),
        "images_per_second": round(p.train_images / max(p.train_seconds, 1e-9), 1),
        "status": status,
        "out": str(out) if out else None,
        "world_size": d.world,
    }
    if d.is_main and out is not None:
        if test:
            keys = ("classes", "per_class", "confusion", "top1", "top5", "n")
            scored = {"split": "test", "checkpoint": result["checkpoint"]}
            text = json.dumps({**scored, **{k: test[k] for k in keys}}, indent=1) + "\n"
            atomic_write_text(out / "confusion.json", text)
        atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
        run.log.plot()
    if d.is_main and run.cfg.progress and test:
        print_report(result, test)
    if status == "terminated" and d.is_main:
        saved = out / "last.pt" if out else "nothing"
        print(
            f"stopped by SIGTERM at step {p.global_step}; saved {saved}; continue with --resume",
            flush=True,
        )
    result.update(per_class=test.get("per_class"), confusion=test.get("confusion"))
    return result


def _resume(run: Run) -> None:
    """Continue from ``out/last.pt``: check the settings, restore every state and the progress.

    The optimizer keeps this run's hyperparameters, so a changed --lr, schedule or epoch count
    applies from the resumed step (and is named in one warning). A run whose epochs are all
    trained but whose result.json is missing (killed after its last checkpoint) is finished.
    """
    out = run.out
    state = read_checkpoint(out / "last.pt", map_location=run.loader.device)
    if not isinstance(state.get("progress"), dict):
        raise ConvnetError(
            f"{out / 'last.pt'}: no progress record to resume from; start a new --out"
        )
    run.progress.load_state_dict(state["progress"])
    p = run.progress
    if not run.d.is_main:  # the saved running sums are every process's: rank 0 carries them
        p.loss_sum, p.correct = 0.0, 0
    saved = state.get("config") if isinstance(state.get("config"), dict) else {}
    _check_resume(saved, run.config, out, warn=run.d.is_main, step=p.global_step)
    restore_training_state(
        state,
        out / "last.pt",
        model=run.model,
        optimizer=run.optimizer,
        schedule=run.schedule,
        ema=run.ema,
    )
    run.guard.saved_step = p.global_step
    if p.epoch >= run.cfg.epochs and _finished(out, p):
        raise ConvnetError(
            f"{out} has already trained its {p.epoch} epochs; pass a larger --epochs to "
            "train it further"
        )
    if _early_stop_due(run) and _finished(out, p):
        raise ConvnetError(
            f"{out} stopped early after epoch {p.epoch} (no better validation top-1 since epoch "
            f"{p.best_epoch}); pass a larger --early-stop, or 0, to train it further"
        )


def _finished(out: Path, p: Progress) -> bool:
    """Whether ``out/result.json`` reports this checkpoint's run as done."""
    try:
        result = json.loads((out / "result.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(result, dict)
        and result.get("status") == "done"
        and result.get("steps", p.global_step) == p.global_step
    )


def _check_resume(
    saved: dict[str, Any],
    now: dict[str, Any],
    out: Path,
    warn: bool = True,
    step: int | None = None,
) -> None:
    """Refuse a resume that changes what the checkpoint's state depends on; warn about the rest.

    Resuming after a crash with the same command changes nothing and says nothing. A changed
    learning rate, schedule or more epochs is applied from the resumed ``step`` (the run then no
    longer equals an uninterrupted one, which the one-line warning says); a changed batch, seed
    or optimizer would misread the saved data order or optimizer state, so it is an error naming
    the setting and both values.
    """

    def show(v: Any) -> str:
        return json.dumps(v) if isinstance(v, list | dict) else str(v)

    changed = [k for k in now if k in saved and k not in _RESUME_FREE and saved[k] != now[k]]
    fixed = [k for k in changed if k in _RESUME_FIXED]
    if fixed:
        what = ", ".join(f"{k} {show(saved[k])} -> {show(now[k])}" for k in fixed)
        raise ConvnetError(
            f"{out} was trained with other settings ({what}); resume it with the run's own "
            "settings (see its config.json) or start a new --out"
        )
    if changed and warn:  # every rank refuses; only rank 0 warns
        what = ", ".join(f"{k} {show(saved[k])} -> {show(now[k])}" for k in changed)
        at = f"from step {step}" if step is not None else "from the resumed step"
        warnings.warn(
            f"resuming {out} with changed settings: {what} (applied {at}; the run will differ "
            "from an uninterrupted one)",
            stacklevel=3,
        )


def _announce(run: Run, device: torch.device) -> None:
    """One line: model, parameters, data and its three splits, device, precision, processes,
    recipe, run folder; then, where they apply, what --weights loaded, what --freeze fixed, the
    head's and backbone's rates, and that nothing is validated."""
    if not (run.d.is_main and run.cfg.progress):
        return
    cfg, spec = run.cfg, run.spec
    n_params = sum(p.numel() for p in run.model.parameters())
    precision = "bf16" if isinstance(run.autocast, torch.autocast) else "fp32"
    print(
        f"{spec.model or type(run.model).__name__} ({n_params:,} parameters) on {spec.data} "
        f"({run.split.describe()}), {device.type} "
        f"{precision} x {run.d.world} process(es): {cfg.optimizer} lr {cfg.lr:g} {cfg.schedule}, "
        f"batch {cfg.batch_size}, {cfg.epochs} epochs" + (f" -> {run.out}" if run.out else ""),
        flush=True,
    )
    if run.loaded is not None:
        print(f"weights: {run.loaded.describe()}", flush=True)
    if run.frozen.parameters:
        print(run.frozen.describe(cfg.freeze), flush=True)
    rates = group_rates(cfg)
    if rates["head"] != rates["backbone"]:
        print(f"learning rates: head {rates['head']:g}, backbone {rates['backbone']:g}", flush=True)
    if run.val_loader is None:
        print(
            "nothing is validated (--val-split 0): no best.pt, no choice on held-out data; the "
            "test split is scored once, at the end, with the last epoch's weights",
            flush=True,
        )


class FiniteGuard:
    """Stops a run whose loss or model state became non-finite before a checkpoint holds it.

    ``observe`` remembers the first step whose loss was not finite in a device tensor (no sync
    per step); ``check`` reads it at the loop's sync points and, before every save, also checks
    the model's state: a finite loss can come with overflowing weights, and a batch-norm layer
    keeps the loss finite while its running variance overflows (lr x 1e12 did that). Every
    rank takes part and the ranks agree on the earliest bad step.
    """

    NONE = 2**62  # "no non-finite value seen"

    def __init__(self, device: torch.device, d: D.Dist, out: Path | None) -> None:
        self.bad_loss = torch.full((), self.NONE, dtype=torch.int64, device=device)
        self.d = d
        self.out = out
        self.saved_step = 0  # global step of the last last.pt written (0: none)

    @torch.no_grad()
    def observe(self, loss: torch.Tensor, step: int) -> None:
        seen = self.bad_loss != self.NONE
        self.bad_loss = torch.where(torch.isfinite(loss) | seen, self.bad_loss, step)

    @torch.no_grad()
    def check(self, run: Run, weights: bool = False) -> None:
        """Raise TrainingError when a loss (or, with ``weights``, a weight or a floating buffer
        such as a running variance) is not finite."""
        now = run.progress.global_step
        bad = [self.bad_loss]
        if weights:
            state = [t for t in run.model.state_dict().values() if t.is_floating_point()]
            finite = torch.stack([torch.isfinite(t).all() for t in state]).all()
            bad.append(torch.where(finite, self.NONE, now - 1).to(self.bad_loss))
        loss_step, *state_step = D.all_min(torch.stack(bad), self.d).tolist()
        if loss_step != self.NONE:
            what, step, where = "loss", loss_step, f"at step {loss_step}"
        elif state_step and state_step[0] != self.NONE:
            what, step, first = "weights or running statistics", state_step[0], self.saved_step
            where = f"at step {step}" if first >= step else f"between steps {first} and {step}"
        else:
            return
        lr = run.cfg.lr * run.schedule.factor(step)
        kept = (
            f"the last good checkpoint is {self.out / 'last.pt'} (step {self.saved_step})"
            if self.out is not None and self.saved_step
            else "no checkpoint was saved"
        )
        raise TrainingError(
            f"the {what} became non-finite {where} (epoch {run.progress.epoch + 1}, lr {lr:.4g}); "
            f"{kept}; lower --lr, add --clip-grad or --warmup-epochs"
        )
