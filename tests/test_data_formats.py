"""Every on-disk format, written here in its real layout, loaded back and compared value by value."""

import gzip
import io
import pickle
import struct
import tarfile
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from convnet.data import load
from convnet.data.folder import CorruptImageWarning
from convnet.data.mnist import read_idx
from convnet.errors import DataError

RNG = np.random.default_rng(0)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file written from the format's definition: 0, 0, type 0x08, ndim, big-endian sizes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(folder, gz: bool, n_train=12, n_test=5, hw=(28, 28)):
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": RNG.integers(0, 256, (n_train, *hw), dtype=np.uint8),
        "train-labels-idx1-ubyte": RNG.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": RNG.integers(0, 256, (n_test, *hw), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": RNG.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        raw = idx_bytes(a)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


def check_mnist(data, arrays):
    np.testing.assert_array_equal(data.x_train[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.y_train.numpy(), arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.x_test[:, 0].numpy(), arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.y_test.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert data.x_train.dtype == torch.uint8 and data.y_train.dtype == torch.int64
    x = arrays["train-images-idx3-ubyte"] / 255.0
    assert data.mean == pytest.approx((x.mean(),)) and data.std == pytest.approx((x.std(),))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_and_named_lookup(tmp_path, gz):
    arrays = write_mnist(tmp_path / "mnist", gz)
    check_mnist(load(str(tmp_path / "mnist")), arrays)
    named = load("mnist", root=tmp_path)
    check_mnist(named, arrays)
    assert named.name == "mnist" and named.classes == [str(d) for d in range(10)]
    # a single IDX file's path means its folder
    check_mnist(load(str(next((tmp_path / "mnist").glob("t10k-labels*")))), arrays)


def test_fashion_mnist_gets_its_class_names(tmp_path):
    write_mnist(tmp_path / "fashion-mnist", gz=True)
    data = load("fashion-mnist", root=tmp_path)
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    # the torchvision layout is found too
    write_mnist(tmp_path / "tv" / "FashionMNIST" / "raw", gz=False)
    assert load("fashion-mnist", root=tmp_path / "tv").classes[9] == "Ankle boot"


def test_idx_header_checks(tmp_path):
    good = RNG.integers(0, 256, (3, 4, 5), dtype=np.uint8)
    (tmp_path / "a").write_bytes(idx_bytes(good))
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), good)
    (tmp_path / "b").write_bytes(idx_bytes(good)[:-7])  # truncated download
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"\x1f\x8b\x08junk")
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "c")
    (tmp_path / "d").write_bytes(b"PK\x03\x04....")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(tmp_path / "d")


def cifar_batches(n_per_batch=6, cifar100=False):
    """The official files' dict layout, pickled the way the originals are (bytes keys, protocol 2)."""

    def batch(n):
        key = b"fine_labels" if cifar100 else b"labels"
        d = {
            b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
            key: RNG.integers(0, 100 if cifar100 else 10, n).tolist(),
            b"batch_label": b"batch",
            b"filenames": [b"f.png"] * n,
        }
        return d

    if cifar100:
        prefix = "cifar-100-python"
        batches = {"train": batch(2 * n_per_batch), "test": batch(n_per_batch)}
        meta = {
            "meta": {
                b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                b"coarse_label_names": [b"x"] * 20,
            }
        }
    else:
        prefix = "cifar-10-batches-py"
        batches = {f"data_batch_{i}": batch(n_per_batch) for i in range(1, 6)}
        batches["test_batch"] = batch(n_per_batch)
        meta = {
            "batches.meta": {
                b"label_names": [f"k{i}".encode() for i in range(10)],
                b"num_cases_per_batch": n_per_batch,
            }
        }
    files = {name: pickle.dumps(b, protocol=2) for name, b in {**batches, **meta}.items()}
    return prefix, batches, files


def expected_cifar(batches, cifar100):
    key = b"fine_labels" if cifar100 else b"labels"
    train = [b for n, b in batches.items() if n not in ("test_batch", "test")]
    test = batches["test" if cifar100 else "test_batch"]
    x_train = np.concatenate([b[b"data"] for b in train]).reshape(-1, 3, 32, 32)
    y_train = np.concatenate([b[key] for b in train])
    return x_train, y_train, test[b"data"].reshape(-1, 3, 32, 32), np.array(test[key])


