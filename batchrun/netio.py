"""An asyncio-native network backend for httpcore, the layer under httpx.

httpcore's default backend goes through anyio: every read and write opens a cancel scope and
yields to the loop once more, and every request asks each idle pooled connection whether its
socket is readable, which there builds a dict of socket attributes and makes two system calls.
Profiles of a batch put that at about a third of the client's CPU. Here a connection is an
asyncio ``Protocol`` that buffers what arrives, so reads are served from memory and "is the
server gone?" is a flag the event loop already set. HTTP itself stays httpx's and httpcore's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterable
from typing import Any, cast

import httpcore
import sniffio

_HIGH_WATER = 1 << 20  # stop reading from the socket while this much is buffered unread
_SEND_AT_ONCE = 1 << 16  # held writes are sent once they add up to this much


def declare_asyncio() -> None:
    """Tell sniffio, for this task, that asyncio runs it. httpcore asks sniffio which library
    runs several times per request, and the answer found by sniffing costs more than the rest of
    the lock it is asked for; the declared answer is a context variable read."""
    if sniffio.current_async_library_cvar.get() is None:
        sniffio.current_async_library_cvar.set("asyncio")


def take_free_locks_at_once() -> None:
    """Make httpcore's locks, under asyncio, plain asyncio locks, which take a free lock without
    a turn of the event loop.

    httpcore makes them anyio locks there, which yield to the loop even when free: three more
    turns per request, measured at a tenth of the client's CPU and a sixth of the wall time of a
    batch of instant runs; and the first one imports anyio's asyncio backend (30 ms of CPU). A
    held lock is waited for as before, and every request still yields at its I/O. Process-wide,
    once; trio keeps httpcore's own; skipped should httpcore lay this out differently (only speed
    differs).
    """
    from httpcore import _synchronization as sync

    setup = getattr(sync.AsyncLock, "setup", None)
    if setup is None or getattr(setup, "fast", False):
        return

    def asyncio_setup(lock: Any) -> None:
        if sync.current_async_library() == "asyncio":
            # what httpcore calls on it: ``await acquire()`` and ``release()``
            lock._backend, lock._anyio_lock = "asyncio", asyncio.Lock()
        else:
            setup(lock)

    asyncio_setup.fast = True  # type: ignore[attr-defined]
    setattr(sync.AsyncLock, "setup", asyncio_setup)  # noqa: B010


class _Connection(asyncio.Protocol):
    """Receives bytes into a buffer and wakes the one reader httpcore ever has per connection."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._reader: asyncio.Future[bool] | None = None
        self._drained: asyncio.Future[bool] | None = None
        self._paused_reading = False
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: other event loops (uvloop) have transports of their own classes.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
            self._paused_reading = True
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too: httpcore never half-closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(True)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(True)

    def _wake(self) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.set_result(True)

    def take(self, max_bytes: int) -> bytes:
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if self._paused_reading and len(self.buffer) <= _HIGH_WATER // 4 and self.transport:
            self.transport.resume_reading()
            self._paused_reading = False
        return data

    def reader(self) -> asyncio.Future[bool]:
        self._reader = asyncio.get_running_loop().create_future()
        return self._reader

    def drained(self) -> asyncio.Future[bool]:
        self._drained = asyncio.get_running_loop().create_future()
        return self._drained


async def _within(future: asyncio.Future[bool], timeout: float | None) -> bool:
    """True when ``future`` is woken, False when ``timeout`` passes first: a bare loop timer
    rather than a task or a cancel scope, as this runs for every read."""
    if timeout is None:
        return await future
    timer = asyncio.get_running_loop().call_later(timeout, _expire, future)
    try:
        return await future
    finally:
        timer.cancel()


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class AsyncioStream(httpcore.AsyncNetworkStream):
    """Writes are held until the next read (or until a body is large): httpcore writes a
    request's head and body separately, and one send instead of two saves a system call here
    and a wake-up and a read at the server."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._write_timeout: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held:
            # As httpcore does with a failed write: a server that answered early and closed
            # still has its answer read.
            with contextlib.suppress(httpcore.WriteError):
                await self._flush()
        conn = self._conn
        while not conn.buffer:
            if conn.eof:
                if conn.error is not None:
                    raise httpcore.ReadError(f"{type(conn.error).__name__}: {conn.error}")
                return b""
            if not await _within(conn.reader(), timeout):
                raise httpcore.ReadTimeout("timed out waiting for the server")
        return conn.take(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self._held.append(buffer)
        self._held_bytes += len(buffer)
        self._write_timeout = timeout
        if self._held_bytes >= _SEND_AT_ONCE:
            await self._flush()

    async def _flush(self) -> None:
        conn = self._conn
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held, self._held_bytes = [], 0
        if conn.eof or conn.transport is None or conn.transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        conn.transport.write(data)
        while conn.write_paused and not conn.eof:
            if not await _within(conn.drained(), self._write_timeout):
                raise httpcore.WriteTimeout("timed out writing to the server")
        if conn.error is not None:
            raise httpcore.WriteError(f"{type(conn.error).__name__}: {conn.error}")

    async def aclose(self) -> None:
        self._held, self._held_bytes = [], 0  # httpcore closes after reading, or to give up
        if self._conn.transport is not None:
            self._conn.transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        conn = self._conn
        assert conn.transport is not None
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                conn.transport,
                conn,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except TimeoutError as exc:
            conn.transport.close()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            conn.transport.close()
            raise httpcore.ConnectError(f"TLS handshake failed: {type(exc).__name__}") from exc
        if transport is None:
            raise httpcore.ConnectError("TLS handshake failed: connection closed")
        conn.transport = transport
        return AsyncioStream(conn)

    def get_extra_info(self, info: str) -> Any:
        transport = self._conn.transport
        if info == "is_readable":
            # httpcore asks this of idle pooled connections: readable means the server hung up.
            return self._conn.eof or bool(self._conn.buffer)
        if transport is None:
            return None
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        return await self._connect(
            lambda conn: asyncio.get_running_loop().create_connection(
                lambda: conn, host, port, local_addr=local
            ),
            timeout,
            socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._connect(
            lambda conn: asyncio.get_running_loop().create_unix_connection(lambda: conn, path),
            timeout,
            socket_options,
        )

    @staticmethod
    async def _connect(
        opener: Any, timeout: float | None, options: Iterable[httpcore.SOCKET_OPTION] | None
    ) -> httpcore.AsyncNetworkStream:
        conn = _Connection()
        try:
            async with asyncio.timeout(timeout):
                await opener(conn)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout("timed out connecting") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"{type(exc).__name__}: {exc.strerror or exc}") from exc
        assert conn.transport is not None
        sock: socket.socket | None = conn.transport.get_extra_info("socket")
        for option in options or ():
            if sock is not None:
                sock.setsockopt(*option)
        return AsyncioStream(conn)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
