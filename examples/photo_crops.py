"""A CIFAR-shaped data set that needs no download: 32x32x3 crops of ten photos scikit-image ships.

The class of a crop is the photo it was cut from (an astronaut, a cat, a cup of coffee, a
rocket, a stained tissue, a deep-sky field, a retina, brick, grass, gravel), so a network must
tell them apart by colour, texture and local shape: enough for its layers to learn edges,
colour blobs and textures, which is what `convnet viz hierarchy` is meant to show. It is not
CIFAR-10: there are ten source images, not ten object categories, and test crops come from
the same photos as training crops (they may overlap), so test accuracy here says little.

Each photo is resized so its shorter side is 128 px; a crop is a random 32x32 window of it,
flipped left-right half the time. Writes ``OUT/train/<class>/*.png`` and ``OUT/test/...``,
the image-folder layout `convnet train --data OUT` reads.

    pip install 'convnet[photos]'
    python examples/photo_crops.py data/photo-crops            # 500 + 100 crops per class
    convnet train "INPUT[32x32x3] -> [CONV3-32 -> RELU -> POOL2]*2 -> [CONV3-64 -> RELU]*2 -> POOL2 -> FC-10" \\
        --data data/photo-crops --epochs 6 -o runs/photo-crops
    convnet viz hierarchy runs/photo-crops -o docs/img/hierarchy_photo_crops
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = {
    "astronaut": "astronaut",
    "cat": "chelsea",
    "coffee": "coffee",
    "rocket": "rocket",
    "tissue": "immunohistochemistry",
    "deep-sky": "hubble_deep_field",
    "retina": "retina",
    "brick": "brick",
    "grass": "grass",
    "gravel": "gravel",
}


def photo(name: str, side: int = 128) -> np.ndarray:
    """scikit-image's photo ``name`` as uint8 RGB (H, W, 3), shorter side ``side`` pixels."""
    from skimage import data

    a = np.asarray(getattr(data, name)())
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)  # the gray textures, as RGB
    im = Image.fromarray(a[..., :3].astype(np.uint8))
    s = side / min(im.size)
    return np.asarray(im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder to write train/ and test/ into")
    p.add_argument("--train", type=int, default=500, help="crops per class for training (500)")
    p.add_argument("--test", type=int, default=100, help="crops per class for testing (100)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the crops (0)")
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    for cls, name in PHOTOS.items():
        img = photo(name)
        h, w = img.shape[:2]
        for split, n in (("train", args.train), ("test", args.test)):
            folder = args.out / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                y, x = rng.integers(0, h - 31), rng.integers(0, w - 31)
                crop = img[y : y + 32, x : x + 32]
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                Image.fromarray(np.ascontiguousarray(crop)).save(folder / f"{i:04d}.png")
    print(f"wrote {len(PHOTOS)} classes x ({args.train} + {args.test}) crops to {args.out}")


if __name__ == "__main__":
    main()
