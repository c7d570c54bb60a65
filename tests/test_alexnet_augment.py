"""AlexNet's own augmentation: images resized to 256 (against PIL), the colour PCA (against
numpy's eigh of the covariance), the PCA jitter's shifts (alpha recovered and its spread
measured), the ten test crops (positions by index arithmetic), and `--tta 10crop` end to end
against the ten views computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from convnet.data import augment as A
from convnet.train.loader import Augment, Loader


@pytest.mark.parametrize(
    ("h", "w", "shorter", "want"),
    [(32, 32, 256, (256, 256)), (300, 400, 256, (256, 341)), (500, 200, 256, (640, 256))],
)
def test_resized_size_keeps_the_aspect(h, w, shorter, want):
    # the longer side is round(longer * shorter / shorter side): 400 * 256 / 300 = 341.3
    assert A.resized_size(h, w, shorter) == want


@pytest.mark.parametrize(("h", "w", "shorter"), [(8, 10, 20), (32, 32, 64), (40, 30, 12)])
def test_resize_shorter_matches_pil_bilinear(h, w, shorter):
    """Up and down (antialiased, as PIL does): within one grey level of PIL's BILINEAR."""
    a = np.random.default_rng(h + w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    x = torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()
    out = A.resize_shorter(x, shorter)
    assert out.dtype == torch.uint8 and out.shape[-2:] == A.resized_size(h, w, shorter)
    got = out[0].permute(1, 2, 0).numpy().astype(int)
    ref = np.asarray(Image.fromarray(a).resize(got.shape[1::-1], Image.Resampling.BILINEAR))
    assert np.abs(got - ref.astype(int)).max() <= 1
    assert A.resize_shorter(out, shorter) is out  # already at the size: untouched


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 6),
    c=st.sampled_from([1, 3, 4]),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    seed=st.integers(0, 2**31),
    chunk=st.sampled_from([1, 5, 1 << 22]),
)
def test_rgb_pca_is_numpys_eigh_of_the_pixel_covariance(n, c, h, w, seed, chunk):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 1, h, w))  # correlated channels, as in photographs
    x = np.clip(base + rng.integers(-40, 41, (n, c, h, w)), 0, 255).astype(np.uint8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(A, "PCA_CHUNK_PIXELS", chunk)  # one image per chunk, a few, or all at once
        values, vectors = A.rgb_pca(torch.from_numpy(x))
    pixels = x.transpose(1, 0, 2, 3).reshape(c, -1).astype(np.float64) / 255
    cov = np.atleast_2d(np.cov(pixels, bias=True))  # population covariance, C x C
    ref_values, ref_vectors = np.linalg.eigh(cov)
    order = np.argsort(ref_values)[::-1]
    ref_values, ref_vectors = ref_values[order], ref_vectors[:, order]
    assert np.allclose(values.numpy(), np.clip(ref_values, 0, None), atol=1e-6)
    # each eigenvector up to its sign, where its eigenvalue is distinct from the others
    for i in range(c):
        gaps = np.abs(ref_values[i] - np.delete(ref_values, i))
        if gaps.size == 0 or gaps.min() > 1e-4:
            assert abs(float(vectors[:, i].double() @ torch.from_numpy(ref_vectors[:, i]))) == (
                pytest.approx(1.0, abs=1e-4)
            )


def test_pca_jitter_shifts_each_image_along_the_components():
    """delta_i = P (alpha_i * lambda): the same shift for every pixel of image i; recovering
    alpha = P^T delta / lambda gives N(0, 0.1^2) draws, independent per image and component."""
    n = 20_000
    values = torch.tensor([0.05, 0.01, 0.002])
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)))
    x = torch.rand(n, 3, 2, 2)
    g = torch.Generator().manual_seed(1)
    out = A.pca_jitter(x, values, q, 0.1, generator=g)
    delta = out - x
    assert torch.allclose(delta, delta[..., :1, :1].expand_as(delta), atol=1e-6)
    alpha = (delta[:, :, 0, 0].double() @ q.double()) / values.double()  # (N, 3)
    assert alpha.mean(0).abs().max() < 0.005  # 3.5 standard errors of 0.1 / sqrt(N)
    assert torch.allclose(alpha.std(0), torch.full((3,), 0.1, dtype=torch.float64), rtol=0.03)
    corr = torch.corrcoef(alpha.T)
    assert (corr - torch.eye(3, dtype=torch.float64)).abs().max() < 0.05
    # normalized images: the shift is divided by each channel's std
    std = torch.tensor([0.2, 0.25, 0.5])
    again = A.pca_jitter(
        x, values, q, 0.1, scale=1 / std, generator=torch.Generator().manual_seed(1)
    )
    assert torch.allclose(again - x, delta / std.view(1, 3, 1, 1), atol=1e-6)


