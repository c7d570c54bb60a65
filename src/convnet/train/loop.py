"""The training loop: ``fit(model, data, config)``. It reads top to bottom:

set up (device, processes, data, model, optimizer, schedule) -> resume -> for each epoch: steps
(forward under autocast, loss with auxiliary heads, backward, clip, step, EMA), checkpoints every N
steps, evaluation, records, last/best checkpoints -> final report and result.json.
"""

from __future__ import annotations

import json
import os
import signal
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .._io import atomic_write_text
from ..errors import ConvnetError, TrainingError
from ..models._output import output_kind
from . import distributed as D
from .checkpoint import read_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .evaluate import Tally, main_logits, main_output, predict_probs
from .loader import Augment, Loader
from .metrics import EpochBar, RunLog, print_epoch, print_report
from .optim import EMA, LRSchedule, build_optimizer

_NONE = 2**62  # "no non-finite loss seen" marker for the first-bad-step tensor


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: the GPU when torch sees one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def split_outputs(out: Any, kind: str = "scores") -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(main logits, auxiliary logits) from a tensor, tuple/namedtuple (main first) or dict.

    ``kind``: the model's :func:`~convnet.models._output.output_kind` (for the main output)."""
    main = main_logits(out, kind)
    if isinstance(out, dict):
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


# settings a resumed run may not change: the saved model, optimizer and data order need them
_RESUME_FIXED = ("model", "data", "batch_size", "seed", "optimizer", "ema", "drop_last", "nproc")
# settings that do not change what is computed
_RESUME_FREE = ("out", "progress", "device", "num_threads", "dist_timeout", "eval_batch_size")


def _check_resume(saved: dict[str, Any], now: dict[str, Any], out: Path, warn: bool = True) -> None:
    """Refuse a resume that changes what the checkpoint's state depends on; warn about the rest.

    Resuming after a crash with the same command changes nothing and says nothing. A changed
    learning rate or more epochs is allowed (the run then no longer equals an uninterrupted
    one, which the warning says); a changed batch, seed or optimizer would misread the saved
    data order or optimizer state, so it is an error naming the setting and both values.
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
        warnings.warn(
            f"resuming {out} with changed settings: {what} (the run will differ from an "
            "uninterrupted one)",
            stacklevel=3,
        )


def fit(
    model: nn.Module | str,
    data: Any = "mnist-sample",
    config: TrainConfig | None = None,
    *,
    resume: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Train ``model`` (a module, a zoo name, a pattern-language line or ``file.py:Name``) on
    ``data`` (a Dataset or a ``convnet.data.load`` spec) and return the result: ``best_top1``,
    ``final_top1``, ``final_top5``, ``epochs``, ``seconds``, ``images_per_second``, ``per_class``,
    ``confusion``, ``out``, ``status`` ("done" or "terminated").

    With ``config.nproc > 1`` it spawns that many processes (DistributedDataParallel); under
    torchrun it joins the process group the environment describes.
    """
    cfg = (config or TrainConfig()).replace(**overrides) if overrides else (config or TrainConfig())
    if D.env_world() is None and cfg.nproc > 1:
        return _spawn(model, data, cfg, resume)
    d = D.env_world() or D.Dist()
    return _train(model, data, cfg, resume, d)


def _spawn(model: Any, data: Any, cfg: TrainConfig, resume: bool) -> dict[str, Any]:
    import tempfile

    tmp = None
    if cfg.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="convnet-run-")
        cfg = cfg.replace(out=tmp.name)
    try:
        D.spawn(_spawned, cfg.nproc, (model, data, cfg, resume))
        result = json.loads((Path(cfg.out) / "result.json").read_text())
        if tmp is not None:
            result["out"] = None
        return result
    finally:
        if tmp is not None:
            tmp.cleanup()


def _spawned(rank: int, world: int, model: Any, data: Any, cfg: TrainConfig, resume: bool) -> None:
    _train(model, data, cfg, resume, D.Dist(rank, world, rank))


