"""Turn what a user typed for MODEL into a module and what is known about it.

:func:`resolve_model` is the one place every command and Python entry point goes through.
``what`` is one of:

- a zoo name (``"vgg16"``): built from the registry, freshly initialized;
- a pattern-language line (``"INPUT -> [CONV3-32 -> RELU -> POOL2]*2 -> FC-10"``); a line
  without ``INPUT[WxHxD]`` is built for ``input_size`` when one is given (the data's channels
  and image size), else for the notes' 32x32x3;
- ``path/to/file.py:Name``: a class or a factory taking no required arguments, in the user's
  own file. Importing it runs that file, which is why the model keeps ``model_source`` (the
  path, its sha256 and ``Name``) for a checkpoint to record;
- a training checkpoint (``.pt``, ``.pth``, ``.ckpt``) or a run folder (its ``best.pt``, else
  ``last.pt``): the recorded model rebuilt and its trained weights loaded with
  ``weights_only=True``; a ``pathlib.Path`` is always taken as one;
- an ``nn.Module``: used as it is.

A checkpoint never runs code by itself. A zoo name or a pattern line it records is data; a
model it records as ``file.py:Name`` is built only when the user names the file again on this
command line (``--model file.py:Name``, ``model="file.py:Name"`` in Python), and only while the
file's sha256 is the one recorded at training time (checked before the file is executed).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .errors import CheckpointError, ConvnetError, ModelNotFoundError
from .limits import MAX_CLASSES

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
WEIGHT_SUFFIXES = (".safetensors",)


@dataclass
class Resolved:
    """A model and what is known about its inputs.

    ``input_size`` is (C, H, W): the caller's, else the checkpoint's, else the model's
    ``default_input_size``, else None. ``mean``/``std`` are per channel on pixels scaled to
    [0, 1] (checkpoints only). ``checkpoint`` is the checkpoint's info (``model``,
    ``num_classes``, ``in_chans``, ``input_size``, ``classes``, ``mean``, ``std``, ``source``,
    ``epoch``, ``step``, ``best_top1``, ``config``, ``path``), None for anything else.
    """

    model: nn.Module
    input_size: tuple[int, int, int] | None = None
    classes: list[str] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    checkpoint: dict[str, Any] | None = None
    name: str = ""


def resolve_model(
    what: str | os.PathLike | nn.Module,
    *,
    model: str | nn.Module | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_size: Sequence[int] | None = None,
    weights: str | os.PathLike | None = None,
    meta: bool = False,
    map_location: str | torch.device = "cpu",
    use_ema: bool = True,
    **options: Any,
) -> Resolved:
    """The model ``what`` names (see the module docstring) and what is known about it.

    Args:
        model: for a checkpoint recorded from ``file.py:Name``, that file named again (its
            sha256 must match the record), or any MODEL string or module to load the
            checkpoint's weights into instead of the recorded one.
        num_classes, in_chans: the head and input depth of a zoo, pattern or file model (a
            checkpoint's recorded values are used for it).
        input_size: (C, H, W); builds a pattern line without ``INPUT[...]`` at that size and is
            reported as ``Resolved.input_size``.
        weights: a ``.safetensors``/``.pth`` state dict loaded last (``convnet.load_weights``).
        meta: build on the meta device without initializing (no memory, nothing computed;
            what ``summary`` wants); a checkpoint's weights are then not loaded.
        map_location, use_ema: where a checkpoint's weights go, and whether its EMA weights
            are used when the run kept them.
        options: builder options of a zoo model.
    """
    if meta and weights is not None:
        raise ConvnetError("weights cannot be loaded into a model built on the meta device")
    loading = None if meta else {"map_location": map_location, "use_ema": use_ema}
    if isinstance(what, nn.Module):
        net, info, name = what, None, getattr(what, "model_name", None) or type(what).__name__
    elif isinstance(what, os.PathLike) or _is_checkpoint_path(str(what)):
        net, info = _from_checkpoint(Path(what), model, loading)
        name = str(what)
    else:
        text = str(what).strip()
        net = _build(text, num_classes, in_chans, input_size, meta=meta, **options)
        info, name = None, text
    if model is not None and info is None:
        raise ConvnetError(
            f"--model (model=) names the model file a checkpoint was trained from, but {name!r} "
            "is not a checkpoint or run folder; give MODEL alone"
        )
    if weights is not None:
        from .models import load_weights

        load_weights(net, str(weights))
    info = info or {}
    size = input_size or info.get("input_size") or getattr(net, "default_input_size", None)
    mean, std, classes = info.get("mean"), info.get("std"), info.get("classes")
    return Resolved(
        model=net,
        input_size=tuple(int(s) for s in size) if size else None,
        classes=[str(c) for c in classes] if classes is not None else None,
        mean=tuple(float(v) for v in mean) if mean is not None else None,
        std=tuple(float(v) for v in std) if std is not None else None,
        checkpoint=info or None,
        name=name,
    )


def _is_checkpoint_path(text: str) -> bool:
    """A checkpoint file or a run folder, rather than a zoo name, file model or pattern line."""
    from .models import is_model

    text = text.strip()
    if is_model(text) or ".py:" in text or "->" in text or "\n" in text:
        return False
    path = Path(text)
    if path.suffix in CHECKPOINT_SUFFIXES + WEIGHT_SUFFIXES or "/" in text or os.sep in text:
        return True  # a path (read_checkpoint says when it is missing), not a model name
    if path.is_dir():
        return (path / "best.pt").is_file() or (path / "last.pt").is_file()
    return path.is_file() and path.suffix != ".py"


# --- zoo names, pattern lines, file.py:Name -----------------------------------------------


def _build(
    text: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_size: Sequence[int] | None = None,
    *,
    source: dict[str, Any] | None = None,
    meta: bool = False,
    **options: Any,
) -> nn.Module:
    """The untrained module a MODEL string names: a zoo name, a pattern line or ``file.py:Name``.

    Never a path to a checkpoint: this is also how a checkpoint's recorded model is rebuilt.
    ``source`` is a checkpoint's record of a file model; the file's sha256 must match it.
    Every module built carries ``model_spec`` (the string, to record in a checkpoint) and
    ``model_source`` (the file record, None unless built from a file). ``meta`` builds on the
    meta device with initializers skipped.
    """
    from .models import is_model

    text = text.strip()
    if options and not is_model(text):
        raise ConvnetError(f"builder options {sorted(options)} apply to zoo models only")
    if not meta:
        return _construct(text, num_classes, in_chans, input_size, source, options)
    from .analysis.trace import SkipInit

    with torch.device("meta"), SkipInit():
        return _construct(text, num_classes, in_chans, input_size, source, options)


def _construct(text, num_classes, in_chans, input_size, source, options) -> nn.Module:
    from .models import create_model, is_model

    if is_model(text):
        net = create_model(text, num_classes=num_classes, in_chans=in_chans, **options)
    elif ".py:" in text:
        net = _from_file(text, num_classes, in_chans, source)
    elif _looks_like_notation(text):
        net = _from_notation(text, num_classes, in_chans, input_size)
    else:
        from .models import get_card

        if Path(text).suffix in (".py",):
            raise ConvnetError(f"{text}: write a model file as {text}:ClassOrFactory")
        get_card(text)  # raises with close-match suggestions
        raise ModelNotFoundError(f"unknown model {text!r}")
    net.model_spec = text
    if ".py:" not in text:
        net.model_source = None
    return net


def _looks_like_notation(spec: str) -> bool:
    s = spec.upper()
    return any(t in s for t in ("->", "=>", "⇒", "INPUT", "CONV", "FC"))


def _from_notation(text, num_classes, in_chans, input_size) -> nn.Module:
    from . import notation

    if input_size and not re.search(r"INPUT\s*\[", text, re.IGNORECASE):
        return notation.build(text, num_classes=num_classes, input_size=tuple(input_size))
    return notation.build(text, num_classes=num_classes, in_chans=in_chans)


def _from_file(
    spec: str, num_classes: int | None, in_chans: int | None, recorded: dict[str, Any] | None
) -> nn.Module:
    path_s, _, name = spec.rpartition(":")
    path = Path(path_s)
    if not path.is_file():
        raise ConvnetError(
            f"model file not found: {path} (write MODEL as path/to/file.py:ClassOrFactory)"
        )
    code = path.read_bytes()
    digest = hashlib.sha256(code).hexdigest()
    want = (recorded or {}).get("sha256")
    if want and digest != want:
        raise CheckpointError(
            f"{path} has changed since the checkpoint was trained from it (sha256 {digest[:12]}, "
            f"recorded {str(want)[:12]}); restore that version, or build the model in Python "
            "and pass it as model="
        )
    module = _execute(path, code)
    obj = getattr(module, name, None)
    if obj is None:
        found = [
            n for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, nn.Module)
        ]
        raise ConvnetError(
            f"{path} has no {name!r}; modules defined there: {', '.join(found) or 'none'}"
        )
    kwargs = {}
    params = inspect.signature(obj).parameters
    if num_classes is not None and "num_classes" in params:
        kwargs["num_classes"] = num_classes
    if in_chans is not None and "in_chans" in params:
        kwargs["in_chans"] = in_chans
    try:
        model = obj(**kwargs)
    except TypeError as e:
        raise ConvnetError(f"{spec}: cannot be called without arguments ({e})") from None
    except Exception as e:  # the user's own code failed: say where, in one line
        raise ConvnetError(f"{spec}: building it failed: {user_code_error(e, path)}") from None
    if not isinstance(model, nn.Module):
        raise ConvnetError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    model.model_source = {
        "file": path_s,
        "abspath": str(path.resolve()),
        "sha256": digest,
        "name": name,
    }
    return model


def user_code_error(e: BaseException, path: Path | str | None = None) -> str:
    """``ValueError: msg (net.py, line 5)``: an exception and the deepest line of the user's file
    (``path``, or any file imported from ``file.py:Name``) in its traceback, for a one-line error."""
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    want = str(Path(path).resolve()) if path is not None else None
    mine = [
        f
        for f in frames
        if (want and str(Path(f.filename).resolve()) == want) or _USER_MODULES.get(f.filename)
    ]
    where = f" ({Path(mine[-1].filename).name}, line {mine[-1].lineno})" if mine else ""
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}{where}"


# files imported as users' model code, by the name their frames carry in a traceback
_USER_MODULES: dict[str, str] = {}


def user_modules() -> dict[str, str]:
    """The model files imported so far (``file.py:Name``): their path -> module name."""
    return dict(_USER_MODULES)


def raised_in_user_code(e: BaseException) -> bool:
    """Whether the innermost frames of ``e``'s traceback that are not torch's lie in a user's
    model file: the user's code failed, not convnet's."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if "site-packages" not in f.filename]
    return bool(frames) and frames[-1].filename in _USER_MODULES


def _execute(path: Path, code: bytes):
    """Import ``path`` from the bytes already hashed (the file may change after the check)."""
    mod_name = f"_convnet_user_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses and pickling look the module up by name
    _USER_MODULES[str(path)] = mod_name
    try:
        exec(compile(code, str(path), "exec"), module.__dict__)
    except Exception as e:
        raise ConvnetError(f"{path}: importing it failed: {user_code_error(e, path)}") from None
    return module


# --- checkpoints and run folders ----------------------------------------------------------


def _from_checkpoint(
    path: Path, model: str | nn.Module | None, loading: dict[str, Any] | None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint records and load its weights; ``loading`` None: build it
    on the meta device and load nothing."""
    from .train.checkpoint import read_checkpoint

    if path.suffix in WEIGHT_SUFFIXES:
        raise CheckpointError(
            f"{path} is a weight file: it holds no model; give the model as MODEL and load the "
            "file into it (weights= in Python, --weights where the command has it)"
        )
    where = loading["map_location"] if loading else "cpu"
    state = read_checkpoint(path, where)
    spec = _entry(state, "spec", path)
    size = spec.get("input_size")
    if size is not None and not (
        isinstance(size, list | tuple) and len(size) == 3 and all(isinstance(v, int) for v in size)
    ):
        raise CheckpointError(
            f"{path}: its input_size {size!r} is not [C, H, W]; the file is damaged"
        )
    _check_spec(spec, path)
    net = _recorded_model(spec, model, path, meta=loading is None)
    if size:
        net.default_input_size = tuple(size)
    if loading:
        ema = _entry(state, "ema", path, required=False)
        weights = _entry(ema, "weights", path) if ema and loading["use_ema"] else None
        _load_state(net, weights or _entry(state, "model", path), path, spec.get("model"))
        net.to(where)
    net.eval()
    progress = _entry(state, "progress", path, required=False)
    try:
        counters = {
            "epoch": int(progress.get("epoch", 0)),
            "step": int(progress.get("global_step", 0)),
            "best_top1": float(progress.get("best_top1", 0.0)),
        }
    except (TypeError, ValueError):
        raise CheckpointError(
            f"{path}: its progress counters are not numbers; the file is damaged"
        ) from None
    info = {
        **spec,
        "input_size": tuple(size or ()),
        **counters,
        "config": _entry(state, "config", path, required=False),
        "path": str(path),
    }
    return net, info


def _check_spec(spec: dict, path: Path) -> None:
    """A hand-edited spec is refused field by field before anything is built from it."""

    def count(v: Any) -> bool:  # a class count or a depth: a positive whole number
        return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_CLASSES

    def numbers(v: Any) -> bool:
        return isinstance(v, list | tuple) and all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v
        )

    checks = {
        "num_classes": (count, f"a whole number of classes in 1..{MAX_CLASSES}"),
        "in_chans": (count, "a whole number of input channels"),
        "classes": (
            lambda v: isinstance(v, list | tuple) and all(isinstance(c, str | int) for c in v),
            "a list of class names",
        ),
        "mean": (numbers, "a list of finite numbers, one per channel"),
        "std": (numbers, "a list of finite numbers, one per channel"),
    }
    for key, (ok, rule) in checks.items():
        value = spec.get(key)
        if value is not None and not ok(value):
            raise CheckpointError(
                f"{path}: its spec's {key!r} is {str(value)[:40]!r}, not {rule}; the file is "
                "damaged or was edited by hand"
            )


def _load_state(net: nn.Module, weights: dict, path: Path, recorded: Any) -> None:
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, KeyError, AttributeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(
            f"{path}: weights do not fit the model {recorded!r}: {first}"
        ) from None


def _entry(state: dict, key: str, path: Path, required: bool = True) -> dict:
    """``state[key]``, which must be a dict (``{}`` when absent and not ``required``)."""
    value = state.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise CheckpointError(
            f"{path}: its {key!r} entry is a {type(value).__name__}, not a dict; "
            "the file is damaged or was edited by hand"
        )
    return value


def _recorded_model(spec: dict, model: str | nn.Module | None, path: Path, meta: bool) -> nn.Module:
    """The untrained model of a checkpoint: the user's ``model``, else the recorded spec as data."""
    recorded, source = spec.get("model"), spec.get("source")
    if source is not None and not isinstance(source, dict):
        raise CheckpointError(f"{path}: its spec's 'source' is not a dict; the file is damaged")
    args = (spec.get("num_classes"), spec.get("in_chans"), spec.get("input_size"))
    if isinstance(model, nn.Module):
        return model
    if model is not None:
        given = str(model).strip()
        return _build(given, *args, source=source if ".py:" in given else None, meta=meta)
    if not recorded:
        raise CheckpointError(
            f"{path}: the checkpoint does not say how to build its model (it was trained from a "
            "Python object); build the model and pass it as model="
        )
    if source is not None or ".py:" in str(recorded):
        file = (source or {}).get("file") or str(recorded).rpartition(":")[0]
        name = (source or {}).get("name") or str(recorded).rpartition(":")[2]
        raise CheckpointError(
            f"{path}: its model is defined in {file}, and loading a checkpoint never runs code "
            f"it names; name the file again: --model {file}:{name} (Python: model='{file}:{name}')"
        )
    from .models import is_model

    if not isinstance(recorded, str) or not (is_model(recorded) or _looks_like_notation(recorded)):
        raise CheckpointError(
            f"{path}: its recorded model {recorded!r} is neither a zoo name nor a pattern line; "
            "name the model with --model (Python: model=)"
        )
    return _build(recorded, *args, meta=meta)
