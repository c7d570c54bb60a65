"""CNN codes: a layer's activations as features, and a linear classifier trained on them.

The notes' advice for real work ("don't be a hero"): take a trained network, remove its last
layer and treat the rest as a fixed feature extractor. For AlexNet that is the 4096-D output of
fc7 (after its ReLU), the "CNN code" of an image; a linear classifier (a softmax or a
multiclass SVM) trained on the codes of a new data set is the transfer-learning baseline.

- :func:`features` runs the network over every image of a data set, batched and without
  gradients, and keeps ``layer``'s output flattened to one row per image: ``Codes`` holds
  ``codes`` (N, D), ``labels`` (N,) and ``split`` (N,), 0 train, 1 validation, 2 test. The
  validation rows are the ones the network's own run held out (a checkpoint records how it
  carved them), so the classifier chooses on images the network never trained on either.
- :func:`train_linear` fits ``s = W x + b`` on the train rows for each regularization strength
  of a grid, picks the strength with the best validation top-1 and scores the test rows once,
  with that strength. Loss per image, scores ``s = W x + b`` (K classes), true class ``y``:

  softmax: ``L_i = -log(exp(s_y) / sum_j exp(s_j))``;
  SVM: ``L_i = sum_{j != y} max(0, s_j - s_y + 1)`` (the notes' margin delta = 1);

  total ``L = mean_i L_i + reg * sum(W ** 2)`` (the bias is not regularized). Codes are
  standardized first (per dimension, with the train rows' mean and std: a ReLU code's scale
  varies by orders of magnitude between units) and the minimum is found by full-batch L-BFGS.
  The classifier returned has the standardization folded into ``W`` and ``b``, so it applies
  to raw codes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import ConvnetError, DataError

SPLITS = ("train", "val", "test")
LOSSES = ("softmax", "svm")
REG_GRID = tuple(10.0**k for k in range(-6, 2))  # 1e-6 .. 10, a factor of 10 apart
FORMAT = "convnet-codes-1"  # the safetensors metadata's "format", checked when loading


@dataclass
class Codes:
    """One row per image: ``codes`` float32 (N, D), ``labels`` int64 (N,), ``split`` uint8 (N,)
    indexing ``SPLITS`` (0 train, 1 val, 2 test). ``layer`` names what was kept (a module path,
    or ``PATH:input`` for a module's input), ``model`` the network and ``data`` the data set."""

    codes: torch.Tensor
    labels: torch.Tensor
    split: torch.Tensor
    classes: list[str]
    layer: str
    model: str = ""
    data: str = ""

    def rows(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes, labels) of the rows of ``split`` ("train", "val" or "test")."""
        if split not in SPLITS:
            raise ConvnetError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        keep = self.split == SPLITS.index(split)
        return self.codes[keep], self.labels[keep]

    def counts(self) -> dict[str, int]:
        return {s: int((self.split == i).sum()) for i, s in enumerate(SPLITS)}

    def save(self, path: str | os.PathLike) -> None:
        """Write a ``.safetensors`` file (atomically): the three tensors, and the class names,
        layer, model and data in its metadata."""
        from .io import save_tensors

        if Path(path).suffix != ".safetensors":
            raise ConvnetError(f"{path}: codes are written as .safetensors; name the file so")
        meta = {
            "format": FORMAT,
            "classes": json.dumps(list(self.classes)),
            "layer": self.layer,
            "model": self.model,
            "data": self.data,
            "splits": json.dumps(list(SPLITS)),
        }
        tensors = {"codes": self.codes, "labels": self.labels, "split": self.split}
        save_tensors(path, tensors, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Codes:
        """Read a file :meth:`save` wrote (safetensors: no code runs); checks its contents."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise DataError(f"codes file not found: {path} (write one with convnet features)")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        except Exception as e:  # safetensors raises its own error types
            raise DataError(f"{path}: not a safetensors file ({e})") from None
        if meta.get("format") != FORMAT or set(tensors) != {"codes", "labels", "split"}:
            raise DataError(f"{path}: not a codes file written by convnet features")
        try:
            classes = [str(c) for c in json.loads(meta["classes"])]
        except (KeyError, ValueError, TypeError):
            raise DataError(f"{path}: its class list is damaged") from None
        out = cls(
            tensors["codes"],
            tensors["labels"],
            tensors["split"],
            classes,
            meta.get("layer", ""),
            meta.get("model", ""),
            meta.get("data", ""),
        )
        out.check(str(path))
        return out

    def check(self, where: str) -> None:
        """Shapes, dtypes and ranges agree (a damaged or hand-made file is a DataError)."""
        c, y, s = self.codes, self.labels, self.split
        n = c.shape[0] if c.dim() == 2 else -1
        if (
            not c.is_floating_point()
            or c.dim() != 2
            or y.dtype != torch.int64
            or s.dtype != torch.uint8
            or tuple(y.shape) != (n,)
            or tuple(s.shape) != (n,)
        ):
            raise DataError(
                f"{where}: expected codes float (N, D), labels int64 (N,), split uint8 (N,); "
                f"got {tuple(c.shape)}, {tuple(y.shape)} {y.dtype}, {tuple(s.shape)} {s.dtype}"
            )
        if n and (int(y.min()) < 0 or int(y.max()) >= len(self.classes) or int(s.max()) > 2):
            raise DataError(f"{where}: labels or split indices out of range; the file is damaged")


# --- extraction ---------------------------------------------------------------------------


class _Stop(Exception):
    """Raised by the hook once the layer has run: the rest of the network is not needed."""


def default_layer(model: nn.Module) -> str:
    """``PATH:input`` of the last ``nn.Linear``: what the classifier reads (AlexNet's fc7 code)."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConvnetError(
            f"{type(model).__name__} has no Linear classifier to take the input of; "
            "name a layer with --layer (layer= in Python)"
        )
    return f"{linears[-1]}:input"


def _hook_layer(model: nn.Module, layer: str, box: list[torch.Tensor]):
    """Register a hook that puts ``layer``'s output (or, for ``PATH:input``, its input) into
    ``box`` flattened to (B, D) and stops the forward pass; returns the handle."""
    path, _, what = layer.partition(":")
    modules = dict(model.named_modules())
    if path not in modules or path == "" or what not in ("", "input", "output"):
        names = [n for n, m in model.named_modules() if n and not any(m.children())]
        shown = ", ".join(names[:40]) + (f" and {len(names) - 40} more" if len(names) > 40 else "")
        raise ConvnetError(
            f"no layer {layer!r} in {type(model).__name__}; give a module path (its output) or "
            f"PATH:input (the module's input); leaf layers: {shown or 'none'}"
        )

    def grab(t: Any) -> None:
        if not isinstance(t, torch.Tensor):
            raise ConvnetError(f"layer {layer!r} gives a {type(t).__name__}, not one tensor")
        box.append(t.detach().flatten(1).float().cpu())
        raise _Stop

    if what == "input":
        return modules[path].register_forward_pre_hook(lambda _m, args: grab(args[0]))
    return modules[path].register_forward_hook(lambda _m, _args, out: grab(out))


def _with_splits(data: Any, record: dict[str, Any] | None, val_split: float):
    """``data`` with a validation split carved as the network's run carved it (``record``, a
    checkpoint's split record), else ``val_split`` of each training class."""
    from .data.splits import SPLIT_SEED, with_validation

    fraction, seed = val_split, SPLIT_SEED
    if isinstance(record, dict) and record.get("source") in ("train", "none"):
        fraction, seed = float(record.get("fraction", 0.0)), int(record.get("seed", SPLIT_SEED))
    return with_validation(data, fraction, seed)[0]


def features(
    model: str | os.PathLike | nn.Module,
    data: Any = None,
    layer: str | None = None,
    *,
    weights: str | os.PathLike | None = None,
    model_file: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    val_split: float = 0.1,
    progress: bool = False,
) -> Codes:
    """The CNN codes of every image of ``data``: ``layer``'s output, flattened, one row each.

    Args:
        model: anything :func:`convnet.resolve.resolve_model` takes: a checkpoint or run folder
            (its normalization, input size and data are used), a zoo name or pattern line
            (with ``weights``, e.g. a torchvision file), or a module.
        data: a :class:`convnet.data.Dataset` or a spec for :func:`convnet.data.load`; None: the
            data set a checkpoint was trained on.
        layer: a module path (``"classifier.4"``: its output) or ``"PATH:input"`` (the module's
            input); None: the input of the last ``nn.Linear``. A module called more than once
            gives its first call.
        weights: a ``.safetensors``/``.pth`` state dict to load into ``model``.
        model_file: for a checkpoint trained from ``file.py:Name``, that file named again.
        val_split: share of each training class held out as validation rows, unless the data
            has its own validation split or ``model`` is a checkpoint (its run's split is reused).

    The images are normalized and sized as the network was trained (the checkpoint's mean,
    std and input size; otherwise the training split's statistics and the model's input size).
    """
    from .resolve import resolve_model
    from .train.distributed import pick_device
    from .train.loader import Loader

    if data is None:  # the data set the checkpoint was trained on
        r = resolve_model(model, model=model_file, weights=weights)
        data = _load_data(None, r.checkpoint or {})
    else:  # a zoo model or pattern line is built for the data's channels and size
        data = _load_data(data, {})
        c = data.input_size[0]
        r = resolve_model(
            model, model=model_file, weights=weights, in_chans=c, input_size=data.input_size
        )
    data = _with_splits(data, (r.checkpoint or {}).get("split"), val_split)
    net = r.model
    dev = pick_device(device)
    net.to(dev).eval()
    # the size the network trained at (a checkpoint's, a zoo model's), as the train loop does
    size = getattr(net, "default_input_size", None) or data.input_size
    size = (data.input_size[0], *(int(s) for s in size[1:]))
    mean, std = r.mean or data.mean, r.std or data.std
    layer = layer or default_layer(net)
    parts = [(data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)]
    total = sum(int(y.shape[0]) for _, y in parts)
    box: list[torch.Tensor] = []
    handle = _hook_layer(net, layer, box)
    try:
        with torch.no_grad(), _progress(progress, total, "codes") as advance:
            for x, y in parts:
                loader = Loader(x, y, batch_size, size, mean, std, train=False, device=dev)
                for _, xb, _ in loader.batches(0):
                    before = len(box)
                    try:
                        net(xb)
                    except _Stop:
                        pass
                    if len(box) == before:
                        raise ConvnetError(f"layer {layer!r} did not run in the forward pass")
                    advance(xb.shape[0])
    finally:
        handle.remove()
    split = torch.cat(
        [torch.full((int(y.shape[0]),), i, dtype=torch.uint8) for i, (_, y) in enumerate(parts)]
    )
    return Codes(
        codes=torch.cat(box) if box else torch.zeros(0, 0),
        labels=torch.cat([y.long().cpu() for _, y in parts]),
        split=split,
        classes=list(data.classes),
        layer=layer,
        model=str(r.name),
        data=str(data.name),
    )


def _load_data(data: Any, info: dict[str, Any]) -> Any:
    if data is None:
        data = info.get("data") or (info.get("config") or {}).get("data")
        if not data:
            raise ConvnetError("give the data set to extract codes from (--data, data=)")
    if isinstance(data, str | os.PathLike):
        from .data import load

        data = load(str(data))
    return data


class _progress:
    """``with _progress(show, total, what) as advance: advance(n)``: a rich bar on stderr,
    drawn only on a terminal."""

    def __init__(self, show: bool, total: int, what: str) -> None:
        self.bar = None
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            console = Console(stderr=True)
            if console.is_terminal:
                self.bar = Progress(
                    TextColumn(what),
                    BarColumn(),
                    MofNCompleteColumn(),
                    console=console,
                    transient=True,
                )
                self.task = self.bar.add_task(what, total=total)

    def __enter__(self):
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


# --- the linear classifier ----------------------------------------------------------------


@dataclass
class LinearResult:
    """A linear classifier chosen on the validation rows, and its scores (top-1 in percent).

    ``weight`` (K, D) and ``bias`` (K,) apply to raw codes: ``scores = codes @ weight.T + bias``
    (the standardization is folded in). ``grid`` lists, per regularization strength tried,
    ``reg``, ``train_top1`` and ``val_top1``; ``test_top1`` is scored once, for ``reg``.
    """

    loss: str
    reg: float
    train_top1: float
    val_top1: float | None
    test_top1: float | None
    weight: torch.Tensor
    bias: torch.Tensor
    grid: list[dict[str, float | None]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "reg": self.reg,
            "train_top1": self.train_top1,
            "val_top1": self.val_top1,
            "test_top1": self.test_top1,
            "dim": int(self.weight.shape[1]),
            "classes": int(self.weight.shape[0]),
            "grid": self.grid,
            "counts": self.counts,
        }

    def save(self, path: str | os.PathLike) -> None:
        """An ``nn.Linear`` state dict (``weight``, ``bias``) as .safetensors or .pt, atomically."""
        from .io import save_tensors

        save_tensors(path, {"weight": self.weight, "bias": self.bias})


def linear_loss(scores: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean data loss of scores (N, K) for labels (N,): softmax cross-entropy, or the
    multiclass SVM's ``sum_{j != y} max(0, s_j - s_y + 1)``."""
    if loss == "softmax":
        return F.cross_entropy(scores, y)
    if loss == "svm":
        margins = (scores - scores.gather(1, y[:, None]) + 1.0).clamp_min(0)
        return (margins.sum(1) - 1.0).mean()  # the j = y term is max(0, 1) = 1
    raise ConvnetError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")


def _fit(
    x: torch.Tensor, y: torch.Tensor, k: int, loss: str, reg: float, start, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimize ``mean L_i + reg * ||W||^2`` over (W (K, D), b (K,)) by full-batch L-BFGS."""
    w = (start[0] if start else torch.zeros(k, x.shape[1], dtype=x.dtype)).clone().requires_grad_()
    b = (start[1] if start else torch.zeros(k, dtype=x.dtype)).clone().requires_grad_()
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        history_size=20,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        total = linear_loss(x @ w.T + b, y, loss) + reg * (w * w).sum()
        total.backward()
        return total

    opt.step(closure)
    return w.detach(), b.detach()


def _top1(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> float | None:
    if not y.numel():
        return None
    return 100.0 * float(((x @ w.T + b).argmax(1) == y).float().mean())


def train_linear(
    codes: Codes | str | os.PathLike,
    *,
    loss: str = "softmax",
    regs: Sequence[float] = REG_GRID,
    max_iter: int = 300,
) -> LinearResult:
    """Train a linear classifier on the train rows of ``codes`` (a :class:`Codes` or its file).

    Each strength in ``regs`` is fitted (strongest first, each warm-started from the previous
    solution); the one with the best validation top-1 is kept (ties: the stronger, simpler
    one) and only it is scored on the test rows. With no validation rows, ``regs`` must hold one
    strength. ``max_iter``: L-BFGS iterations per strength.
    """
    if isinstance(codes, str | os.PathLike):
        codes = Codes.load(codes)
    if loss not in LOSSES:
        raise ConvnetError(f"unknown loss {loss!r}; use one of {', '.join(LOSSES)}")
    regs = sorted({float(r) for r in regs}, reverse=True)
    if not regs or any(not (r >= 0 and math.isfinite(r)) for r in regs):
        raise ConvnetError(f"regularization strengths must be finite and >= 0, got {regs}")
    x_tr, y_tr = codes.rows("train")
    x_va, y_va = codes.rows("val")
    x_te, y_te = codes.rows("test")
    if not y_tr.numel():
        raise DataError("the codes hold no train rows to fit a classifier on")
    if not y_va.numel() and len(regs) > 1:
        raise ConvnetError(
            f"the codes hold no validation rows to choose among {len(regs)} regularization "
            "strengths on; give one (--reg R), or extract the codes with --val-split > 0"
        )
    mu = x_tr.double().mean(0)
    sigma = x_tr.double().std(0, correction=0).clamp_min(1e-6)  # a dead unit stays 0, not nan

    def standard(x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - mu) / sigma).float()

    s_tr, s_va = standard(x_tr), standard(x_va)
    k = len(codes.classes)
    grid, best, start = [], None, None
    for reg in regs:
        w, b = start = _fit(s_tr, y_tr, k, loss, reg, start, max_iter)
        row = {
            "reg": reg,
            "train_top1": _top1(s_tr, y_tr, w, b),
            "val_top1": _top1(s_va, y_va, w, b),
        }
        grid.append(row)
        if best is None or (row["val_top1"] or 0.0) > (best[0]["val_top1"] or 0.0):
            best = (row, w, b)
    row, w, b = best
    test = _top1(standard(x_te), y_te, w, b)
    # fold the standardization in: W (x - mu) / sigma + b = (W / sigma) x + (b - W mu / sigma)
    w_raw = (w.double() / sigma).float()
    b_raw = (b.double() - (w.double() / sigma) @ mu).float()
    return LinearResult(
        loss=loss,
        reg=row["reg"],
        train_top1=row["train_top1"],
        val_top1=row["val_top1"],
        test_top1=test,
        weight=w_raw,
        bias=b_raw,
        grid=sorted(grid, key=lambda g: g["reg"]),
        counts=codes.counts(),
    )


__all__ = ["LOSSES", "REG_GRID", "SPLITS", "Codes", "LinearResult", "features", "train_linear"]


class _CallableModule(types.ModuleType):
    """``convnet.features(model, data, layer)`` is :func:`features`: the module keeps its name
    and its other contents (``convnet.features.train_linear``), and calling it extracts codes."""

    def __call__(self, *args: Any, **kwargs: Any) -> Codes:
        return features(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