def _train(model: Any, data: Any, cfg: TrainConfig, resume: bool, d: D.Dist) -> dict[str, Any]:
    t_start = time.perf_counter()
    device = D.local_device(d, cfg.device)
    if cfg.num_threads or d.enabled:
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", d.world))
        torch.set_num_threads(cfg.num_threads or max(1, (os.cpu_count() or 1) // local_world))
    if d.enabled:
        D.init(d, device, cfg.dist_timeout)
    try:
        result = _run(model, data, cfg, resume, d, device, t_start)
        D.barrier()  # tear the group down together: gloo can abort a rank that leaves early
        return result
    finally:
        D.shutdown()


def _run(model, data, cfg: TrainConfig, resume: bool, d: D.Dist, device, t_start) -> dict[str, Any]:
    # data: uint8 in memory; model: built for its classes and channels
    if isinstance(data, str):
        from ..data import load

        data = load(data)
    data_spec = data.name
    torch.manual_seed(cfg.seed)
    if isinstance(model, str):
        from .checkpoint import build_model

        model_spec = model
        model = build_model(model, len(data.classes), data.input_size[0], data.input_size)
    else:
        model_spec = getattr(model, "model_spec", None) or getattr(model, "model_name", None)
    input_size = tuple(getattr(model, "default_input_size", None) or data.input_size)
    input_size = (data.input_size[0], *input_size[1:])
    spec = {
        "model": model_spec,
        "num_classes": len(data.classes),
        "in_chans": data.input_size[0],
        "input_size": list(input_size),
        "data_size": list(data.input_size[1:]),
        "classes": list(data.classes),
        "mean": list(data.mean),
        "std": list(data.std),
    }
    out = Path(cfg.out) if cfg.out else None
    resolved = {"model": model_spec, "data": data_spec, **cfg.to_dict()}
    state = None
    if out is not None and resume:
        state = read_checkpoint(out / "last.pt", map_location=device)
        _check_resume(state.get("config") or {}, resolved, out, warn=d.is_main)
    elif out is not None and (out / "last.pt").exists():
        raise ConvnetError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    if out is not None and d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(resolved, indent=2) + "\n")

    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    loader = Loader(
        data.x_train,
        data.y_train,
        cfg.batch_size,
        input_size,
        data.mean,
        data.std,
        train=True,
        seed=cfg.seed,
        augment=Augment(cfg.crop_padding, cfg.hflip, cfg.cutout),
        rank=d.rank,
        world=d.world,
        drop_last=cfg.drop_last,
        device=device,
        channels_last=cfg.channels_last,
    )
    val_loader = Loader(
        data.x_test,
        data.y_test,
        cfg.eval_batch_size,
        input_size,
        data.mean,
        data.std,
        train=False,
        rank=d.rank,
        world=d.world,
        device=device,
        channels_last=cfg.channels_last,
    )
    if len(loader) == 0:
        raise ConvnetError(
            f"batch {cfg.batch_size} is larger than the {data.x_train.shape[0]} training images"
        )
    schedule = LRSchedule(optimizer, cfg, len(loader))
    ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
    log = RunLog(out if d.is_main else None, resume=resume)

    # progress: where to start, and the epoch's running sums (restored exactly on resume)
    p = {
        "epoch": 0,
        "step_in_epoch": 0,
        "global_step": 0,
        "best_top1": -1.0,
        "seconds": 0.0,
        "train_seconds": 0.0,
        "train_images": 0,
        "loss_sum": 0.0,
        "correct": 0,
        "count": 0,
        "epoch_seconds": 0.0,
    }
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"])
        set_rng_state(state["rng"])
        p.update(state["progress"])
        if p["epoch"] >= cfg.epochs:
            raise ConvnetError(
                f"{out} has already trained its {p['epoch']} epochs; pass a larger --epochs to "
                "train it further"
            )
        log.truncate(p["epoch"])

    net = model
    if d.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)
    autocast = _autocast(cfg.precision, device)
    kind = output_kind(model)  # a model ending in a softmax trains on log p
    if d.is_main and cfg.progress:
        n_params = sum(p.numel() for p in model.parameters())
        print(
            f"{model_spec or type(model).__name__} ({n_params:,} parameters) on {data_spec} "
            f"({data.x_train.shape[0]:,} train / {data.x_test.shape[0]:,} held out), {device.type} "
            f"{'bf16' if not isinstance(autocast, nullcontext) else 'fp32'} x {d.world} process(es): "
            f"{cfg.optimizer} lr {cfg.lr:g} {cfg.schedule}, batch {cfg.batch_size}, {cfg.epochs} epochs"
            + (f" -> {out}" if out else ""),
            flush=True,
        )
    sync_every = 1 if device.type == "cpu" and not d.enabled else 20

    def checkpoint(name: str = "last.pt") -> None:
        if out is None or not d.is_main:
            return
        save_checkpoint(
            out / name,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "ema": ema.state_dict() if ema else None,
                "rng": rng_state(),
                "progress": dict(p),
                "spec": spec,
                "config": resolved,
            },
        )

    stop = {"signal": False}
    old_handler = _on_sigterm(stop)
    bad_step = torch.full((), _NONE, dtype=torch.int64, device=device)
    last_saved = p["global_step"]
    final: dict[str, Any] = {}
    status = "done"
    try:
        for epoch in range(p["epoch"], cfg.epochs):
            model.train()
            loss_sum = torch.tensor(p["loss_sum"], dtype=torch.float64, device=device)
            correct = torch.tensor(p["correct"], dtype=torch.int64, device=device)
            bar = EpochBar(
                d.is_main and cfg.progress, epoch, cfg.epochs, len(loader), p["step_in_epoch"]
            )
            t_epoch = time.perf_counter() - p["epoch_seconds"]
            lr = schedule.set(p["global_step"])
            for k, xb, yb in loader.batches(epoch, start=p["step_in_epoch"]):
                lr = schedule.set(p["global_step"])
                with autocast:
                    outputs = net(xb)
                loss, logits = training_loss(outputs, yb, cfg, kind)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.clip_grad > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                with torch.no_grad():
                    finite = torch.isfinite(loss.detach())
                    bad_step = torch.where(finite | (bad_step != _NONE), bad_step, p["global_step"])
                    loss_sum += loss.detach().double() * yb.shape[0]
                    correct += (logits.argmax(1) == yb).sum()
                p["global_step"] += 1
                p["step_in_epoch"] = k + 1
                p["count"] += yb.shape[0]
                due_ckpt = cfg.checkpoint_every > 0 and p["global_step"] % cfg.checkpoint_every == 0
                if due_ckpt or (k + 1) % sync_every == 0 or k + 1 == len(loader):
                    _check_finite(bad_step, schedule, p, out, last_saved, d)
                    stop["signal"] = _agree(stop["signal"], d)
                    bar.update(
                        k + 1,
                        float(loss_sum) / max(1, p["count"]),
                        100.0 * float(correct) / max(1, p["count"]),
                        p["count"] * d.world,
                        time.perf_counter() - t_epoch,
                    )
                if (due_ckpt or stop["signal"]) and k + 1 < len(loader):
                    p.update(
                        loss_sum=float(loss_sum),
                        correct=int(correct),
                        epoch_seconds=time.perf_counter() - t_epoch,
                    )
                    checkpoint()
                    last_saved = p["global_step"]
                if stop["signal"]:
                    break
            bar.close()
            if stop["signal"] and p["step_in_epoch"] < len(loader):
                status = "terminated"
                break
            # the epoch is complete: evaluate, record, save last (and best)
            train_seconds = time.perf_counter() - t_epoch
            images = p["count"] * d.world
            p["train_seconds"] += train_seconds
            p["train_images"] += images
            record = {
                "epoch": epoch + 1,
                "step": p["global_step"],
                "lr": lr,
                "train_loss": float(_all_sum(loss_sum, d)) / max(1, images),
                "train_top1": 100.0 * float(_all_sum(correct, d)) / max(1, images),
                "seconds": train_seconds,
                "images_per_second": images / max(train_seconds, 1e-9),
            }
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                final = _validate(ema.module if ema else model, val_loader, data.classes, autocast)
                record.update(
                    val_loss=final["loss"], val_top1=final["top1"], val_top5=final["top5"]
                )
                schedule.epoch_end(final["top1"])
            p.update(
                epoch=epoch + 1,
                step_in_epoch=0,
                loss_sum=0.0,
                correct=0,
                count=0,
                epoch_seconds=0.0,
            )
            p["seconds"] += time.perf_counter() - t_epoch
            improved = record.get("val_top1") is not None and record["val_top1"] > p["best_top1"]
            if improved:
                p["best_top1"] = record["val_top1"]
            checkpoint()
            last_saved = p["global_step"]
            if improved:
                checkpoint("best.pt")
            if d.is_main:
                log.append(record)
                if cfg.progress:
                    print_epoch(record, cfg.epochs)
            if stop["signal"]:
                status = "terminated"
                break
    finally:
        _restore_sigterm(old_handler)

    result = {
        "best_top1": p["best_top1"] if p["best_top1"] >= 0 else None,
        "final_top1": final.get("top1"),
        "final_top5": final.get("top5"),
        "final_loss": final.get("loss"),
        "epochs": p["epoch"],
        "steps": p["global_step"],
        "seconds": round(p["seconds"], 3),
        "wall_seconds": round(time.perf_counter() - t_start, 3),
        "images_per_second": round(p["train_images"] / max(p["train_seconds"], 1e-9), 1),
        "status": status,
        "out": str(out) if out else None,
        "world_size": d.world,
    }
    if d.is_main and out is not None:
        if final:
            atomic_write_text(
                out / "confusion.json",
                json.dumps(
                    {
                        k: final[k]
                        for k in ("classes", "per_class", "confusion", "top1", "top5", "n")
                    },
                    indent=1,
                )
                + "\n",
            )
        atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
        log.plot()
    if d.is_main and cfg.progress and status == "done" and final:
        print_report(result, final)
    if status == "terminated" and d.is_main:
        print(
            f"stopped by SIGTERM at step {p['global_step']}; saved {out / 'last.pt' if out else 'nothing'}; "
            "continue with --resume"
        )
    result.update(per_class=final.get("per_class"), confusion=final.get("confusion"))
    return result


