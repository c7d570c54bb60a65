"""Data files are claims, not facts: a crafted IDX, CIFAR pickle or .npz is a one-line DataError
in bounded memory, and `convnet data get` verifies every file it calls verified.

The crafted files are written here byte by byte from each format's definition (IDX: 0, 0, type,
rank, big-endian int32 sizes; .npy: magic, header dict, raw values; pickle: opcodes). Each is
loaded in one child process whose address space is capped at its size after import + 512 MiB
(``RLIMIT_AS``): the unchecked readers asked for 1 GiB to 2**64 bytes on these files, so an
allocation by the declared size fails there as MemoryError and the case reads "crash".
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import math
import pickle
import socket
import struct
import subprocess
import sys
import tarfile
import textwrap
import threading
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.data import catalog, fetch_files, load
from convnet.data.cifar import _unpickle
from convnet.data.folder import CorruptImageWarning, load_image_folder
from convnet.data.mnist import read_idx
from convnet.errors import ConfigError, DataError
from convnet.train.loader import Augment, Loader

# ---------------------------------------------------------------- building crafted files


def idx(type_code: int, shape: tuple[int, ...], data: bytes) -> bytes:
    """An IDX file: 0, 0, type code, rank, the sizes as big-endian *signed* int32, then data."""
    return bytes([0, 0, type_code, len(shape)]) + struct.pack(f">{len(shape)}i", *shape) + data


def mnist_folder(folder, **override: bytes):
    """Four valid tiny IDX files (4 train, 2 test 2x2 images), any of them replaced by bytes."""
    folder.mkdir(parents=True)
    files = {
        "train-images-idx3-ubyte": idx(8, (4, 2, 2), bytes(16)),
        "train-labels-idx1-ubyte": idx(8, (4,), bytes([0, 1, 2, 3])),
        "t10k-images-idx3-ubyte": idx(8, (2, 2, 2), bytes(8)),
        "t10k-labels-idx1-ubyte": idx(8, (2,), bytes([1, 0])),
    }
    for name in override:  # a .gz given replaces the raw file (the loader prefers raw)
        files.pop(name.removesuffix(".gz"), None)
    for name, raw in {**files, **override}.items():
        (folder / name).write_bytes(raw)
    return folder


def npy(shape: tuple[int, ...], descr: str, data: bytes) -> bytes:
    """A .npy (format 1.0): magic, header length, the header dict padded to 64 bytes, data."""
    header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data


def npz(path, members: dict[str, bytes], compress: bool = False):
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as z:
        for name, raw in members.items():
            z.writestr(f"{name}.npy", raw)
    return path


def good_npz_members() -> dict[str, bytes]:
    return {
        "x_train": npy((2, 2, 2), "|u1", bytes(8)),
        "y_train": npy((2,), "<i8", struct.pack("<2q", 0, 1)),
        "x_test": npy((1, 2, 2), "|u1", bytes(4)),
        "y_test": npy((1,), "<i8", struct.pack("<q", 1)),
    }


def cifar_folder(folder, batch: bytes | None = None, meta: bytes | None = None):
    """A CIFAR-10 folder of 2-image batches; ``batch`` replaces data_batch_1, ``meta`` the meta."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    good = {
        b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
        b"labels": [0, 1],
    }
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(good, protocol=2))
    names = {b"label_names": [f"k{i}".encode() for i in range(10)]}
    (folder / "batches.meta").write_bytes(meta or pickle.dumps(names, protocol=2))
    if batch is not None:
        (folder / "data_batch_1").write_bytes(batch)
    return folder


