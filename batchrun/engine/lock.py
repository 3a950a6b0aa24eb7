"""One process per batch: an exclusive flock on a file in the state directory.

The kernel drops a flock when its holder dies, however it dies, so a lock left by a killed
process is simply free again: there is nothing stale to clean up.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import LockedError


def lock_path(state_dir: Path, batch: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", batch)
    return state_dir / "locks" / f"{safe}.lock"


class BatchLock:
    def __init__(self, state_dir: Path, batch: str) -> None:
        self.batch = batch
        self.path = lock_path(state_dir, batch)
        self._fd: int | None = None

    def acquire(self) -> None:
        # The state directory first, so it is private however it comes to exist.
        self.path.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.parent.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not _flock(fd, fcntl.LOCK_EX, tries=_TRIES):
            who = _describe(fd)
            os.close(fd)
            raise LockedError(
                f"batch '{self.batch}' is already running ({who}); wait for it to finish, "
                f"or stop that process (lock file {self.path})"
            ) from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.write(fd, json.dumps(info).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> BatchLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


# A `status` that looks at the lock holds it, shared, for microseconds: a `run` starting just
# then tries again for a moment rather than calling the batch taken.
_TRIES = 20
_PAUSE = 0.01


def _flock(fd: int, mode: int, tries: int = 1) -> bool:
    for n in range(tries):
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if n + 1 < tries:
                time.sleep(_PAUSE)
    return False


def holder(state_dir: Path, batch: str) -> dict[str, Any] | None:
    """Who runs the batch now (pid, host, since), or None when no live process holds its lock.
    Looking changes nothing: a shared lock is taken for a moment only when no one holds it."""
    try:
        fd = os.open(lock_path(state_dir, batch), os.O_RDONLY)
    except OSError:
        return None  # never run here, or not ours to read
    try:
        if _flock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return _info(fd) or {}
    finally:
        os.close(fd)


def _info(fd: int) -> dict[str, Any] | None:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (ValueError, OSError):
        return None
    return info if isinstance(info, dict) else None


def _describe(fd: int) -> str:
    try:
        info = _info(fd) or {}
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {info['pid']} on {info['host']} since {since}"
    except (ValueError, KeyError, TypeError):
        return "held by another process"
