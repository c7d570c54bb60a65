"""Optimizers, parameter groups and learning-rate schedules.

The schedule is a pure function of the global step (plus, for reduce-on-plateau, a scale that
changes at epoch ends), so resuming at step ``t`` sets exactly the learning rate an uninterrupted
run had at ``t``: the only state saved is the plateau bookkeeping.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import TrainingError
from .config import TrainConfig
from .finetune import group_rates, head_parameters

_FLOAT32_MAX = 3.4028234663852886e38


def param_groups(
    model: nn.Module,
    weight_decay: float,
    no_decay_bn_bias: bool,
    rates: dict[str, float] | None = None,
    head: set[str] | frozenset[str] = frozenset(),
) -> list[dict]:
    """The trainable parameters (``requires_grad``; frozen ones are in no group, so they get
    neither updates nor weight decay) in groups: the head's (parameter names in ``head``) first,
    then the rest's ("backbone"), each at its own ``rates[name]`` when given; each split in two
    when 1-d parameters (BN/LN weights, biases) are exempt from decay. Empty groups are left out;
    every group has a ``name``: "head", "backbone", "head-no-decay", "backbone-no-decay".

    Decaying a BN scale only shrinks it against the next layer's weights, so many recipes skip it.
    """
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = []
    for part in ("head", "backbone"):
        params = [p for n, p in named if (n in head) == (part == "head")]
        split = (
            [(part + "-no-decay", [p for p in params if p.ndim <= 1], 0.0)]
            if no_decay_bn_bias
            else []
        )
        decayed = [p for p in params if p.ndim > 1] if no_decay_bn_bias else params
        for name, ps, wd in [(part, decayed, weight_decay), *split]:
            if ps:
                g = {"name": name, "params": ps, "weight_decay": wd}
                if rates is not None:
                    g["lr"] = rates[part]
                groups.append(g)
    return groups


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW over :func:`param_groups`: the head at ``lr_head`` and
    the rest at ``lr_backbone`` (:func:`~convnet.train.finetune.group_rates`)."""
    groups = param_groups(
        model, cfg.weight_decay, cfg.no_decay_bn_bias, group_rates(cfg), head_parameters(model)
    )
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0
        )
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def lr_factor(
    step: int, cfg: TrainConfig, steps_per_epoch: int, plateau_scale: float = 1.0
) -> float:
    """The multiple of the peak learning rate ``cfg.lr`` for the update at ``step`` (0-based).

    A pure function of the step, so both engines follow one curve and a resumed run sets
    exactly the rate an uninterrupted one had. With ``s`` steps per epoch, ``T = epochs * s``
    the total and ``e = t / s`` the fractional epoch:

    - constant: ``1``
    - step: ``gamma ** floor(e / step_size)``
    - multistep: ``gamma ** (number of milestones <= e)``
    - plateau: ``plateau_scale`` (multiplied by ``gamma`` after ``patience`` epochs without a
      better validation top-1; :class:`LRSchedule` keeps it)
    - cosine: ``low + (1 - low) * (1 + cos(pi * t / T)) / 2`` with ``low = min_lr / lr``
    - onecycle: cosine rise from ``1 / div`` to 1 over ``pct * T`` steps, then cosine fall to
      ``1 / div / final_div`` (the shape of torch's OneCycleLR)
    - warmup: constant after a linear warmup (``warmup_epochs``, 1 if not given)

    A linear warmup ``min(1, (t + 1) / (warmup_epochs * s))`` multiplies any of them.
    """
    c = cfg
    steps_per_epoch = max(1, steps_per_epoch)
    total = c.epochs * steps_per_epoch
    warmup_steps = c.warmup_epochs * steps_per_epoch
    if c.schedule == "warmup" and warmup_steps == 0:
        warmup_steps = steps_per_epoch
    e = step / steps_per_epoch
    kind = c.schedule
    if kind in ("constant", "warmup"):
        f = 1.0
    elif kind == "step":
        f = c.gamma ** math.floor(e / c.step_size + 1e-9)
    elif kind == "multistep":
        f = c.gamma ** sum(1 for m in c.milestones if e + 1e-9 >= m)
    elif kind == "plateau":
        f = plateau_scale
    elif kind == "cosine":
        low = c.min_lr / c.lr
        f = low + (1 - low) * (1 + math.cos(math.pi * min(step, total) / total)) / 2
    else:  # onecycle
        f = _onecycle(step, total, c.onecycle_pct, c.onecycle_div, c.onecycle_final_div)
    if warmup_steps > 0:
        f *= min(1.0, (step + 1) / warmup_steps)
    return f


