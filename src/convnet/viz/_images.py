"""Shared plumbing for the figures: find a layer by its module path, capture its output, load
the images a user names, and write figures to disk (models come from ``convnet.resolve``).

A figure never calls ``plt.show``: everything draws on ``matplotlib.figure.Figure`` objects
(no pyplot state machine), so it works the same on a headless machine and in a notebook.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure

from ..errors import ConvnetError, DataError

# --- layers -------------------------------------------------------------------------------


def conv_layer_paths(model: nn.Module) -> list[str]:
    """Module paths (``"features.0"``) of every 2D convolution, in registration order."""
    return [name for name, m in model.named_modules() if _is_conv2d(m)]


def _is_conv2d(m: nn.Module) -> bool:
    w = getattr(m, "weight", None)
    # torch's Conv2d plus any conv-like layer holding (K, C, kh, kw) filters (e.g. a locally
    # connected layer keeps more dimensions and is deliberately not listed).
    return isinstance(m, nn.Conv2d) or (
        type(m).__name__.endswith("Conv2d") and isinstance(w, torch.Tensor) and w.dim() == 4
    )


def get_layer(model: nn.Module, path: str | None, *, conv: bool = False) -> tuple[str, nn.Module]:
    """Return ``(path, module)``; ``None`` means the first conv layer.

    ``conv=True`` insists on a 2D convolution (the filter figures need one). An unknown path
    raises ``ConvnetError`` listing the conv layer paths the model has.
    """
    convs = conv_layer_paths(model)
    if path is None:
        if not convs:
            raise ConvnetError(f"{type(model).__name__} has no Conv2d layer to show")
        path = convs[0]
    modules = dict(model.named_modules())
    if path not in modules or path == "":
        raise ConvnetError(
            f"no layer {path!r} in {type(model).__name__}; conv layers: {', '.join(convs) or 'none'}"
        )
    module = modules[path]
    if conv and not _is_conv2d(module):
        raise ConvnetError(
            f"layer {path!r} is a {type(module).__name__}, not a convolution; "
            f"conv layers: {', '.join(convs) or 'none'}"
        )
    return path, module


def describe(model: nn.Module, path: str) -> str:
    """``"features.3 (Conv2d)"``: a layer's path and type, for titles."""
    return f"{path} ({type(model.get_submodule(path)).__name__})"