@pytest.mark.parametrize("cifar100", [False, True])
def test_cifar_archive_and_folder(tmp_path, cifar100):
    prefix, batches, files = cifar_batches(cifar100=cifar100)
    name = "cifar100" if cifar100 else "cifar10"
    archive = (
        tmp_path / name / ("cifar-100-python.tar.gz" if cifar100 else "cifar-10-python.tar.gz")
    )
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for f, raw in files.items():
            info = tarfile.TarInfo(f"{prefix}/{f}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    folder = tmp_path / "extracted" / prefix
    folder.mkdir(parents=True)
    for f, raw in files.items():
        (folder / f).write_bytes(raw)
    x_train, y_train, x_test, y_test = expected_cifar(batches, cifar100)
    for data in (
        load(str(archive)),
        load(str(folder)),
        load(str(folder.parent)),
        load(name, root=tmp_path),
    ):
        np.testing.assert_array_equal(data.x_train.numpy(), x_train)
        np.testing.assert_array_equal(data.y_train.numpy(), y_train)
        np.testing.assert_array_equal(data.x_test.numpy(), x_test)
        np.testing.assert_array_equal(data.y_test.numpy(), y_test)
        assert data.input_size == (3, 32, 32)
        assert data.classes[3] == ("c3" if cifar100 else "k3")
        # channel c of image i is bytes [1024 c, 1024 (c + 1)) of its row: R, then G, then B planes
        assert data.mean == pytest.approx(tuple(x_train[:, c].mean() / 255 for c in range(3)))


def test_cifar_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    prefix, _, files = cifar_batches()
    folder = tmp_path / prefix
    folder.mkdir()
    for f, raw in files.items():
        (folder / f).write_bytes(raw)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load(str(folder))


def test_npz(tmp_path):
    x = RNG.integers(0, 256, (6, 3, 5, 5), dtype=np.uint8)
    np.savez(
        tmp_path / "d.npz",
        x_train=x,
        y_train=np.arange(6) % 2,
        x_test=x[:2],
        y_test=np.array([1, 0]),
        classes=np.array(["no", "yes"]),
    )
    data = load(str(tmp_path / "d.npz"))
    assert torch.equal(data.x_train, torch.from_numpy(x)) and data.classes == ["no", "yes"]


def save_image(path, array, fmt):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)


def test_image_folder_png_jpeg_and_a_corrupt_file(tmp_path):
    root = tmp_path / "shapes"
    pngs = {}
    for k, cls in enumerate(["cat", "dog"]):
        for i in range(5):
            a = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            save_image(root / cls / f"{i}.png", a, "PNG")
            pngs[(k, f"{i}.png")] = a
    # a flat-colour JPEG decodes (almost) exactly, so it can be checked too
    save_image(root / "dog" / "z.jpg", np.full((8, 8, 3), (200, 40, 90), np.uint8), "JPEG")
    bad = root / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    (root / "cat" / "notes.txt").write_text("ignored: not an image")

    with pytest.warns(CorruptImageWarning, match=str(bad).replace("\\", "\\\\")):
        data = load(str(root), test_fraction=0.0)
    assert data.classes == ["cat", "dog"] and data.input_size == (3, 8, 8)
    assert data.y_train.tolist() == [0] * 5 + [1] * 6 and data.x_test.shape == (0, 3, 8, 8)
    for i in range(5):
        np.testing.assert_array_equal(
            data.x_train[i].permute(1, 2, 0).numpy(), pngs[(0, f"{i}.png")]
        )
    jpeg = data.x_train[-1].reshape(3, -1).float().mean(1)
    assert torch.allclose(jpeg, torch.tensor([200.0, 40.0, 90.0]), atol=3)

    with pytest.raises(DataError, match="broken.png: cannot decode image"):
        load(str(root), strict=True)