def _validate(model: nn.Module, loader: Loader, classes, autocast) -> dict[str, Any]:
    model.eval()
    tally = Tally(len(classes), loader.device)
    for _, xb, yb in loader.batches(0):
        tally.add(predict_probs(model, xb, None, autocast), yb)
    tally.all_reduce()
    model.train()
    return tally.result(classes)


def _autocast(precision: str, device: torch.device):
    if precision == "auto":
        use = device.type == "cuda" and torch.cuda.is_bf16_supported()
    else:
        use = precision == "bf16"
    return torch.autocast(device.type, dtype=torch.bfloat16) if use else nullcontext()


def _check_finite(
    bad_step: torch.Tensor, schedule: LRSchedule, p: dict, out, last_saved: int, d: D.Dist
) -> None:
    step = bad_step.clone()
    if d.enabled:
        import torch.distributed as dist

        dist.all_reduce(step, op=dist.ReduceOp.MIN)
    step = int(step)
    if step == _NONE:
        return
    lr = schedule.optimizer.param_groups[0]["initial_lr"] * schedule.factor(step)
    kept = (
        f"the last good checkpoint is {out / 'last.pt'} (step {last_saved})"
        if out and last_saved
        else "no checkpoint was saved"
    )
    raise TrainingError(
        f"the loss became non-finite at step {step} (epoch {p['epoch'] + 1}, lr {lr:.4g}); {kept}; "
        "lower --lr, add --clip-grad or --warmup-epochs"
    )


def _agree(flag: bool, d: D.Dist) -> bool:
    """Any rank's stop request stops every rank at the same step."""
    if not d.enabled:
        return flag
    import torch.distributed as dist

    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _all_sum(t: torch.Tensor, d: D.Dist) -> torch.Tensor:
    if d.enabled:
        import torch.distributed as dist

        t = t.clone()
        dist.all_reduce(t)
    return t


def _on_sigterm(stop: dict):
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        stop["signal"] = True

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(old) -> None:
    if old is not None:
        signal.signal(signal.SIGTERM, old)
