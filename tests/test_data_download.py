"""Downloads against a local HTTP server started here: good, corrupted, dropped mid-file, offline."""

import gzip
import hashlib
import http.server
import socket
import struct
import threading

import numpy as np
import pytest

from convnet.data import catalog, load
from convnet.data.download import download, fetch
from convnet.errors import DataError


class Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    drops: dict = {}  # path -> bytes to send before cutting the connection (once)
    honour_range = True
    log: list = []

    def log_message(self, *args):  # keep the test output quiet
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        type(self).log.append((self.path, rng))
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        if rng and self.honour_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.drops.pop(self.path, None)
        if cut is not None:
            self.wfile.write(body[start : start + cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    Handler.files, Handler.drops, Handler.log, Handler.honour_range = {}, {}, [], True
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield Handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


BLOB = np.random.default_rng(1).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()


def test_good_download_is_verified_and_atomic(server, tmp_path):
    h, url = server
    h.files["/blob.bin"] = BLOB
    out = download(f"{url}/blob.bin", tmp_path / "blob.bin", md5=md5(BLOB))
    assert out.read_bytes() == BLOB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin"]


def test_corrupted_download_leaves_nothing(server, tmp_path):
    h, url = server
    h.files["/blob.bin"] = BLOB[:-1] + b"\x00"
    with pytest.raises(DataError, match="checksum mismatch.*nothing was kept") as e:
        download(f"{url}/blob.bin", tmp_path / "blob.bin", md5=md5(BLOB))
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_dropped_connection_resumes_with_range(server, tmp_path):
    h, url = server
    h.files["/blob.bin"] = BLOB
    h.drops["/blob.bin"] = 1_234_567
    out = download(f"{url}/blob.bin", tmp_path / "blob.bin", md5=md5(BLOB), retry_wait=0)
    assert out.read_bytes() == BLOB
    assert h.log == [("/blob.bin", None), ("/blob.bin", "bytes=1234567-")]


def test_interrupted_download_resumes_on_the_next_run(server, tmp_path):
    h, url = server
    h.files["/blob.bin"] = BLOB
    h.drops["/blob.bin"] = 1_000_000
    with pytest.raises(DataError, match=r"interrupted at 1,000,000 bytes.*again to resume"):
        download(f"{url}/blob.bin", tmp_path / "blob.bin", md5=md5(BLOB), retries=0)
    part = tmp_path / "blob.bin.part"
    assert part.stat().st_size == 1_000_000 and not (tmp_path / "blob.bin").exists()
    download(f"{url}/blob.bin", tmp_path / "blob.bin", md5=md5(BLOB))
    assert (tmp_path / "blob.bin").read_bytes() == BLOB and not part.exists()
    assert h.log[-1] == ("/blob.bin", "bytes=1000000-")


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    h, url = server
    h.files["/blob.bin"] = BLOB
    h.honour_range = False
    (tmp_path / "blob.bin.part").write_bytes(b"stale bytes from another file")
    download(f"{url}/blob.bin", tmp_path / "blob.bin", md5=md5(BLOB))
    assert (tmp_path / "blob.bin").read_bytes() == BLOB


def test_offline_says_which_file_to_put_where(tmp_path):
    with socket.socket() as s:  # a port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as e:
        fetch("cifar10", tmp_path, base_url=f"http://127.0.0.1:{port}", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "connection refused" in msg
    assert str(tmp_path / "cifar10" / "cifar-10-python.tar.gz") in msg
    assert "c58f30108f718f92721af3b95e74349a" in msg


def idx_gz(a: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    return gzip.compress(head + a.tobytes())


def test_fetch_then_load_and_cli(server, tmp_path, monkeypatch, cli):
    h, url = server
    rng = np.random.default_rng(2)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 20, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 7, dtype=np.uint8),
    }
    blobs = {name: idx_gz(a) for name, a in arrays.items()}
    h.files.update({f"/mirror/{n}": b for n, b in blobs.items()})
    entry = catalog.Entry(
        "mnist",
        "MNIST",
        ("http://unused.invalid",),
        tuple(catalog.RemoteFile(n, md5(b), len(b)) for n, b in blobs.items()),
    )
    monkeypatch.setitem(catalog.CATALOG, "mnist", entry)
    monkeypatch.setenv("CONVNET_DATA_MIRROR", f"{url}/mirror")
    code, out, err = cli("data", "get", "mnist", "--dir", tmp_path)
    assert code == 0, err
    data = load("mnist", root=tmp_path)
    np.testing.assert_array_equal(data.x_test[:, 0].numpy(), arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(data.y_train.numpy(), arrays["train-labels-idx1-ubyte.gz"])
    n_requests = len(h.log)
    assert fetch("mnist", tmp_path, progress=False) == tmp_path / "mnist"  # verified, not refetched
    assert len(h.log) == n_requests
    code, out, err = cli("data", "get", "no-such-set")
    assert code == 2 and "unknown data set" in err


def test_stale_part_file_is_discarded_after_a_bad_resume(server, tmp_path):
    h, url = server
    h.files["/blob.bin"] = BLOB
    (tmp_path / "blob.bin.part").write_bytes(b"\x00" * 1000)  # wrong bytes, plausible length
    download(f"{url}/blob.bin", tmp_path / "blob.bin", md5=md5(BLOB))
    assert (tmp_path / "blob.bin").read_bytes() == BLOB
    assert h.log == [("/blob.bin", "bytes=1000-"), ("/blob.bin", None)]


def test_a_second_download_waits_for_the_first_and_uses_its_file(tmp_path):
    # another process holds the folder's lock: this download waits, then finds the file there
    # and never goes to the network (the URL would fail)
    import fcntl
    import os

    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    done = []

    def run():
        done.append(download("http://127.0.0.1:9/blob.bin", tmp_path / "blob.bin", md5=md5(BLOB)))

    t = threading.Thread(target=run)
    t.start()
    t.join(0.5)
    assert t.is_alive() and not done  # waiting on the lock
    (tmp_path / "blob.bin").write_bytes(BLOB)  # the "other process" finishes
    os.close(fd)
    t.join(10)
    assert done == [tmp_path / "blob.bin"]