class LRSchedule:
    """Sets every group's learning rate from the global step: ``initial_lr * lr_factor(step)``.

    Its only state is reduce-on-plateau's bookkeeping (the scale, the best top-1, the epochs
    without improvement), saved in checkpoints.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
        self.optimizer = optimizer
        self.cfg = cfg
        self.steps_per_epoch = max(1, steps_per_epoch)
        for g in optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])
        self.scale = 1.0  # reduce-on-plateau factor
        self.best = -math.inf
        self.bad_epochs = 0

    def factor(self, step: int) -> float:
        """The multiplier of the peak learning rate at ``step`` (0-based): :func:`lr_factor`."""
        return lr_factor(step, self.cfg, self.steps_per_epoch, self.scale)

    def set(self, step: int) -> float:
        """Set the learning rate for the update at ``step``; return the first group's value."""
        f = self.factor(step)
        for g in self.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f
            if not abs(g["lr"]) <= _FLOAT32_MAX:  # torch's step would fail converting it
                raise TrainingError(
                    f"the learning rate at step {step} is {g['lr']:.4g}, beyond float32's "
                    f"{_FLOAT32_MAX:.3g}; lower --lr or --gamma"
                )
        return self.optimizer.param_groups[0]["lr"]

    def epoch_end(self, val_top1: float | None) -> None:
        """Reduce on plateau: multiply by ``gamma`` after ``patience`` epochs without improvement."""
        if self.cfg.schedule != "plateau" or val_top1 is None:
            return
        if val_top1 > self.best + 1e-4:
            self.best, self.bad_epochs = val_top1, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.cfg.patience:
                self.scale *= self.cfg.gamma
                self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.scale = float(state["scale"])
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])


def _onecycle(step: int, total: int, pct: float, div: float, final_div: float) -> float:
    """torch.optim.lr_scheduler.OneCycleLR's cosine shape, as a multiple of the peak lr."""
    start, low = 1.0 / div, 1.0 / (div * final_div)
    up_end = float(pct * total) - 1
    down_end = float(total) - 1
    step = min(step, total - 1)

    def cos_anneal(a: float, b: float, frac: float) -> float:
        return b + (a - b) / 2.0 * (math.cos(math.pi * frac) + 1)

    if step <= up_end:
        return cos_anneal(start, 1.0, step / up_end if up_end > 0 else 1.0)
    return cos_anneal(1.0, low, (step - up_end) / (down_end - up_end) if down_end > up_end else 1.0)


class EMA:
    """Exponential moving average of the weights: ``ema = d * ema + (1 - d) * w`` after each step.

    Buffers (BN running statistics) and frozen parameters are copied, not averaged (an average
    of equal values can still round away from them). The decay is warmed up as
    ``min(d, (1 + n) / (10 + n))`` so early averages are not dominated by the random init.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.module = _clone(model)
        self._params = {n for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        ema_state = self.module.state_dict()
        for k, v in model.state_dict().items():
            e = ema_state[k]
            if k in self._params:
                e.mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                e.copy_(v)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["weights"])


def _clone(model: nn.Module) -> nn.Module:
    import copy

    m = copy.deepcopy(model)
    for p in m.parameters():
        p.requires_grad_(False)
    return m.eval()
