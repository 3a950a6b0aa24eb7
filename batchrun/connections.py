"""Keep-alive connections to the API origin, each carrying one request at a time.

httpcore's connection pool serves any number of origins and of requests sharing a connection:
on every request and every response it walks all its connections and queued requests under a
lock and a cancel shield. Here every request goes to one origin over HTTP/1.1 and its answer
is read whole before the connection is used again, so a stack of idle connections and a
semaphore do the pool's job, for a fifth fewer instructions per create at 50 in flight
(callgrind). httpcore's own connection objects still connect, do TLS, speak HTTP and say when
they can be used again.
"""

from __future__ import annotations

import asyncio
import ssl

import httpcore

from .netio import AsyncioBackend, take_free_locks_at_once


class Connections:
    def __init__(
        self,
        origin: httpcore.Origin,
        *,
        limit: int,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_expiry: float = 5.0,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        take_free_locks_at_once()
        self.origin = origin
        self.network_backend = network_backend or AsyncioBackend()
        self._tls = ssl_context
        self._expiry = keepalive_expiry
        self._idle: list[httpcore.AsyncHTTPConnection] = []  # most recently used last
        self._room = asyncio.Semaphore(limit)

    async def exchange(self, request: httpcore.Request) -> tuple[httpcore.Response, bytes]:
        """Send ``request`` and read its answer whole: the response and its (encoded) body."""
        async with self._room:
            conn = await self._idle_connection()
            try:
                response = await conn.handle_async_request(request)
                try:
                    body = await response.aread()
                finally:
                    await response.aclose()
            except BaseException:
                await conn.aclose()
                raise
            if conn.is_idle():
                self._idle.append(conn)
            else:  # the server said close, or the answer was cut short
                await conn.aclose()
            return response, body

    async def _idle_connection(self) -> httpcore.AsyncHTTPConnection:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.is_available() and not conn.has_expired():
                return conn
            await conn.aclose()  # timed out, or the server hung up while it sat idle
        return httpcore.AsyncHTTPConnection(
            self.origin,
            ssl_context=self._tls,
            keepalive_expiry=self._expiry,
            network_backend=self.network_backend,
        )

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.aclose()
