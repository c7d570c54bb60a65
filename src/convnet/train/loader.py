"""The in-memory loader: seeded, resumable, multi-process-aware batches of a uint8 split.

The order of epoch ``e`` is ``randperm(N)`` from a generator seeded with ``(seed, e)``, so it
needs no saved state: resuming at (epoch, step) just skips ``step`` batches. Global batch ``k``
is ``order[k*B : (k+1)*B]``; with ``W`` processes, rank ``r`` takes the ``r``-th of ``W`` equal
slices of it (the role DistributedSampler plays for a Dataset). Random augmentation is drawn for
the whole global batch from a generator seeded with ``(seed, e, k)`` before slicing, so every image
gets the same crop and flip whatever the number of processes, and a resumed run draws exactly
what the uninterrupted run drew.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass
class Augment:
    """Training augmentation; every field off means the batch is only normalized."""

    crop_padding: int = 0  # random crop to the input size after padding by this many pixels
    hflip: bool = False
    cutout: int = 0  # side of a random zeroed square
    pca_jitter: float = 0.0  # std of AlexNet's colour-PCA alpha (0: off)
    # (eigenvalues (C,), eigenvectors (C, C)) of the training pixels' colour covariance, in
    # [0, 1] units (convnet.data.augment.rgb_pca); needed when pca_jitter > 0
    pca: tuple[torch.Tensor, torch.Tensor] | None = None


def _mix(*values: int) -> int:
    """A 63-bit seed from a few integers (splitmix-style), so nearby seeds give unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h ^= (v + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class Loader:
    """Batches of (images float (B, C, H, W) normalized, labels int64 (B,)) on ``device``.

    Args:
        x: uint8 (N, C, h, w) images; y: int64 (N,) labels.
        batch_size: the global batch B (split evenly over ``world`` processes).
        input_size: (C, H, W) the model wants; smaller images are zero-padded to it (centred),
            larger ones cropped (randomly when training, else centred).
        resize: scale every image so its shorter side is this many pixels first, on the
            device (AlexNet: 256, then random 224 crops); 0: the images as stored.
        mean, std: per-channel statistics in [0, 1] units for normalization.
        train: shuffle, augment and (with ``drop_last``) drop the last incomplete batch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        input_size: tuple[int, int, int],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        *,
        train: bool,
        seed: int = 0,
        augment: Augment | None = None,
        rank: int = 0,
        world: int = 1,
        drop_last: bool = True,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        resize: int = 0,
    ):
        padding, side = (augment or Augment()).crop_padding, min(input_size[1:])
        if train and padding >= side:
            # padding p shifts by up to p pixels: at p >= side a crop can hold no image at all,
            # and each batch is padded to (side + 2p)^2 (5000 on MNIST: minutes per batch)
            raise ConfigError(
                "crop_padding",
                padding,
                f"must be < {side}, the side of the {input_size[1]}x{input_size[2]} input "
                "(a larger shift can leave a crop with no image in it)",
            )
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device)
        self.batch_size = batch_size
        self.input_size = tuple(input_size)
        self.train = train
        self.seed = seed
        self.augment = augment or Augment()
        self.rank, self.world = rank, world
        self.drop_last = drop_last and train
        self.channels_last = channels_last
        self.resize = int(resize)
        if self.augment.pca_jitter > 0 and self.augment.pca is None:
            raise ValueError("Augment.pca_jitter needs Augment.pca (convnet.data.augment.rgb_pca)")
        c = self.x.shape[1]
        self.mean = torch.tensor(mean, device=self.device).view(1, c, 1, 1)
        self.inv_std = 1.0 / torch.tensor(std, device=self.device).view(1, c, 1, 1)

    def __len__(self) -> int:
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """The image indices of ``epoch`` in visiting order (identity when not training)."""
        n = self.x.shape[0]
        if not self.train:
            return torch.arange(n)
        g = torch.Generator().manual_seed(_mix(self.seed, epoch))
        return torch.randperm(n, generator=g)

    def batches(
        self, epoch: int, start: int = 0
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """Yield ``(k, images, labels)`` for batches ``k = start ..`` of ``epoch``, this rank's slice."""
        order = self.order(epoch).to(self.device)
        for k in range(start, len(self)):
            idx = order[k * self.batch_size : (k + 1) * self.batch_size]
            if self.train:
                g = torch.Generator(device=self.device).manual_seed(_mix(self.seed, epoch, k, 1))
                images = self._train_transform(self.x[idx], g)
            else:
                images = None
            part = _shard(idx.shape[0], self.rank, self.world)
            if images is None:
                images = self._eval_transform(self.x[idx[part]])
            else:
                images = images[part]
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield k, images, self.y[idx[part]]

    def _train_transform(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Resize, pad small images to the input size, then a random crop (a shift by up to
        ``crop_padding`` pixels, or a random window of larger images), flip, normalize, colour
        jitter, cutout."""
        from ..data import augment as A

        if self.resize:
            x = A.resize_shorter(x, self.resize)
        th, tw = self.input_size[1:]
        h, w = x.shape[-2:]
        if h < th or w < tw:
            x = A.pad_to(x, (max(h, th), max(w, tw)))
        if self.augment.crop_padding > 0 or x.shape[-2:] != (th, tw):
            x = A.random_crop(x, self.augment.crop_padding, size=(th, tw), generator=g)
        if self.augment.hflip:
            x = A.hflip(x, generator=g)
        x = self._normalize(x)
        if self.augment.pca_jitter > 0:
            values, vectors = self.augment.pca
            x = A.pca_jitter(
                x, values, vectors, self.augment.pca_jitter, scale=self.inv_std, generator=g
            )
        if self.augment.cutout > 0:
            x = A.cutout(x, self.augment.cutout, generator=g)
        return x

    def _eval_transform(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize:
            from ..data.augment import resize_shorter

            x = resize_shorter(x, self.resize)
        return self._normalize(fit_size(x, self.input_size[1:]))

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 -> float32: ``(x / 255 - mean) / std``."""
        return (x.float().mul_(1 / 255.0) - self.mean) * self.inv_std


def _shard(n: int, rank: int, world: int) -> slice:
    """Rank ``rank``'s contiguous slice of ``n`` items split as evenly as possible."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def fit_size(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-pad (centred) smaller images, then centre-crop larger ones, to ``size`` (H, W)."""
    from ..data import augment as A

    th, tw = size
    h, w = x.shape[-2:]
    if h < th or w < tw:
        x = A.pad_to(x, (max(h, th), max(w, tw)))
    if x.shape[-2:] != (th, tw):
        x = A.center_crop(x, (th, tw))
    return x
