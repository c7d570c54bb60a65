"""Batched data augmentation on the training device: whole-batch tensor operations, no per-image loop.

Every random operation draws its per-sample choices from a ``torch.Generator`` (on the CPU or
on the batch's device); with the same generator state it makes the same choices on any device,
which is what makes an interrupted run resumable bit for bit. Images are (N, C, H, W); crops
and flips work on uint8 (cheap: a quarter of float32's bytes) or float.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _randint(
    high: int, n: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """``n`` integers uniform in [0, high), drawn on the generator's device, moved to ``device``."""
    where = generator.device if generator is not None else device
    return torch.randint(high, (n,), generator=generator, device=where).to(device)


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    where = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=where).to(device)


def pad_to(x: torch.Tensor, size: int | Sequence[int], value: float = 0) -> torch.Tensor:
    """Pad (N, C, H, W) images with ``value`` to (N, C, *size), centred.

    MNIST's 28x28 digits become LeNet-5's 32x32 input with 2 pixels on every side, as in
    LeCun et al. (1998). An odd difference puts the extra pixel at the bottom/right.
    """
    th, tw = _pair(size)
    h, w = x.shape[-2:]
    if th < h or tw < w:
        raise ValueError(f"pad_to: cannot pad {h}x{w} images to a smaller {th}x{tw}")
    top, left = (th - h) // 2, (tw - w) // 2
    return F.pad(x, (left, tw - w - left, top, th - h - top), value=value)


def random_crop(
    x: torch.Tensor,
    padding: int = 0,
    *,
    size: int | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    value: float = 0,
) -> torch.Tensor:
    """Pad by ``padding`` on every side, then cut a ``size`` window at a random offset per sample.

    With the default ``size`` (the input's H, W) this is the "pad 4 and crop 32" shift of
    CIFAR training: sample i is shifted by (dy_i, dx_i) uniform in [-padding, padding]. With a
    smaller ``size`` it is AlexNet's random 224x224 crop of a 256x256 image.

    out[i, c, r, s] = padded[i, c, oy_i + r, ox_i + s],
    oy_i ~ U{0..H + 2p - h}, ox_i ~ U{0..W + 2p - w}. One indexing op, no Python loop over samples.
    """
    n, c, h, w = x.shape
    oh, ow = (h, w) if size is None else _pair(size)
    if padding:
        x = F.pad(x, (padding, padding, padding, padding), value=value)
    ph, pw = x.shape[-2:]
    if oh > ph or ow > pw:
        raise ValueError(f"random_crop: a {oh}x{ow} crop does not fit in {ph}x{pw} (padded) images")
    oy = _randint(ph - oh + 1, n, generator, x.device)
    ox = _randint(pw - ow + 1, n, generator, x.device)
    # a view of every (oh, ow) window, (N, C, n_y, n_x, oh, ow), costs no memory; indexing it
    # with one (oy, ox) pair per sample copies just the chosen windows (several times faster
    # than gathering an (N, C, oh, ow) index grid)
    windows = x.unfold(2, oh, 1).unfold(3, ow, 1)
    return windows[torch.arange(n, device=x.device), :, oy, ox]


