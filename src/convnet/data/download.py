"""Checksum-verified, resumable, atomic downloads of the official data-set archives.

A file is fetched to ``NAME.part`` beside its target. An interrupted transfer keeps the
``.part`` file and the next attempt asks the server for the rest with an HTTP ``Range``
request (a server that ignores it sends the whole file again, and we start over). When the
bytes are all there, their MD5 is compared with the official checksum; only a file that
matches is renamed to ``NAME``. A mismatch deletes the ``.part`` file: nothing unverified is
ever left where a loader would read it. A lock on the folder keeps two processes from fetching
into it at once.

The base URL can be replaced (``base_url=``, or ``$CONVNET_DATA_MIRROR``) to fetch from a
mirror that serves the same file names.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import DataError
from .catalog import CATALOG, MIRROR_ENV, canonical, default_data_dir

CHUNK = 1 << 20  # bytes read per call; also how often the .part file grows


class UnreachableError(DataError):
    """No URL for a file could be reached (offline, refused, not found)."""


class _Dropped(Exception):
    """The connection ended before the file was complete (resumable)."""


class _Unreachable(Exception):
    """The server could not be reached at all (DNS, refused, 404): try the next mirror."""


def md5_of(path: str | os.PathLike) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # the official checksums are MD5: integrity only
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FetchedFile:
    """One file of a data set after :func:`fetch_files`: its MD5 was computed and matched."""

    path: Path
    size: int  # bytes
    md5: str  # the official checksum, which the file's bytes were checked against
    downloaded: bool  # False: the file was already there and matched


def fetch(
    name: str,
    root: str | Path | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
) -> Path:
    """Download a named data set's official files into ``root/NAME/`` and verify their checksums.

    Args:
        name: ``mnist``, ``fashion-mnist``, ``cifar10`` or ``cifar100``.
        root: the data folder (default ``$CONVNET_DATA`` or ``~/.cache/convnet/data``).
        base_url: fetch ``base_url/FILENAME`` instead of the official mirrors
            (default ``$CONVNET_DATA_MIRROR``, else the official URLs).
        retries: how many times a dropped connection is resumed before giving up.

    Returns the folder holding the files, each of which has been checked against its MD5 in
    this call (see :func:`fetch_files`).
    """
    files = fetch_files(
        name, root, base_url=base_url, progress=progress, retries=retries, timeout=timeout
    )
    return files[0].path.parent


def fetch_files(
    name: str,
    root: str | Path | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 30.0,
) -> list[FetchedFile]:
    """:func:`fetch`, saying what happened to each file.

    Every file is hashed: one already there with the official MD5 is kept (no request); one
    whose MD5 differs (a truncated copy, another file under the same name) is downloaded again
    to ``NAME.part``, verified, and only then renamed over the old one, so a failed download
    leaves the old file as it was and never a half-written one in its place.
    """
    key = canonical(name)
    if name == "mnist-sample":
        raise DataError("mnist-sample ships inside convnet: use it as is, nothing to download")
    if key is None:
        raise DataError(
            f"unknown data set {name!r} to download: choose one of {', '.join(CATALOG)}"
        )
    entry = CATALOG[key]
    folder = Path(root).expanduser() if root else default_data_dir()
    folder = folder / key
    base = base_url or os.environ.get(MIRROR_ENV)
    mirrors = (base,) if base else entry.mirrors
    done: list[FetchedFile] = []
    with _progress(progress) as bar:
        for remote in entry.files:
            target = folder / remote.filename
            urls = [f"{m.rstrip('/')}/{remote.filename}" for m in mirrors]
            try:
                downloaded = _ensure(
                    urls,
                    target,
                    md5=remote.md5,
                    size=remote.size,
                    retries=retries,
                    timeout=timeout,
                    bar=bar,
                    hint=f"convnet data get {key}",
                )
            except UnreachableError as e:
                others = [f.filename for f in entry.files if f is not remote]
                if not others:
                    raise
                raise UnreachableError(f"{e}; {', '.join(others)} go in the same folder") from None
            if not downloaded:
                _say(bar, f"{remote.filename}: already there, md5 verified")
            done.append(FetchedFile(target, target.stat().st_size, remote.md5, downloaded))
    return done


def download(
    urls: str | Sequence[str],
    target: str | Path,
    *,
    md5: str | None,
    size: int | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    retry_wait: float = 0.5,
    bar=None,
    hint: str | None = None,
) -> Path:
    """Fetch one file from the first reachable URL to ``target``, resuming and verifying it.

    ``md5=None`` skips verification (for files without a published checksum) and keeps a
    ``target`` already there; with ``md5``, a ``target`` already there is hashed and kept only
    if it matches, else replaced by a verified download. Raises
    DataError in one line when every URL is unreachable (saying where to put the file by hand),
    when the transfer keeps dropping (the ``.part`` file stays, to resume), or when the
    checksum does not match (nothing is kept).
    """
    _ensure(
        [urls] if isinstance(urls, str) else list(urls),
        Path(target),
        md5=md5,
        size=size,
        retries=retries,
        timeout=timeout,
        retry_wait=retry_wait,
        bar=bar,
        hint=hint,
    )
    return Path(target)


def _ensure(urls: list[str], target: Path, *, md5: str | None, bar, **kw) -> bool:
    """Make ``target`` hold the file (verified when ``md5`` is given); True if it was downloaded.

    Under the folder's lock, so a file another process finished meanwhile is found, hashed and
    kept. A file there whose MD5 differs is replaced by a verified download (renamed over it).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target, bar):
        stale = None
        if target.is_file():
            if md5 is None:  # nothing to check it against: what is there is taken
                return False
            stale = md5_of(target)
            if stale == md5:
                return False
            _say(bar, f"{target.name}: md5 {stale} is not the official {md5}; downloading again")
        elif target.exists():
            raise DataError(f"{target}: is not a file; move it away so the download can go there")
        try:
            _download(urls, target, md5, bar=bar, **kw)
        except DataError as e:
            if stale is None:
                raise
            note = f"; the {target.name} already there is not the official file (md5 {stale})"
            raise type(e)(f"{e}{note}") from None
        return True