# pickle opcodes spelled out (protocol 2), so the crafted batches read as what they do
PROTO, STOP, MARK, TUPLE1, TUPLE3, REDUCE, BUILD, SETITEM = (
    b"\x80\x02", b".", b"(", b"\x85", b"\x87", b"R", b"b", b"s"
)  # fmt: skip
EMPTY_DICT, TUPLE, NONE, FALSE = b"}", b"t", b"N", b"\x89"


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def int4(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def batch_with_data(value: bytes) -> bytes:
    """{'data': <value>, 'labels': ...} with ``value`` the opcodes of the data entry."""
    return PROTO + EMPTY_DICT + text("data") + value + SETITEM + STOP


def numpy_array(shape: tuple[int, ...], dtype: str, raw: bytes) -> bytes:
    """An array the way numpy pickles it: _reconstruct(ndarray, (0,), b'b'), then BUILD with
    (1, shape, dtype, False, raw) -- but with any shape and raw bytes the caller likes."""
    placeholder = glob("numpy._core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
    placeholder += int4(0) + TUPLE1 + glob("_codecs", "encode") + text("b") + text("latin1")
    placeholder += b"\x86" + REDUCE + TUPLE3 + REDUCE
    dt = glob("numpy", "dtype") + text(dtype) + FALSE + b"\x88" + TUPLE3 + REDUCE
    state = MARK + int4(1) + MARK + b"".join(int4(d) for d in shape) + TUPLE + dt + FALSE
    state += glob("_codecs", "encode") + text(raw.decode("latin1")) + text("latin1") + b"\x86"
    state += REDUCE + TUPLE
    return placeholder + state + BUILD


def hex_chain(depth: int) -> bytes:
    """_codecs.encode(... _codecs.encode(b'abcd', 'hex') ..., 'hex'): doubling ``depth`` times."""
    expr = glob("_codecs", "encode") + text("abcd") + text("latin1") + b"\x86" + REDUCE
    for _ in range(depth):
        expr = glob("_codecs", "encode") + expr + text("hex") + b"\x86" + REDUCE
    return expr


def tar_gz(path, members: dict[str, tuple[int, bytes]]):
    """A tar.gz whose members *claim* the given sizes but hold the given bytes."""
    buf = io.BytesIO()
    for name, (size, raw) in members.items():
        info = tarfile.TarInfo(name)
        info.size = size
        buf.write(info.tobuf(format=tarfile.USTAR_FORMAT))
        buf.write(raw + bytes(-len(raw) % 512))
    buf.write(bytes(1024))
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


# ---------------------------------------------------------------- the crafted corpus


def crafted(root) -> dict[str, tuple[str, str]]:
    """name -> (path to load, a fragment the one-line error must hold)."""
    cases: dict[str, tuple[str, str]] = {}

    def add(name, path, fragment):
        cases[name] = (str(path), fragment)

    # the 408-byte label file: 100 int32 labels, one of them 2**31 - 1 (as many classes)
    labels = struct.pack(">100i", *([0] * 99 + [2**31 - 1]))
    label_file = idx(0x0C, (100,), labels)
    assert len(label_file) == 408
    add(
        "idx_label_2e31",
        mnist_folder(
            root / "idx_label_2e31",
            **{
                "train-images-idx3-ubyte": idx(8, (100, 1, 1), bytes(100)),
                "train-labels-idx1-ubyte": label_file,
            },
        ),
        "labels span [0, 2147483647]",
    )
    add(
        "idx_negative",
        mnist_folder(
            root / "idx_negative", **{"train-images-idx3-ubyte": idx(8, (-4, 2, -2), bytes(16))}
        ),
        "negative size",
    )
    # 2**16 to the 4th is 2**64: numpy's int64 product wraps to 0, matching 0 data bytes
    add(
        "idx_wrapping",
        mnist_folder(
            root / "idx_wrapping", **{"train-images-idx3-ubyte": idx(8, (65536,) * 4, b"")}
        ),
        "more than the 4 GiB",
    )
    # a hand-made 400-byte file claiming MNIST's 60,000 28x28 images
    add(
        "idx_400_bytes",
        mnist_folder(
            root / "idx_400", **{"train-images-idx3-ubyte": idx(8, (60000, 28, 28), bytes(384))}
        ),
        "truncated or corrupt",
    )
    # gzip: 1 GiB declared, a few dozen bytes of stream; deflate cannot expand that far
    add(
        "idx_gzip_claims_1gib",
        mnist_folder(
            root / "idx_gz",
            **{"train-images-idx3-ubyte.gz": gzip.compress(idx(8, (1024, 1024, 1024), bytes(64)))},
        ),
        "expands to at most",
    )
    add(
        "npz_empty",
        (root / "empty.npz").write_bytes(b"") or root / "empty.npz",
        "cannot read the .npz",
    )
    huge_label = good_npz_members() | {"y_train": npy((2,), "<i8", struct.pack("<2q", 0, 10**12))}
    add("npz_label_1e12", npz(root / "label.npz", huge_label), "labels span [0, 1000000000000]")
    big_header = good_npz_members() | {"x_train": npy((10**12, 2, 2), "|u1", bytes(8))}
    add("npz_header_1e12", npz(root / "header.npz", big_header), "more than the 4 GiB")
    short = good_npz_members() | {"x_test": npy((1000, 2, 2), "|u1", bytes(4))}
    add("npz_header_short", npz(root / "short.npz", short), "the header declares")
    float_labels = good_npz_members() | {"y_test": npy((1,), "<f8", struct.pack("<d", 0.5))}
    add("npz_float_labels", npz(root / "float.npz", float_labels), "whole numbers")
    objects = good_npz_members() | {"x_test": npy((1,), "|O", b"\x80\x02N.")}
    add("npz_objects", npz(root / "objects.npz", objects), "Python objects")
    # 1 GiB of zeros declared by a deflated member of a few bytes
    zipped = npz(root / "zipbomb.npz", good_npz_members(), compress=True)
    with zipfile.ZipFile(zipped, "a", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("classes.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, npy((1,), "|S8", b"cls"))
    bomb = _claim_size(zipped, zipped.read_bytes(), "classes.npy", 1 << 30)
    add("npz_deflate_claims_1gib", bomb, "more than its data can hold")

    def cifar(name, fragment, batch=None, meta=None):
        add(name, cifar_folder(root / name, batch, meta), fragment)

    cifar("cifar_reconstruct_1gib", "refusing to allocate", batch_with_data(
        glob("numpy._core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + int4(1 << 30)
        + TUPLE1 + text("b") + TUPLE3 + REDUCE
    ))  # fmt: skip
    cifar("cifar_ndarray_called", "not callable", batch_with_data(
        glob("numpy", "ndarray") + int4(1 << 30) + TUPLE1 + TUPLE1 + REDUCE
    ))  # fmt: skip
    cifar("cifar_state_shape_1e9", "needs 1,000,000,000 bytes", batch_with_data(
        numpy_array((1_000_000_000,), "u1", b"abc")
    ))  # fmt: skip
    cifar("cifar_state_2e64", "over the size cap", batch_with_data(
        numpy_array((65536, 65536, 65536, 65536), "u1", b"")
    ))  # fmt: skip
    cifar("cifar_object_dtype", "refusing the numpy type", batch_with_data(
        numpy_array((1,), "O", b"")
    ))  # fmt: skip
    cifar("cifar_hex_chain", "refusing _codecs.encode", batch_with_data(hex_chain(40)))
    cifar("cifar_binbytes8_1tib", "declares more data than the file holds", PROTO + b"\x8e"
          + struct.pack("<Q", 1 << 40) + b"abc" + STOP)  # fmt: skip
    meta = {b"label_names": 7}
    cifar("cifar_meta_int", "list of 1 to", meta=pickle.dumps(meta, protocol=2))
    meta = {b"label_names": [1, 2, 3]}
    cifar("cifar_meta_numbers", "list of 1 to", meta=pickle.dumps(meta, protocol=2))
    cifar("cifar_meta_list", "holds a list", meta=pickle.dumps([b"a"], protocol=2))
    bad = {b"data": np.zeros((2, 3072), np.uint8), b"labels": ["cat", "dog"]}
    cifar("cifar_labels_text", "list of whole numbers", batch=pickle.dumps(bad, protocol=2))
    bad = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10**12]}
    cifar("cifar_label_1e12", "labels span [0, 1000000000000]", batch=pickle.dumps(bad, protocol=2))
    bad = {b"data": [[0] * 3072] * 2, b"labels": [0, 1]}
    cifar("cifar_data_list", "uint8 (N, 3072) array", batch=pickle.dumps(bad, protocol=2))
    # an archive whose meta member claims 5 GiB
    add(
        "cifar_tar_member_5gib",
        tar_gz(
            root / "cifar-10-python.tar.gz", {"cifar-10-batches-py/batches.meta": (5 << 30, b"x")}
        ),
        "one data file may hold",
    )
    return cases


def _claim_size(path, raw: bytes, member: str, size: int):
    """Rewrite the uncompressed size a zip records for ``member``: bytes 22..26 of its local
    header (name at +30) and 24..28 of its central-directory entry (name at +46)."""
    data, name = bytearray(raw), member.encode()
    for signature, field, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(signature)
        while at >= 0:
            if data[at + name_at : at + name_at + len(name)] == name:
                data[at + field : at + field + 4] = struct.pack("<I", size)
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    return path


CHILD = textwrap.dedent(
    """
    import json, re, resource, sys
    import torch
    torch.set_num_threads(1)
    from convnet.data import load
    from convnet.errors import ConvnetError
    load("mnist-sample")  # warm up every lazy import before the cap
    size = int(re.search(r"VmSize:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
    cap = size * 1024 + (512 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            load(path)
            out[name] = ["loaded", ""]
        except ConvnetError as e:
            out[name] = [type(e).__name__, str(e)]
        except BaseException as e:
            out[name] = ["crash: " + type(e).__name__, str(e)[:300]]
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    cases = crafted(tmp_path_factory.mktemp("crafted"))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps({k: p for k, (p, _) in cases.items()})],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: (results[k], fragment) for k, (_, fragment) in cases.items()}


CASES = [
    "idx_label_2e31",
    "idx_negative",
    "idx_wrapping",
    "idx_400_bytes",
    "idx_gzip_claims_1gib",
    "npz_empty",
    "npz_label_1e12",
    "npz_header_1e12",
    "npz_header_short",
    "npz_float_labels",
    "npz_objects",
    "npz_deflate_claims_1gib",
    "cifar_reconstruct_1gib",
    "cifar_ndarray_called",
    "cifar_state_shape_1e9",
    "cifar_state_2e64",
    "cifar_object_dtype",
    "cifar_hex_chain",
    "cifar_binbytes8_1tib",
    "cifar_meta_int",
    "cifar_meta_numbers",
    "cifar_meta_list",
    "cifar_labels_text",
    "cifar_label_1e12",
    "cifar_data_list",
    "cifar_tar_member_5gib",
]


@pytest.mark.parametrize("case", CASES)
def test_crafted_file_is_a_one_line_error_in_bounded_memory(corpus, case):
    (kind, message), fragment = corpus[case]
    assert kind == "DataError", f"{case}: {kind}: {message}"
    assert "\n" not in message and fragment in message, message


def test_every_crafted_case_is_checked(tmp_path):
    assert sorted(crafted(tmp_path)) == sorted(CASES)


# ---------------------------------------------------------------- properties of the parsers

IDX_SIZES = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


@settings(max_examples=60, deadline=None)
@given(
    code=st.sampled_from(sorted(IDX_SIZES)),
    shape=st.lists(st.integers(-(2**31), 2**31 - 1) | st.integers(0, 6), max_size=4),
    extra=st.integers(-3, 3),
    gz=st.booleans(),
)
def test_read_idx_returns_what_the_header_says_or_one_line_error(
    tmp_path_factory, code, shape, extra, gz
):
    """Any header: either the array it declares, built from exactly the bytes present, or a
    DataError; the data bytes present are the declared count + ``extra`` (capped small)."""
    declared = math.prod(shape) * IDX_SIZES[code] if all(d >= 0 for d in shape) else -1
    n = max(0, min(declared, 64) + extra) if declared >= 0 else 8
    raw = idx(code, tuple(shape), bytes(range(256))[:n] if n <= 256 else bytes(n))
    path = tmp_path_factory.mktemp("idx") / "f"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    try:
        out = read_idx(path)
    except DataError as e:
        assert "\n" not in str(e) and str(path) in str(e)
        return
    assert out.shape == tuple(shape) and n == declared and out.nbytes == declared


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_damaged_cifar_pickle_is_a_dict_or_one_line_error(data):
    """A valid batch pickle with bytes overwritten: the safe unpickler returns a dict or raises
    DataError, whatever the damage (lengths, opcodes, shapes)."""
    good = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, protocol=2)
    raw = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    try:
        out = _unpickle(bytes(raw), "batch")
    except DataError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(out, dict)


def test_cli_data_info_on_crafted_files_exits_2_in_one_line(tmp_path, cli):
    label_file = idx(0x0C, (100,), struct.pack(">100i", *([0] * 99 + [2**31 - 1])))
    images = idx(8, (100, 1, 1), bytes(100))
    folder = mnist_folder(
        tmp_path / "m",
        **{"train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": label_file},
    )
    (tmp_path / "empty.npz").write_bytes(b"")
    for spec in (folder, tmp_path / "empty.npz"):
        code, out, err = cli("data", "info", spec)
        assert code == 2 and out == "", err
        assert err.count("\n") == 1 and err.startswith("convnet data: error: "), err


def test_cifar_archive_keeps_the_name_it_is_given(tmp_path):
    # the archive reader's loop variable once shadowed ``name``: the data set was named after
    # the archive's last member
    archive = tmp_path / "cifar-10-python.tar.gz"
    folder = cifar_folder(tmp_path / "cifar-10-batches-py")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    assert load(str(archive)).name == str(archive)


# ---------------------------------------------------------------- `convnet data get` verifies


class Server(http.server.BaseHTTPRequestHandler):
    """Serves ``files``; logs each request; ``drop`` cuts a path's body after N bytes once."""

    files: dict[str, bytes] = {}
    drop: dict[str, int] = {}
    log: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).log.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = self.drop.pop(self.path, None)
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True


@pytest.fixture
def mirror(monkeypatch):
    """A local mirror of four 'MNIST' files (random bytes) and a catalog entry with their MD5s,
    computed here with hashlib."""
    rng = np.random.default_rng(3)
    blobs = {
        name: rng.integers(0, 256, 5000 + 100 * i, dtype=np.uint8).tobytes()
        for i, name in enumerate(
            ("train-images.gz", "train-labels.gz", "t10k-images.gz", "t10k-labels.gz")
        )
    }
    Server.files = {f"/m/{n}": b for n, b in blobs.items()}
    Server.drop, Server.log = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    md5 = {n: hashlib.md5(b).hexdigest() for n, b in blobs.items()}
    entry = catalog.Entry(
        "mnist",
        "MNIST",
        ("http://unused.invalid",),
        tuple(catalog.RemoteFile(n, md5[n], len(b)) for n, b in blobs.items()),
    )
    monkeypatch.setitem(catalog.CATALOG, "mnist", entry)
    monkeypatch.setenv("CONVNET_DATA_MIRROR", f"http://127.0.0.1:{httpd.server_address[1]}/m")
    yield blobs
    httpd.shutdown()
    httpd.server_close()


def test_data_get_replaces_junk_files_it_would_have_called_verified(mirror, tmp_path, cli):
    """The issue's case: four junk files already in the folder. Before, `data get` made no
    request, replaced nothing and printed 'md5 verified' (exit 0)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in mirror:
        (folder / name).write_bytes(b"junk")
    code, out, err = cli("data", "get", "mnist", "--dir", tmp_path, "--no-progress")
    assert code == 0, err
    assert sorted(Server.log) == sorted(f"/m/{n}" for n in mirror)
    for name, blob in mirror.items():
        assert (folder / name).read_bytes() == blob
    assert sorted(p.name for p in folder.iterdir()) == sorted(mirror)  # no .part left
    assert "md5 verified (4 downloaded, 0 already there)" in out


def test_data_get_keeps_verified_files_and_fetches_only_the_bad_ones(mirror, tmp_path, cli):
    folder = tmp_path / "mnist"
    folder.mkdir()
    names = list(mirror)
    (folder / names[0]).write_bytes(mirror[names[0]])
    (folder / names[1]).write_bytes(mirror[names[1]][:-1])  # truncated copy
    code, out, err = cli("data", "get", "mnist", "--dir", tmp_path, "--no-progress")
    assert code == 0, err
    assert sorted(Server.log) == sorted(f"/m/{n}" for n in names[1:])
    assert all((folder / n).read_bytes() == b for n, b in mirror.items())
    assert "(3 downloaded, 1 already there)" in out
    code, out, err = cli("data", "get", "mnist", "--dir", tmp_path, "--no-progress")
    assert code == 0 and "(0 downloaded, 4 already there)" in out
    assert len(Server.log) == 3  # verified by hashing, not refetched


@pytest.mark.parametrize("fault", ["corrupt", "offline", "dropped"])
def test_a_failed_replacement_leaves_the_old_file_and_nothing_half_written(
    mirror, tmp_path, cli, fault
):
    folder = tmp_path / "mnist"
    folder.mkdir()
    first = next(iter(mirror))
    (folder / first).write_bytes(b"junk")
    if fault == "corrupt":
        Server.files[f"/m/{first}"] = mirror[first][:-1] + b"\x00"
    elif fault == "offline":
        del Server.files[f"/m/{first}"]
    else:
        Server.drop[f"/m/{first}"] = 1000
    fetch_kw = {"retries": 0} if fault == "dropped" else {}
    with pytest.raises(DataError) as e:
        fetch_files("mnist", tmp_path, progress=False, **fetch_kw)
    message = str(e.value)
    assert "\n" not in message and f"the {first} already there is not the official file" in message
    assert (folder / first).read_bytes() == b"junk"  # the user's file is left as it was
    left = sorted(p.name for p in folder.iterdir())
    # only a dropped transfer keeps its .part, to resume from; a bad one is deleted
    assert left == ([first, f"{first}.part"] if fault == "dropped" else [first])
    if fault == "dropped":
        assert fetch_files("mnist", tmp_path, progress=False)[0].downloaded
        assert (folder / first).read_bytes() == mirror[first]
        assert not (folder / f"{first}.part").exists()


# ---------------------------------------------------------------- data options have ranges


def test_image_size_is_capped_with_its_reason(tmp_path, cli):
    code, out, err = cli("data", "info", "--image-size", "100000")
    assert code == 2 and err.count("\n") == 1 and "each side must be 1..4096" in err, err
    code, out, err = cli("data", "info", "--image-size", "224x0")
    assert code == 2 and err.count("\n") == 1, err
    code, out, err = cli("train", "lenet5", "--image-size", "5000", "-o", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "each side must be 1..4096" in err, err
    assert not (tmp_path / "run").exists()
    for bad in (5000, 0, (224, 160, 3), 224.5, True):
        with pytest.raises(DataError, match=r"image_size .*each 1\.\.4096"):
            load_image_folder(tmp_path, image_size=bad)


def image_tree(root, n: int, side: int = 1):
    from PIL import Image

    for i in range(n):
        path = root / ("a" if i % 2 else "b") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((side, side, 3), i, np.uint8)).save(path)
    return root


def test_image_folder_refuses_before_decoding_what_would_not_fit(tmp_path, monkeypatch):
    root = image_tree(tmp_path / "t", 90)
    decoded = []
    monkeypatch.setattr("convnet.data.folder._decode_all", lambda *a: decoded.append(a))
    # 90 images x 3 x 4096 x 4096 bytes = 4.2 GiB, over the 4 GiB cap: refused undecoded
    with pytest.raises(DataError, match="the decoded images would take 4.22 GiB"):
        load(str(root), image_size=4096)
    assert decoded == []
    with pytest.raises(DataError, match=r"seed must be a whole number in \[0, 2\*\*63\)"):
        load(str(root), seed=10**23)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_an_image_over_pils_pixel_limit_is_skipped_from_its_header(tmp_path, monkeypatch):
    from PIL import Image

    root = image_tree(tmp_path / "t", 4, side=2)
    image_tree(tmp_path / "t" / "a", 1, side=8)  # one 8x8 = 64-pixel image among 2x2 ones
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40)  # PIL itself only warns below 80
    with pytest.warns(CorruptImageWarning, match="8x8 pixels, more than 40"):
        data = load(str(root), test_fraction=0.0)
    assert data.x_train.shape == (4, 3, 2, 2)


def test_crop_padding_must_leave_image_in_every_crop():
    x, y = torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64)
    kw = dict(batch_size=2, input_size=(1, 8, 8), mean=(0.5,), std=(0.25,), train=True)
    assert len(Loader(x, y, augment=Augment(crop_padding=7), **kw)) == 2
    with pytest.raises(ConfigError, match=r"crop_padding=8: must be < 8, the side of the 8x8"):
        Loader(x, y, augment=Augment(crop_padding=8), **kw)
    # evaluation does not crop: the same padding there is not an error
    Loader(x, y, augment=Augment(crop_padding=8), **{**kw, "train": False})


def test_train_cli_crop_padding_5000_is_one_line_before_training(tmp_path, cli):
    out = tmp_path / "run"
    code, _, err = cli("train", "lenet5", "--crop-padding", "5000", "--epochs", "1", "-o", out)
    assert code == 2 and err.count("\n") == 1 and "crop_padding=5000: must be < 32" in err, err


def test_python2_pickled_batch_still_loads():
    """The official batches were pickled by Python 2: the array's bytes are a str (BINSTRING),
    read back as latin-1 text; the checked unpickler must still rebuild them exactly."""

    def short(b: bytes) -> bytes:  # SHORT_BINSTRING
        return b"U" + bytes([len(b)]) + b

    raw = np.arange(2 * 3072, dtype=np.uint8).tobytes()
    dtype = glob("numpy", "dtype") + short(b"u1") + b"K\x00K\x01" + TUPLE3 + REDUCE
    dtype += MARK + b"K\x03" + short(b"|") + b"NNN" + int4(-1) + int4(-1) + b"K\x00" + TUPLE + BUILD
    array = glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
    array += b"K\x00" + TUPLE1 + short(b"b") + TUPLE3 + REDUCE
    array += MARK + b"K\x01K\x02M\x00\x0c\x86" + dtype + FALSE
    array += b"T" + struct.pack("<i", len(raw)) + raw + TUPLE + BUILD
    labels = b"](K\x01K\x02e"
    batch = PROTO + EMPTY_DICT + MARK + short(b"data") + array + short(b"labels") + labels
    out = _unpickle(batch + b"u" + STOP, "py2")
    np.testing.assert_array_equal(np.asarray(out["data"]).ravel(), np.frombuffer(raw, np.uint8))
    assert out["data"].shape == (2, 3072) and out["labels"] == [1, 2]
