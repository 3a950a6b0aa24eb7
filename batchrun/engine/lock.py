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
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(fd)
            os.close(fd)
            raise LockedError(
                f"batch '{self.batch}' is already running ({holder}); wait for it to finish, "
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


def _describe(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {info['pid']} on {info['host']} since {since}"
    except (ValueError, KeyError, TypeError, OSError):
        return "held by another process"
