"""Serving the emulator under uvicorn: in the foreground, or in a thread for in-process tests."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
from types import TracebackType
from typing import Any

import uvicorn

from .app import CutConnection, build_app
from .config import EmulatorConfig
from .state import Store


class _QuietCuts(logging.Filter):
    """Cut connections are the point of a fault, not an error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, CutConnection)


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _server(app: Any) -> uvicorn.Server:
    logging.getLogger("uvicorn.error").addFilter(_QuietCuts())
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_keep_alive=30)  # fmt: skip
    return uvicorn.Server(config)


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve until SIGINT/SIGTERM. Prints one line with the address once it accepts."""
    sock = _bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"FLORA emulator listening on http://{shown}:{actual}/api/v1", flush=True)
    server = _server(build_app(config))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    sys.stdout.flush()


class EmulatorThread:
    """The emulator on a free loopback port in a background thread (``with`` it)."""

    def __init__(self, config: EmulatorConfig | None = None, store: Store | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.store = store or Store(self.config)
        self._sock = _bind("127.0.0.1", 0)
        self.port = self._sock.getsockname()[1]
        self.root_url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.root_url + "/api/v1"
        self._server = _server(build_app(self.config, self.store))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