def layer_order(model: nn.Module, input_size: Sequence[int]) -> list[str]:
    """Paths of the leaf modules that run, in the order a forward pass calls them.

    One forward on the meta device (no memory, no weights read) with hooks; modules called
    twice are listed once.
    """
    import copy

    order: list[str] = []
    probe = copy.deepcopy(model).to("meta").eval()
    handles = []
    for name, m in probe.named_modules():
        if name and not list(m.children()):
            handles.append(
                m.register_forward_hook(
                    lambda _m, _i, _o, n=name: order.append(n) if n not in order else None
                )
            )
    try:
        with torch.no_grad():
            probe(torch.empty(1, *input_size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return order


def capture(model: nn.Module, x: torch.Tensor, path: str) -> torch.Tensor:
    """Run ``model(x)`` and return the output of the module at ``path``, shape (N, C, H, W).

    The forward stops nowhere early (a hook only records), so the model sees exactly what it
    sees in training or evaluation; the caller picks the mode.
    """
    _, module = get_layer(model, path)
    box: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: box.append(out))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    if not box:
        raise ConvnetError(
            f"layer {path!r} did not run in the forward pass; pick a layer the model calls"
        )
    out = box[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConvnetError(
            f"layer {path!r} outputs {shape}, not (N, C, H, W) maps; conv layers: "
            f"{', '.join(conv_layer_paths(model))}"
        )
    return out.detach().float().cpu()


def grid_shape(n: int, ncols: int | None = None) -> tuple[int, int]:
    """Rows and columns of a near-square grid holding ``n`` tiles (wider than tall)."""
    cols = ncols or max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def minmax(a: np.ndarray) -> np.ndarray:
    """Scale ``a`` to [0, 1] on its own: (a - min) / (max - min); a constant array gives 0.5."""
    lo, hi = float(a.min()), float(a.max())
    if hi - lo < 1e-12:
        return np.full_like(a, 0.5, dtype=np.float32)
    return ((a - lo) / (hi - lo)).astype(np.float32)


# --- images -------------------------------------------------------------------------------


def load_image(spec: Any, size: Sequence[int]) -> np.ndarray:
    """Return the image ``spec`` names as float32 (H, W, C) in [0, 1], resized to ``size``.

    ``spec`` is a file path (PNG, JPEG, ...), ``"mnist:I"`` (test digit I of the bundled MNIST
    sample), ``"skimage:NAME"`` (a public-domain photo scikit-image ships, e.g. ``chelsea``),
    or an array: (H, W), (H, W, C) or (C, H, W), uint8 0..255 or float 0..1.
    ``size`` is the model's (C, H, W): gray becomes C copies, RGB becomes gray for C=1.
    """
    c, h, w = (int(s) for s in size)
    arr = _read(spec)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # (C, H, W) -> (H, W, C)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] == 4:
        arr = arr[..., :3]  # drop alpha
    arr = arr.astype(np.float32)
    if arr.max() > 1.0 + 1e-6:
        arr = arr / 255.0
    if (arr.shape[0], arr.shape[1]) != (h, w):
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
        t = torch.nn.functional.interpolate(
            t, size=(h, w), mode="bilinear", antialias=True, align_corners=False
        )
        arr = t[0].permute(1, 2, 0).numpy()
    if arr.shape[-1] == 3 and c == 1:
        arr = (arr @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]  # ITU-R 601 luma
    elif arr.shape[-1] == 1 and c != 1:
        arr = np.repeat(arr, c, axis=-1)
    elif arr.shape[-1] != c:
        raise DataError(f"image has {arr.shape[-1]} channels but the model takes {c}")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


def _read(spec: Any) -> np.ndarray:
    if isinstance(spec, torch.Tensor):
        return spec.detach().cpu().numpy()
    if isinstance(spec, np.ndarray):
        return spec
    s = str(spec)
    if s.startswith("mnist:"):
        return _mnist_test_digit(s[len("mnist:") :])
    if s.startswith("skimage:"):
        return _skimage_photo(s[len("skimage:") :])
    path = Path(s)
    if not path.is_file():
        raise DataError(
            f"image not found: {s} (give an image file, mnist:INDEX for a bundled digit, "
            f"or skimage:NAME for a scikit-image photo)"
        )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not an image Pillow can read ({e})") from None


def _mnist_test_digit(index: str) -> np.ndarray:
    import importlib.resources

    try:
        i = int(index)
    except ValueError:
        raise DataError(
            f"mnist:{index}: write mnist:INDEX with INDEX a whole number 0..999"
        ) from None
    with importlib.resources.as_file(
        importlib.resources.files("convnet.data") / "assets" / "mnist_sample.npz"
    ) as p:
        x = np.load(p)["x_test"]
    if not 0 <= i < len(x):
        raise DataError(f"mnist:{i}: the bundled sample has test digits 0..{len(x) - 1}")
    return x[i]


def _skimage_photo(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError:
        raise DataError(
            f"skimage:{name} needs scikit-image: pip install 'convnet[photos]'"
        ) from None
    fn = getattr(data, name, None)
    if fn is None or not callable(fn):
        raise DataError(f"skimage:{name}: no such photo; try chelsea, astronaut, coffee, rocket")
    return np.asarray(fn())


def to_input(
    image: np.ndarray, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> torch.Tensor:
    """(H, W, C) in [0, 1] -> (1, C, H, W) float tensor, normalized as ``(x - mean) / std``."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    if mean is not None and std is not None:
        m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        x = (x - m) / s
    return x


def show_image(ax, image: np.ndarray, **kwargs) -> None:
    """Draw an (H, W, C) image in [0, 1]: gray for one channel, RGB for three."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, **kwargs)
    else:
        ax.imshow(image, **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])


# --- output -------------------------------------------------------------------------------


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """Render ``fig`` to PNG or SVG bytes (Agg; no window is ever opened)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def save_figure(
    fig: Figure, path: str | os.PathLike, formats: Sequence[str] = ("png", "svg"), dpi: int = 110
) -> list[Path]:
    """Write ``fig`` atomically once per format, beside ``path`` with each format's suffix.

    ``save_figure(fig, "out/filters.png")`` writes ``out/filters.png`` and ``out/filters.svg``.
    """
    from ..io import atomic_write_bytes

    base = Path(path)
    if base.suffix.lower().lstrip(".") in ("png", "svg", "pdf"):
        base = base.with_suffix("")
    written = []
    for fmt in formats:
        target = base.with_name(base.name + "." + fmt)
        atomic_write_bytes(target, figure_bytes(fig, fmt, dpi=dpi))
        written.append(target)
    return written
