"""A run folder belongs to one run.

- While a run trains it holds an advisory lock (``fcntl.flock``) on ``OUT/.lock``, a file that
  holds its pid. A second run into the same folder is refused in one line naming that pid. The
  kernel drops the lock when the process ends, however it ends (a SIGKILL leaves at most the
  small ``.lock`` file, which the next run takes over).
- A new run starts only in a new or empty folder. ``resume`` continues the run that is there;
  ``force`` first moves everything in it into ``OUT/replaced-YYYYmmdd-HHMMSS/``: the user's
  files are set aside, never deleted.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConvnetError

LOCK = ".lock"
ASIDE = "replaced-"  # prefix of the folders --force moves earlier files into


def held_files(out: str | os.PathLike) -> list[Path]:
    """What a folder holds for a run: every entry but the lock file and the folders earlier
    ``--force`` runs set aside (empty when the folder does not exist)."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted(
        p for p in out.iterdir() if p.name != LOCK and not (p.name.startswith(ASIDE) and p.is_dir())
    )


@contextmanager
def claim_run_folder(
    out: str | os.PathLike | None, *, resume: bool = False, force: bool = False
) -> Iterator[Path | None]:
    """Create ``out``, lock it for this process and make room for the run (see the module).

    ``out=None`` (a run that writes no files) claims nothing. Raises ConvnetError when another
    process holds the folder, or when a new run would mix its files with what is there.
    """
    if out is None:
        yield None
        return
    out = Path(out)
    created = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConvnetError(f"cannot create the run folder {out}: {e.strerror or e}") from None
    fd = _lock(out)
    failed = True
    try:
        if not resume:
            _make_room(out, force)
        yield out
        failed = False
    finally:
        _unlock(out, fd)
        if failed and created and not any(out.glob("*.pt")):
            # a run that failed before its first checkpoint, in a folder this call made, leaves
            # nothing behind: its config and empty logs hold nothing to resume from
            shutil.rmtree(out, ignore_errors=True)
            for folder in created[1:]:
                try:
                    folder.rmdir()  # only while empty
                except OSError:
                    break


def _lock(out: Path) -> int | None:
    """Open and flock ``out/.lock`` (retrying when its holder removed it meanwhile); write our
    pid into it. None where the file system has no locks."""
    import fcntl

    path = out / LOCK
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ConvnetError(f"cannot write in the run folder {out}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConvnetError(
                f"{out} is in use by another training run (pid {pid}); wait for it to end or "
                "choose another --out"
            ) from None
        except OSError as e:
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            os.close(fd)  # e.g. some network file systems: train without the lock
            return None
        try:  # the holder unlinks the file when it ends; a lock on that old file guards nothing
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _unlock(out: Path, fd: int | None) -> None:
    if fd is None:
        return
    try:
        os.unlink(out / LOCK)  # while still holding the lock, so nobody locks a stale file
    except OSError:
        pass
    os.close(fd)


def _make_room(out: Path, force: bool) -> None:
    """Refuse a new run in a folder that holds files, unless ``force``: then move them aside."""
    held = held_files(out)
    if not held:
        return
    if not force:
        names = ", ".join(p.name for p in held[:4]) + (", ..." if len(held) > 4 else "")
        raise ConvnetError(
            f"{out} already holds files ({names}); pass --resume to continue its run, --force to "
            f"move them aside into {out}/{ASIDE}..., or choose another --out"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = out / f"{ASIDE}{stamp}", 2
    while aside.exists():
        aside, n = out / f"{ASIDE}{stamp}-{n}", n + 1
    try:
        aside.mkdir()
        for p in held:
            p.rename(aside / p.name)
    except OSError as e:
        raise ConvnetError(
            f"--force: cannot move the files of {out} aside: {e.strerror or e}"
        ) from None
    warnings.warn(f"--force: moved {len(held)} earlier file(s) of {out} into {aside}", stacklevel=3)
