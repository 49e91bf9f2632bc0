"""Safe writes under a home: atomic file replacement, and the single-writer lock.

A file (or a folder of files) is written under a temporary name beside its target, then renamed over it, so a
crash never leaves a half-written index, model or checkpoint. Every job that changes a home (ingest, index,
objects, delete, migrations) holds the home's write lock, an `fcntl.flock` that the OS releases when the
process dies, so a SIGKILLed writer never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from viscover.errors import WriteLockTimeoutError

LOCK_FILE = "write.lock"
_POLL_S = 0.05


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_folder(folder: Path, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh folder to fill; on success it becomes `folder` whole (replacing one there, if `replace`: only
    between two renames is there none), on failure it is removed. Of two processes' at once, one is kept."""
    partial = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.partial")
    partial.mkdir(parents=True)
    old = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.old")
    try:
        yield partial
        if replace:
            with suppress(FileNotFoundError):  # none there, or another process moved it first
                folder.rename(old)
        try:
            partial.rename(folder)
        except OSError:  # another process put its folder there first
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class _Holder:
    """This process's hold on one lock file: threads queue on `thread_lock`; the first level takes the flock."""

    thread_lock: threading.RLock = field(default_factory=threading.RLock)
    fd: int = -1
    depth: int = 0


_holders: dict[Path, _Holder] = {}
_holders_lock = threading.Lock()


@contextmanager
def write_lock(home: Path, timeout_s: float) -> Iterator[None]:
    """Hold the home's write lock; re-entrant within a thread, exclusive across threads and processes.

    Waits up to `timeout_s` for another writer, then raises WriteLockTimeoutError naming the holder."""
    path = (Path(home) / LOCK_FILE).resolve()
    with _holders_lock:
        holder = _holders.setdefault(path, _Holder())
    deadline = time.monotonic() + timeout_s
    if not holder.thread_lock.acquire(timeout=max(timeout_s, 0)):
        raise WriteLockTimeoutError(
            f"{path.parent} is being written by another thread of this process (pid {os.getpid()}); "
            f"waited {timeout_s:g} s (VISCOVER_WRITE_LOCK_TIMEOUT_S)"
        )
    try:
        if holder.depth == 0:
            holder.fd = _flock(path, deadline, timeout_s)
        holder.depth += 1
        try:
            yield
        finally:
            holder.depth -= 1
            if holder.depth == 0:
                fcntl.flock(holder.fd, fcntl.LOCK_UN)
                os.close(holder.fd)
                holder.fd = -1
    finally:
        holder.thread_lock.release()


def _flock(path: Path, deadline: float, timeout_s: float) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise WriteLockTimeoutError(
                    f"{path.parent} is being written by another process ({holder}); waited {timeout_s:g} s "
                    "(VISCOVER_WRITE_LOCK_TIMEOUT_S); try again when it has finished"
                ) from None
            time.sleep(_POLL_S)
    os.ftruncate(fd, 0)
    command = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv[:3]))
    os.pwrite(fd, f"pid {os.getpid()}: {command}".encode(), 0)
    return fd
