"""The emulator as a separate process on a free loopback port, for end-to-end tests."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

import httpx


class EmulatorProcess:
    def __init__(self, *args: str, startup_timeout: float = 20.0) -> None:
        cmd = [sys.executable, "-m", "batchrun.emulator", "--port", "0", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + startup_timeout
        line = ""
        while time.monotonic() < deadline and not line:
            if sel.select(timeout=0.2):
                line = self.proc.stdout.readline()
            if self.proc.poll() is not None:
                break
        if "listening on" not in line:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"emulator did not start: {line!r} {err[-2000:]}")
        self.base_url = line.strip().rsplit(" ", 1)[-1]
        self.root_url = self.base_url.removesuffix("/api/v1")
        self._http = httpx.Client(base_url=self.root_url, timeout=30)

    def ledger(self) -> dict[str, Any]:
        return self._http.get("/_emulator/ledger").json()  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self._http.get("/_emulator/stats").json()  # type: ignore[no-any-return]

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        return self._http.post("/_emulator/faults", json=faults).json()  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._http.post("/_emulator/reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_http"):
            self._http.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