def center_crop(x: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """The central ``size`` window of (N, C, H, W) images (the test-time partner of random_crop)."""
    oh, ow = _pair(size)
    h, w = x.shape[-2:]
    if oh > h or ow > w:
        raise ValueError(f"center_crop: a {oh}x{ow} crop does not fit in {h}x{w} images")
    top, left = (h - oh) // 2, (w - ow) // 2
    return x[..., top : top + oh, left : left + ow]


def hflip(
    x: torch.Tensor, p: float = 0.5, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mirror each sample left-right with probability ``p``, independently per sample."""
    flip = _rand(x.shape[0], generator, x.device) < p
    out = x.clone()
    out[flip] = x[flip].flip(-1)  # touches only the flipped half, unlike torch.where
    return out


def resized_size(h: int, w: int, shorter: int) -> tuple[int, int]:
    """(H', W') of an h x w image scaled so its shorter side is ``shorter``, aspect kept:
    the longer side is ``round(longer * shorter / shorter_side)``."""
    if h <= w:
        return shorter, max(1, round(w * shorter / h))
    return max(1, round(h * shorter / w)), shorter


def resize_shorter(x: torch.Tensor, shorter: int) -> torch.Tensor:
    """Scale (N, C, H, W) images so the shorter side is ``shorter`` pixels (AlexNet: 256).

    Bilinear, with antialiasing when shrinking (as PIL's resize), on the batch's device; uint8
    in, uint8 out (rounded), so the crops and flips after it stay on a quarter of float's bytes.
    Images already at the size are returned as they are.
    """
    h, w = x.shape[-2:]
    size = resized_size(h, w, shorter)
    if size == (h, w):
        return x
    out = F.interpolate(
        x.float(), size=size, mode="bilinear", align_corners=False, antialias=size[0] < h
    )
    return out.round_().clamp_(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else out


PCA_CHUNK_PIXELS = 1 << 22  # pixels per chunk of rgb_pca's sums: 100 MB of float64 for RGB


def rgb_pca(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (C,) and eigenvectors (C, C) (columns, eigenvalues descending) of the C x C
    covariance of the pixel values of uint8 (N, C, H, W) images, in [0, 1] units.

    AlexNet's colour PCA "on the set of RGB pixel values throughout the training set": every
    pixel is one sample of C values. Exact and memory-light: float64 sums of x and of x x^T
    over chunks of images, cov = E[x x^T] - E[x] E[x]^T (the population covariance).
    """
    n, c = x.shape[:2]
    if n == 0:
        raise ValueError("rgb_pca: no images")
    chunk = max(1, PCA_CHUNK_PIXELS // max(1, x.shape[2] * x.shape[3]))
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, c, dtype=torch.float64)
    for lo in range(0, n, chunk):
        v = x[lo : lo + chunk].to(torch.float64).div_(255.0).transpose(0, 1).reshape(c, -1)
        s1 += v.sum(1).cpu()
        s2 += (v @ v.T).cpu()
    count = n * x.shape[2] * x.shape[3]
    mean = s1 / count
    cov = s2 / count - torch.outer(mean, mean)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    return values.flip(0).clamp_min(0).float(), vectors.flip(1).float()


def pca_jitter(
    x: torch.Tensor,
    eigenvalues: torch.Tensor,
    eigenvectors: torch.Tensor,
    std: float = 0.1,
    *,
    scale: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """AlexNet's colour jitter: add ``P (alpha * lambda)`` to every pixel of each image.

    ``P`` (C, C) holds the eigenvectors as columns and ``lambda`` (C,) the eigenvalues of
    :func:`rgb_pca`; ``alpha`` (N, C) ~ N(0, std^2) is drawn once per image, so the whole image
    shifts along the principal colour directions (the paper: std 0.1, "intensity and colour of
    the illumination"). The shift is in [0, 1] pixel units; for images already normalized by
    ``(x - mean) / std_c`` pass ``scale = 1 / std_c`` (C,) and it is scaled to match.
    """
    n, c = x.shape[:2]
    where = generator.device if generator is not None else x.device
    alpha = torch.randn(n, c, generator=generator, device=where).to(x.device) * std
    shift = (alpha * eigenvalues.to(x.device)) @ eigenvectors.to(x.device).T  # (N, C)
    if scale is not None:
        shift = shift * scale.to(x.device).view(1, c)
    return x + shift.to(x.dtype).view(n, c, 1, 1)


def ten_crop_offsets(h: int, w: int, size: int | Sequence[int]) -> list[tuple[int, int]]:
    """(top, left) of the four corner crops and the centre crop of ``size`` in an h x w image:
    the test-time crops of AlexNet (with their mirrors, ten views)."""
    oh, ow = _pair(size)
    if oh > h or ow > w:
        raise ValueError(f"ten_crop: a {oh}x{ow} crop does not fit in {h}x{w} images")
    return [(0, 0), (0, w - ow), (h - oh, 0), (h - oh, w - ow), ((h - oh) // 2, (w - ow) // 2)]


def ten_crop(x: torch.Tensor, size: int | Sequence[int]) -> list[torch.Tensor]:
    """AlexNet's ten test views of (N, C, H, W) images: the four corner and the centre
    ``size`` crops, then the same five mirrored (views, not copies, until flipped)."""
    oh, ow = _pair(size)
    crops = [x[..., t : t + oh, s : s + ow] for t, s in ten_crop_offsets(*x.shape[-2:], size)]
    return crops + [v.flip(-1) for v in crops]


def normalize(
    x: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """uint8 pixels -> floats: y = (x / 255 - mean_c) / std_c per channel c.

    ``mean`` and ``std`` are in [0, 1] units (``Dataset.mean``/``std``). The arithmetic runs in
    float32 and the result is cast to ``dtype`` (bf16 would round x / 255 first otherwise).
    """
    c = x.shape[1]
    if len(mean) != c or len(std) != c:
        raise ValueError(f"normalize: {c} channels but {len(mean)} means and {len(std)} stds")
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, c, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, c, 1, 1)
    scale = 1.0 / (255.0 * s)  # fold the two divisions into one multiply-add
    return x.to(torch.float32).mul_(scale).sub_(m / s).to(dtype)


def cutout(
    x: torch.Tensor,
    size: int,
    *,
    p: float = 1.0,
    generator: torch.Generator | None = None,
    value: float = 0,
) -> torch.Tensor:
    """Set a ``size`` x ``size`` square to ``value`` in each sample (DeVries & Taylor, 2017).

    The square's centre is uniform over the image, so the square may be clipped at the border;
    it is applied to a sample with probability ``p``. Applied after :func:`normalize`,
    ``value=0`` fills with the data set's mean.
    """
    n, _, h, w = x.shape
    cy = _randint(h, n, generator, x.device)
    cx = _randint(w, n, generator, x.device)
    keep = _rand(n, generator, x.device) < p
    y0, x0 = cy - size // 2, cx - size // 2
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_y = (ys >= y0[:, None]) & (ys < (y0 + size)[:, None])  # (N, H)
    in_x = (xs >= x0[:, None]) & (xs < (x0 + size)[:, None])  # (N, W)
    mask = in_y[:, :, None] & in_x[:, None, :] & keep[:, None, None]  # (N, H, W)
    return x.masked_fill(mask[:, None], value)
