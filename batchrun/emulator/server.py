"""Serving the emulator: in the foreground until a signal, or in a thread for in-process tests."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from types import FrameType, TracebackType
from typing import Any, NoReturn

import uvicorn

from .app import EmulatorApp
from .asgi import QuietCuts
from .config import EmulatorConfig
from .panel import ControlPanel
from .state import Clock, Store


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound before serving so that port 0 tells its real port at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The explicit protocol matters: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, and without it every answer (headers, then body) waits ~40 ms on a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket, config: EmulatorConfig) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{config.base_path}"


def make_server(app: Any) -> uvicorn.Server:
    logging.getLogger("uvicorn.error").addFilter(QuietCuts())
    config = uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="off",
        access_log=False,  # a log line per request would cost more than the request
        log_level="warning",
        # Longer than a client's poll interval, so an idle connection is rarely closed just as
        # the client reuses it: that race would look like a dropped connection nobody injected.
        timeout_keep_alive=75,
        timeout_graceful_shutdown=3,
        backlog=2048,
    )
    return uvicorn.Server(config)


def _exit_quietly(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve until SIGINT or SIGTERM, after printing exactly one line with the API's URL."""
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully, then re-raises the signal it caught; this makes that
        # SIGTERM end the process with status 0 instead of dying from the signal.
        signal.signal(signal.SIGTERM, _exit_quietly)
    sock = bind(host, port)
    try:
        # The socket already listens, so a client that reads this line can connect at once.
        print(f"FLORA emulator listening on {url_of(sock, config)}", flush=True)
        make_server(EmulatorApp(config)).run(sockets=[sock])
    finally:
        sock.close()


class EmulatorThread(ControlPanel):
    """The emulator on a free loopback port in a background thread; use it with ``with``.

    ``clock`` replaces the wall clock for run lifecycles and idempotency windows, so a test can
    move time instead of sleeping. The control helpers talk HTTP, like ``EmulatorProcess``.
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        clock: Clock = time.time,
        host: str = "127.0.0.1",
    ) -> None:
        self.config = config or EmulatorConfig()
        self.app = EmulatorApp(self.config, clock)
        self._sock = bind(host, 0)
        self.base_url = url_of(self._sock, self.config)
        self.root_url = self.base_url.removesuffix(self.config.base_path)
        self.port: int = self._sock.getsockname()[1]
        self._server = make_server(self.app)
        self._thread = threading.Thread(target=self._run, name="flora-emulator", daemon=True)

    @property
    def store(self) -> Store:
        return self.app.store

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> EmulatorThread:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the emulator thread did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)
        self._sock.close()
        self.close_panel()

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