def test_image_folder_split_resize_and_grayscale(tmp_path):
    root = tmp_path / "gray"
    for cls in ("a", "b"):
        for i in range(10):
            save_image(root / cls / f"{i:02d}.png", np.full((20, 40), 10 * i, np.uint8), "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load(str(root), image_size=(10, 10), test_fraction=0.3, seed=1)
    assert data.input_size == (1, 10, 10)
    assert torch.bincount(data.y_test).tolist() == [3, 3] and torch.bincount(
        data.y_train
    ).tolist() == [7, 7]
    # shorter side 20 -> 10, so 40 -> 20 wide, centre 10 columns kept; flat images stay flat
    values = sorted(set(data.x_train.flatten().tolist()) | set(data.x_test.flatten().tolist()))
    assert values == [10 * i for i in range(10)]
    again = load(str(root), image_size=10, test_fraction=0.3, seed=1)
    assert torch.equal(again.x_test, data.x_test)  # the split is fixed by the seed


def test_image_folder_train_test_layout_and_size_mismatch(tmp_path):
    root = tmp_path / "tt"
    save_image(root / "train" / "x" / "0.png", np.zeros((6, 6, 3), np.uint8), "PNG")
    save_image(root / "train" / "y" / "0.png", np.zeros((6, 7, 3), np.uint8), "PNG")
    save_image(root / "test" / "y" / "0.png", np.zeros((6, 6, 3), np.uint8), "PNG")
    with pytest.raises(DataError, match="differ in size.*image_size"):
        load(str(root))
    data = load(str(root), image_size=6)
    assert data.y_train.tolist() == [0, 1] and data.y_test.tolist() == [1]


def test_unusable_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load(str(tmp_path / "empty"))
    bad = tmp_path / "bad" / "only"
    bad.mkdir(parents=True)
    (bad / "a.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    with pytest.warns(CorruptImageWarning), pytest.raises(DataError, match="no training image"):
        load(str(tmp_path / "bad"))
    with tarfile.open(tmp_path / "other.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(DataError, match="not a CIFAR python archive"):
        load(str(tmp_path / "other.tar.gz"))
    (tmp_path / "cut.tar.gz").write_bytes((tmp_path / "other.tar.gz").read_bytes()[:20])
    with pytest.raises(DataError, match="cannot read the archive"):
        load(str(tmp_path / "cut.tar.gz"))


def test_default_data_dir_follows_the_environment(tmp_path, monkeypatch):
    arrays = write_mnist(tmp_path / "mnist", gz=True)
    monkeypatch.setenv("CONVNET_DATA", str(tmp_path))
    check_mnist(load("mnist"), arrays)


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((4, 6, 3), np.uint8)
    a[0, 0] = 255  # a marker in the top-left corner of the stored pixels
    img = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    (tmp_path / "c").mkdir()
    img.save(tmp_path / "c" / "p.png", exif=exif)
    data = load(str(tmp_path), test_fraction=0.0)
    assert data.input_size == (3, 6, 4)  # displayed upright: 6 rows, 4 columns
    np.testing.assert_array_equal(data.x_train[0].permute(1, 2, 0).numpy(), np.rot90(a, k=-1))


IDX_TYPE_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


@settings(max_examples=30, deadline=None)
@given(
    code=st.sampled_from(sorted(IDX_TYPE_CODES)),
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    gz=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_read_idx_any_type_and_rank(tmp_path_factory, code, shape, gz, seed):
    """The IDX definition: 0, 0, type code, rank, big-endian uint32 sizes, big-endian values."""
    a = (np.random.default_rng(seed).standard_normal(shape) * 100).astype(code)
    raw = bytes([0, 0, IDX_TYPE_CODES[code], len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    raw += a.astype(">" + code).tobytes()
    path = tmp_path_factory.mktemp("idx") / "f"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    out = read_idx(path)
    assert out.shape == tuple(shape) and out.dtype == np.dtype(code)
    np.testing.assert_array_equal(out, a)


def test_cifar_archive_is_decoded_once_while_it_is_unchanged(tmp_path, monkeypatch):
    import os

    def write(files, prefix):
        with tarfile.open(archive, "w:gz") as tar:
            for f, raw in files.items():
                info = tarfile.TarInfo(f"{prefix}/{f}")
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))

    archive = tmp_path / "cifar-10-python.tar.gz"
    prefix, batches, files = cifar_batches()
    write(files, prefix)
    first = load(str(archive))
    assert (tmp_path / "cifar-10-python.tar.gz.decoded.safetensors").is_file()

    def no_tar(*a, **k):
        raise AssertionError("the archive was decoded again")

    with monkeypatch.context() as m:
        m.setattr(tarfile, "open", no_tar)
        again = load(str(archive))  # from the cache
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(again, k), getattr(first, k))
    assert again.classes == first.classes and again.mean == first.mean
    # a new archive (other contents, other time stamp) is decoded afresh
    prefix, batches, files = cifar_batches(n_per_batch=4)
    write(files, prefix)
    os.utime(archive, ns=(1, 1))
    x_train, y_train, x_test, y_test = expected_cifar(batches, False)
    fresh = load(str(archive))
    np.testing.assert_array_equal(fresh.x_train.numpy(), x_train)
    np.testing.assert_array_equal(fresh.y_test.numpy(), y_test)
