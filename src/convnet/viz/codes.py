"""CNN codes in two dimensions: t-SNE of a layer's activations, coloured by class.

A layer's code for an image is its whole output flattened (for the layer before the
classifier, the "CNN code" the notes' transfer-learning section reuses). t-SNE (van der
Maaten and Hinton, 2008; scikit-learn's implementation) places images whose codes are close
near each other, so classes the network separates appear as clusters. Codes longer than 50
values are first reduced to 50 by PCA, the usual practice that makes t-SNE faster and less
noisy. Needs scikit-learn: ``pip install 'convnet[viz]'``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
from matplotlib.figure import Figure

from ..errors import ConvnetError
from ._images import get_layer
from .patches import Images, progress_bar, run_model


def default_code_layer(model: nn.Module) -> str:
    """The last ``nn.Linear``: its *input* is the code (the activations the classifier reads)."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConvnetError(
            f"{type(model).__name__} has no Linear classifier; name the layer with --layer"
        )
    return linears[-1]


def layer_codes(
    model: nn.Module,
    images: Images,
    layer: str | None = None,
    *,
    batch_size: int = 128,
    mean=None,
    std=None,
    progress: bool = False,
) -> tuple[np.ndarray, str]:
    """(N, D) codes and a description: ``layer``'s output flattened, or with ``layer=None`` the
    input of the last Linear layer (what the classifier sees)."""
    what = "output"
    if layer is None:
        layer, what = default_code_layer(model), "input"
    _, module = get_layer(model, layer)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    box: list[torch.Tensor] = []

    def grab(out):
        box.append(out.detach().flatten(1).float().cpu())

    if what == "input":
        handle = module.register_forward_pre_hook(lambda _m, args: grab(args[0]))
    else:
        handle = module.register_forward_hook(lambda _m, _i, out: grab(out))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), progress_bar(progress, len(images), "codes") as advance:
            for lo in range(0, len(images), batch_size):
                idx = torch.arange(lo, min(lo + batch_size, len(images)))
                run_model(model, images.normalized(idx, mean, std).to(device))
                advance(len(idx))
    finally:
        handle.remove()
        model.train(was_training)
    if not box:
        raise ConvnetError(f"layer {layer!r} did not run in the forward pass")
    return torch.cat(box).numpy(), f"{what} of {layer}"


def embed(codes: np.ndarray, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """(N, 2) t-SNE of (N, D) codes (PCA to 50 values first when D > 50)."""
    try:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE
    except ImportError:
        raise ConvnetError(
            "the codes figure needs scikit-learn's t-SNE: pip install 'convnet[viz]'"
        ) from None
    n = codes.shape[0]
    if not 0 < perplexity < n:
        raise ConvnetError(
            f"t-SNE perplexity {perplexity:g} needs more than {perplexity:g} images (got {n}); "
            "use more images or a smaller perplexity"
        )
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    x = codes.astype(np.float32)
    # as many OpenMP threads as torch uses: by default OpenMP takes every core and spins,
    # which on a busy machine made a 40-point t-SNE take 30 s instead of 0.7 s
    with threadpool_limits(limits=torch.get_num_threads()):
        if x.shape[1] > 50 and n > 50:
            x = PCA(50, random_state=seed).fit_transform(x)
        return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def codes(
    model: nn.Module,
    images: Images,
    layer: str | None = None,
    *,
    perplexity: float = 30.0,
    seed: int = 0,
    thumbnails: int = 150,
    batch_size: int = 128,
    mean=None,
    std=None,
    progress: bool = False,
) -> Figure:
    """Left: each image a dot at its t-SNE position, coloured by class. Right (small images
    only, ``thumbnails`` > 0): up to ``thumbnails`` of the images drawn at their positions,
    framed in their class colour, skipping any that would overlap one already drawn."""
    import matplotlib

    x, what = layer_codes(model, images, layer, batch_size=batch_size, mean=mean, std=std,
                          progress=progress)  # fmt: skip
    xy = embed(x, perplexity=perplexity, seed=seed)
    labels = images.labels.numpy()
    present = sorted(set(int(v) for v in labels))
    cmap = matplotlib.colormaps["tab10" if len(present) <= 10 else "tab20"]
    colour = {c: cmap(k % cmap.N) for k, c in enumerate(present)}
    small = max(images.pixels.shape[-2:]) <= 64 and thumbnails > 0
    fig = Figure(figsize=(11.5 if small else 6.4, 5.4), layout="constrained")
    axes = fig.subplots(1, 2 if small else 1, squeeze=False)[0]
    ax = axes[0]
    for c in present:
        sel = labels == c
        name = images.classes[c] if c < len(images.classes) else str(c)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=9, color=colour[c], label=name, linewidths=0)
    ax.legend(fontsize=7, markerscale=1.6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"{len(labels)} images, coloured by true class", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if small:
        _thumbnails(axes[1], xy, images, labels, colour, thumbnails, seed)
    fig.suptitle(
        f"t-SNE of the {what} ({x.shape[1]:,} values per image), perplexity {perplexity:g}",
        fontsize=10,
    )
    return fig


def _thumbnails(ax, xy, images: Images, labels, colour, count: int, seed: int) -> None:
    """Draw images at their points; a greedy pass keeps those at least one tile apart."""
    lo, hi = xy.min(0), xy.max(0)
    span = np.maximum(hi - lo, 1e-9)
    tile = span / 14  # about 14 thumbnails across
    kept: list[int] = []
    for i in np.random.default_rng(seed).permutation(len(xy)):
        if len(kept) >= count:
            break
        if all(np.any(np.abs(xy[i] - xy[j]) >= tile) for j in kept):
            kept.append(int(i))
    for i in kept:
        (x0, y0), (x1, y1) = xy[i] - tile / 2, xy[i] + tile / 2
        img = images.shown(i)
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1, extent=(x0, x1, y0, y1))
        else:
            ax.imshow(img, extent=(x0, x1, y0, y1))
        ax.add_patch(_frame((x0, y0), tile, colour[int(labels[i])]))
    ax.set_xlim(lo[0] - tile[0], hi[0] + tile[0])
    ax.set_ylim(lo[1] - tile[1], hi[1] + tile[1])
    ax.set_aspect("auto")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{len(kept)} of the images at their places, framed by class", fontsize=9)


def _frame(corner: Sequence[float], size: np.ndarray, colour) -> object:
    from matplotlib.patches import Rectangle

    return Rectangle(corner, size[0], size[1], fill=False, ec=colour, lw=1.4)