@contextlib.contextmanager
def _exclusive(target: Path, bar):
    """Lock the target's folder while fetching, so two processes never write one ``.part`` file.

    A second ``convnet data get`` (or a training run that downloads) waits for the first and
    then finds the finished file. The lock is on the folder itself (``flock`` on its
    descriptor), so no lock file is left behind. Where ``fcntl`` is missing (Windows), or the
    folder cannot be locked, there is no lock.
    """
    try:
        import fcntl

        fd = os.open(target.parent, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"waiting for another process downloading into {target.parent}"
            _say(bar, message) if bar is not None else print(message, file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _download(
    urls, target, md5, *, size=None, retries=3, timeout=30.0, retry_wait=0.5, bar=None, hint=None
) -> Path:
    part = target.with_name(target.name + ".part")
    resumed = part.exists() and part.stat().st_size > 0
    args = (urls, part, target, md5, size, retries, timeout, retry_wait, bar, hint)
    url = _fetch_part(*args)
    if md5 is not None:
        got = md5_of(part)
        if got != md5 and resumed:
            # the old .part may hold another file's bytes or a bad earlier transfer: start over once
            part.unlink()
            url = _fetch_part(*args)
            got = md5_of(part)
        if got != md5:
            part.unlink()
            raise DataError(
                f"checksum mismatch for {target.name} from {url}: md5 {got}, expected {md5}; "
                "the file was corrupted in transit or the mirror serves a different file "
                "(nothing was kept)"
            )
    with open(part, "rb+") as f:  # make the bytes durable before the rename publishes them
        os.fsync(f.fileno())
    os.replace(part, target)
    with contextlib.suppress(OSError):
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return target


def _fetch_part(urls, part, target, md5, size, retries, timeout, retry_wait, bar, hint) -> str:
    """Complete ``part`` from the first reachable URL, resuming dropped transfers; return that URL."""
    reasons: list[str] = []
    for url in urls:
        attempt = 0
        while True:
            try:
                _transfer(url, part, size, timeout, bar, target.name)
                return url
            except _Unreachable as e:
                reasons.append(f"{url}: {e}")
                break
            except _Dropped as e:
                attempt += 1
                if attempt > retries:
                    have = part.stat().st_size if part.exists() else 0
                    raise DataError(
                        f"download of {url} interrupted at {have:,} bytes ({e}); "
                        f"run `{hint or 'the same download'}` again to resume from {part}"
                    ) from None
                time.sleep(retry_wait * 2 ** (attempt - 1))
    checksum = f" (md5 {md5})" if md5 else ""
    raise UnreachableError(
        f"cannot download {target.name}: {'; '.join(reasons)}. If this machine is offline, "
        f"fetch {urls[0]} elsewhere and put it at {target}{checksum}, or set {MIRROR_ENV}"
    )


def _transfer(url: str, part: Path, size: int | None, timeout: float, bar, label: str) -> None:
    """Append the rest of ``url`` to ``part``; raise _Dropped or _Unreachable on failure."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"convnet/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        )
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the .part file is complete
            return
        raise _Unreachable(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise _Unreachable(_describe(e.reason)) from None
    except (OSError, http.client.HTTPException) as e:
        raise (_Dropped if offset else _Unreachable)(_describe(e)) from None
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the Range header: start over
        elif offset:
            start = response.headers.get("Content-Range", "").split(" ")[-1].split("-")[0]
            if start != str(offset):
                raise _Dropped(f"server answered the range request with {start!r}")
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        total = offset + expected if expected is not None else size
        task = bar.add_task(label, total=total, completed=offset) if bar is not None else None
        received = 0
        try:
            with open(part, "ab" if offset else "wb") as f:
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    received += len(block)
                    if task is not None:
                        bar.update(task, advance=len(block))
        except (OSError, http.client.HTTPException) as e:
            raise _Dropped(_describe(e)) from None
        finally:
            if task is not None:
                bar.remove_task(task)
        # http.client returns b"" rather than raising when a connection closes early
        if expected is not None and received < expected:
            raise _Dropped(f"connection closed after {offset + received:,} of {total:,} bytes")


def _describe(reason: object) -> str:
    if isinstance(reason, socket.gaierror):
        return "host name not found (no network?)"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timed out"
    text = str(reason).strip() or type(reason).__name__
    return text.splitlines()[0]


def _say(bar, text: str) -> None:
    if bar is not None:
        bar.console.print(text)


@contextlib.contextmanager
def _progress(enabled: bool):
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    from rich.console import Console

    console = Console()
    # each finished file prints its own line; the live bar only where a terminal can redraw it
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as bar:
        yield bar