def test_ten_crop_positions_by_index_arithmetic():
    """Each pixel holds its own index r * W + c, so a crop's first pixel says where it was cut."""
    h, w, oh, ow = 9, 11, 5, 6
    x = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).repeat(2, 3, 1, 1)
    views = A.ten_crop(x, (oh, ow))
    assert len(views) == 10 and all(v.shape == (2, 3, oh, ow) for v in views)
    dy, dx = h - oh, w - ow  # 4, 5
    want = [(0, 0), (0, dx), (dy, 0), (dy, dx), (dy // 2, dx // 2)]
    for k, (t, s) in enumerate(want):
        first = int(views[k][0, 0, 0, 0])
        assert divmod(first, w) == (t, s)
        last = int(views[k][1, 2, -1, -1])
        assert divmod(last, w) == (t + oh - 1, s + ow - 1)
        mirrored = views[k + 5]
        assert divmod(int(mirrored[0, 0, 0, -1]), w) == (t, s)  # the crop's left edge, now right
        assert torch.equal(mirrored, views[k].flip(-1))
    with pytest.raises(ValueError, match="does not fit"):
        A.ten_crop(x, (10, 6))


def test_loader_resizes_crops_and_jitters_on_the_device():
    x = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(6)
    pca = A.rgb_pca(x)
    common = dict(mean=(0.5,) * 3, std=(0.25,) * 3, resize=64, device="cpu")
    aug = Augment(hflip=True, pca_jitter=0.1, pca=pca)
    train = Loader(x, y, 3, (3, 56, 56), train=True, seed=0, augment=aug, **common)
    _, xb, _ = next(train.batches(0))
    assert xb.shape == (3, 3, 56, 56)
    # evaluation: resized to 64 and centre-cropped to 56, exactly the resized image's middle
    test = Loader(x, y, 6, (3, 56, 56), train=False, **common)
    _, xb, _ = next(test.batches(0))
    big = A.resize_shorter(x, 64).float() / 255
    assert torch.allclose(xb, (big[..., 4:60, 4:60] - 0.5) / 0.25, atol=1e-5)
    with pytest.raises(ValueError, match="pca"):
        Loader(x, y, 3, (3, 56, 56), train=True, augment=Augment(pca_jitter=0.1), **common)


def test_the_alexnet_recipe_is_the_papers_augmentation():
    from convnet.train import recipe

    cfg = recipe("alexnet")
    assert (cfg.resize, cfg.crop_padding, cfg.hflip, cfg.pca_jitter) == (256, 0, True, 0.1)


def test_eval_10crop_averages_the_ten_views_computed_by_hand(tmp_path):
    """A net trained with --resize 12 on 8x8 RGB images (random 8x8 crops of 12x12) scored
    with --tta 10crop: the probabilities of the ten crops of each resized test image,
    averaged, give the same top-1 and loss as evaluate reports."""
    from convnet.train import evaluate, fit, load_checkpoint, recipe

    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    images = np.clip(rng.normal(80 + 50 * labels[:, None, None, None], 40, (60, 3, 8, 8)), 0, 255)
    np.savez(
        tmp_path / "rgb.npz",
        x_train=images[:40].astype(np.uint8),
        y_train=labels[:40],
        x_test=images[40:].astype(np.uint8),
        y_test=labels[40:],
    )
    cfg = recipe(
        None,
        epochs=1,
        batch_size=8,
        lr=0.01,
        resize=12,
        hflip=True,
        pca_jitter=0.1,
        out=str(tmp_path / "run"),
        progress=False,
        num_threads=1,
    )
    fit("CONV3-4 -> RELU -> POOL2 -> FC-3", str(tmp_path / "rgb.npz"), cfg)
    r = evaluate(tmp_path / "run", str(tmp_path / "rgb.npz"), tta="10crop", device="cpu")
    model, info = load_checkpoint(tmp_path / "run")
    x = torch.from_numpy(images[40:].astype(np.uint8))
    big = A.resize_shorter(x, 12).float() / 255
    big = (big - torch.tensor(info["mean"]).view(1, 3, 1, 1)) / torch.tensor(info["std"]).view(
        1, 3, 1, 1
    )
    probs = 0
    for t, s in [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2)]:
        crop = big[..., t : t + 8, s : s + 8]
        with torch.no_grad():
            probs = probs + model(crop).softmax(1) + model(crop.flip(-1)).softmax(1)
    probs = probs / 10
    y = torch.from_numpy(labels[40:])
    assert r["tta"] == "10crop" and r["n"] == 20
    assert r["top1"] == pytest.approx(100.0 * float((probs.argmax(1) == y).float().mean()))
    assert r["loss"] == pytest.approx(float(-probs.gather(1, y[:, None]).log().mean()), rel=1e-5)
    # images no larger than the model's input have nothing to cut ten crops from
    from convnet.errors import ConvnetError
    from convnet.train.evaluate import views

    with pytest.raises(ConvnetError, match="--tta 10crop.*8x8.*--resize"):
        views(torch.zeros(2, 3, 8, 8), "10crop", size=(8, 8))
