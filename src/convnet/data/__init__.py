"""Data: sources held in memory as uint8 tensors, checksum-verified downloads, batched augmentation.

>>> from convnet.data import load
>>> data = load("mnist-sample")          # 4,000 / 1,000 real MNIST digits, bundled
>>> data.x_train.shape, data.input_size
(torch.Size([4000, 1, 28, 28]), (1, 28, 28))
"""

from .augment import (
    center_crop,
    cutout,
    hflip,
    normalize,
    pad_to,
    pca_jitter,
    random_crop,
    resize_shorter,
    rgb_pca,
    ten_crop,
)
from .catalog import CATALOG, default_data_dir
from .dataset import Dataset, channel_stats
from .download import FetchedFile, fetch, fetch_files
from .load import NAMES, load

__all__ = [
    "CATALOG",
    "NAMES",
    "Dataset",
    "FetchedFile",
    "center_crop",
    "channel_stats",
    "cutout",
    "default_data_dir",
    "fetch",
    "fetch_files",
    "hflip",
    "load",
    "normalize",
    "pad_to",
    "pca_jitter",
    "random_crop",
    "resize_shorter",
    "rgb_pca",
    "ten_crop",
]
