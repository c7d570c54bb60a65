"""Caps on what a data file or an option may ask for, each with the reason it sits where it does.

A file header's numbers are a claim, not a fact: 408 bytes can declare 2**31 classes, and a
pickle of 1.5 KB can ask numpy for a 1 GiB array. The data readers compare every declared size
with the bytes really there and with these caps *before* they allocate, so a corrupt or crafted
file fails in one line instead of exhausting memory. The module imports nothing, so the CLI
can name the caps in its help without loading torch.
"""

from __future__ import annotations

# the largest array one data file may decode to. Every data set the toolkit knows is far
# below it (CIFAR-100's train batch: 153.6 MB; MNIST's train images: 47 MB); a larger one
# belongs in an image folder, which is decoded image by image
MAX_ARRAY_BYTES = 4 << 30  # bytes (4 GiB)

# labels are class indices 0..K-1; ImageNet-21k has 21,841 classes. A label past this is a
# corrupt file (a class-name list or a bincount of that length would exhaust memory)
MAX_CLASSES = 100_000

# image depth: 1 (gray), 3 (RGB), 4 (RGBA), a few dozen for multispectral bands. More is a
# transposed array (N, H, W, C read as N, C, H, W) or a corrupt file; the per-channel
# statistics keep a 256-bin histogram per channel
MAX_CHANNELS = 1024

# --image-size: a side longer than this is a typo (4096 x 4096 x 3 is 48 MiB per image as
# uint8, 192 MiB as float32 per image in a batch)
MAX_IMAGE_SIDE = 4096

# deflate (gzip, zip) cannot expand data more than 1032:1 (a 258-byte match coded in 2 bits);
# a compressed file whose header promises more than this ratio of its own size is corrupt
MAX_DEFLATE_RATIO = 1100


def human_bytes(n: int) -> str:
    """``n`` bytes as '4 GiB', '1.5 MiB' or '408 bytes' (binary units, as memory is counted)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"
