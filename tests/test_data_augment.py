"""Batched augmentation checked sample by sample against plain loops and numpy; the in-memory loader."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.data import center_crop, cutout, hflip, normalize, pad_to, random_crop


def distinct_images(n, c, h, w):
    """Images whose every window is unique (values wrap mod 256 only for big images)."""
    return (torch.arange(n * c * h * w) % 251 + 1).to(torch.uint8).view(n, c, h, w)


def window_offset(out_i, padded_i):
    """Loop over every window of one padded image; return the offsets that match ``out_i``."""
    oh, ow = out_i.shape[-2:]
    ph, pw = padded_i.shape[-2:]
    return [
        (dy, dx)
        for dy in range(ph - oh + 1)
        for dx in range(pw - ow + 1)
        if torch.equal(padded_i[:, dy : dy + oh, dx : dx + ow], out_i)
    ]


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 5),
    c=st.integers(1, 3),
    h=st.integers(2, 9),
    w=st.integers(2, 9),
    padding=st.integers(0, 3),
    shrink=st.integers(0, 2),
    seed=st.integers(0, 2**31),
)
def test_random_crop_is_a_window_of_the_padded_image(n, c, h, w, padding, shrink, seed):
    x = distinct_images(n, c, h, w)
    size = (max(1, h - shrink), max(1, w - shrink))
    out = random_crop(x, padding, size=size, generator=torch.Generator().manual_seed(seed))
    assert out.shape == (n, c, *size) and out.dtype == x.dtype
    padded = np.pad(x.numpy(), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    for i in range(n):
        assert window_offset(out[i], torch.from_numpy(padded[i])), f"sample {i} is no window"


def test_random_crop_offsets_are_per_sample_and_uniform():
    n, p = 2000, 2
    x = torch.zeros(n, 1, 6, 6, dtype=torch.uint8)
    x[:, :, 0, 0] = 255  # a marker whose position reveals each sample's shift
    out = random_crop(x, p, generator=torch.Generator().manual_seed(0))
    # the marker moves to (p - oy, p - ox) or falls outside the crop; count the visible shifts
    pos = out[:, 0].flatten(1).argmax(1)
    visible = out[:, 0].flatten(1).amax(1) == 255
    rows, cols = pos[visible] // 6, pos[visible] % 6
    assert set(zip(rows.tolist(), cols.tolist())) == {
        (r, s) for r in range(p + 1) for s in range(p + 1)
    }
    # P(marker visible) = P(oy <= p) P(ox <= p) = (3/5)^2 for p = 2
    assert abs(visible.float().mean().item() - 0.36) < 0.04
    a = random_crop(x, p, generator=torch.Generator().manual_seed(5))
    b = random_crop(x, p, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_hflip_per_sample():
    x = distinct_images(400, 2, 3, 5)
    out = hflip(x, 0.5, generator=torch.Generator().manual_seed(1))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))]
    kept = [torch.equal(out[i], x[i]) for i in range(len(x))]
    assert all(f != k for f, k in zip(flipped, kept))  # each sample is one or the other
    assert 0.4 < np.mean(flipped) < 0.6
    assert torch.equal(hflip(x, 0.0), x) and torch.equal(hflip(x, 1.0), x.flip(-1))


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
def test_normalize_matches_numpy(dtype, tol):
    x = torch.randint(
        0, 256, (4, 3, 5, 5), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    mean, std = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
    ref = (x.numpy() / 255.0 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    out = normalize(x, mean, std, dtype)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.float().numpy(), ref, rtol=tol, atol=tol)


def test_cutout_zeroes_one_clipped_square_per_sample():
    n, h, w, size = 300, 10, 12, 4
    x = torch.full((n, 2, h, w), 7.0)
    out = cutout(x, size, generator=torch.Generator().manual_seed(3))
    full = 0
    for i in range(n):
        mask = (out[i] == 0).numpy()
        assert (mask[0] == mask[1]).all()  # the same square in every channel
        ys, xs = np.nonzero(mask[0])
        assert len(ys) > 0
        box = mask[0, ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        assert box.all() and box.shape[0] <= size and box.shape[1] <= size  # a rectangle
        # clipped only where it touches the border
        assert box.shape[0] == size or ys.min() == 0 or ys.max() == h - 1
        assert box.shape[1] == size or xs.min() == 0 or xs.max() == w - 1
        full += box.shape == (size, size)
        assert (out[i][~torch.from_numpy(mask)] == 7).all()
    assert full > n // 3
    assert torch.equal(cutout(x, size, p=0.0), x)


def test_pad_to_and_center_crop():
    x = distinct_images(3, 1, 28, 28)
    y = pad_to(x, 32)
    ref = np.pad(x.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    np.testing.assert_array_equal(y.numpy(), ref)
    assert torch.equal(center_crop(y, 28), x)
    assert pad_to(x, (29, 31)).shape == (3, 1, 29, 31)
    with pytest.raises(ValueError):
        pad_to(x, 20)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_choices_on_cuda_with_a_cpu_generator():
    x = distinct_images(64, 3, 8, 8)
    ops = [
        lambda t, g: random_crop(t, 2, generator=g),
        lambda t, g: hflip(t, 0.5, generator=g),
        lambda t, g: cutout(t.float(), 3, generator=g),
    ]
    for op in ops:
        cpu = op(x, torch.Generator().manual_seed(4))
        gpu = op(x.cuda(), torch.Generator().manual_seed(4))
        assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())
