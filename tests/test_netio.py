"""The asyncio network backend under httpx, against real sockets: TLS, keep-alive, hang-ups,
timeouts and large bodies."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpcore
import httpx
import pytest
import trustme

from batchrun.client import FloraClient
from batchrun.connections import Connections
from batchrun.errors import TransportError
from batchrun.netio import AsyncioBackend, AsyncioStream, _Connection, declare_asyncio
from batchrun.viahttpx import env_proxy

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


async def each_request(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The requests a kept-alive connection carries, until the client hangs up."""
    while not reader.at_eof():
        try:
            yield await read_request(reader)
        except asyncio.IncompleteReadError:
            return


def answer(body: bytes, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + extra
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


@asynccontextmanager
async def server(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
    try:
        yield srv.sockets[0].getsockname()[1]
    finally:
        srv.close()


def to(url: str, limit: int = 1, tls: ssl.SSLContext | None = None) -> Connections:
    """Connections as the client makes them, to the origin of ``url``."""
    return Connections(httpcore.URL(url).origin, limit=limit, ssl_context=tls)


async def get(conns: Connections, url: str, timeout: float = 5.0) -> bytes:
    host = httpx.URL(url).netloc
    request = httpcore.Request("GET", url, headers=[(b"Host", host)],
                               extensions={"timeout": httpx.Timeout(timeout).as_dict()})  # fmt: skip
    return (await conns.exchange(request))[1]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_tls_with_a_trusted_certificate_and_keep_alive(ca: trustme.CA) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        async for _ in each_request(reader):
            writer.write(answer(b'{"ok": true}'))
            await writer.drain()
        writer.close()

    async with server(handler, server_tls) as port:
        pool = to(f"https://localhost:{port}/", 2, client_tls)
        for _ in range(3):
            assert await get(pool, f"https://localhost:{port}/x") == b'{"ok": true}'
        await pool.aclose()
    assert connections == 1  # one TLS connection served all three


async def test_untrusted_certificate_is_refused(ca: trustme.CA) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost").configure_cert(server_tls)  # another CA
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with server(handler, server_tls) as port:
        pool = to(f"https://localhost:{port}/", 2, client_tls)
        with pytest.raises(httpcore.ConnectError):
            await get(pool, f"https://localhost:{port}/x")
        await pool.aclose()


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    served = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_request(reader)
        served += 1
        writer.write(answer(b"[]"))  # keep-alive promised, then the server hangs up anyway
        await writer.drain()
        writer.close()

    async with server(handler) as port:
        pool = to(f"http://127.0.0.1:{port}/", 1, ssl.create_default_context())
        assert await get(pool, f"http://127.0.0.1:{port}/a") == b"[]"
        await asyncio.sleep(0.05)  # the hang-up arrives while the connection is idle
        assert await get(pool, f"http://127.0.0.1:{port}/b") == b"[]"
        await pool.aclose()
    assert served == 2


async def post(port: int, body: bytes) -> bytes:
    pool = to(f"http://127.0.0.1:{port}/")
    request = httpcore.Request("POST", f"http://127.0.0.1:{port}/", content=body,
                               headers=[(b"Host", b"127.0.0.1"),
                                        (b"Content-Length", b"%d" % len(body))])  # fmt: skip
    try:
        return (await pool.exchange(request))[1]
    finally:
        await pool.aclose()


async def test_large_bodies_arrive_whole() -> None:
    body = b"x" * (5 << 20)  # above the buffer's high-water mark: reading pauses and resumes

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert request.endswith(body)
        writer.write(answer(body))
        await writer.drain()

    async with server(handler) as port:
        assert await post(port, body) == body


async def test_a_request_leaves_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    # httpcore writes head and body apart; held until it reads, they leave in one system call.
    writes: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"{}"))
        await writer.drain()

    async with server(handler) as port:
        made = _Connection.connection_made

        def counting(self: _Connection, transport: asyncio.BaseTransport) -> None:
            made(self, transport)
            real = transport.write  # type: ignore[attr-defined]
            transport.write = lambda data: (writes.append(bytes(data)), real(data))  # type: ignore[attr-defined]

        monkeypatch.setattr(_Connection, "connection_made", counting)
        assert await post(port, b'{"inputs": []}') == b"{}"
    assert len(writes) == 1 and writes[0].startswith(b"POST / HTTP/1.1\r\n")
    assert writes[0].endswith(b'{"inputs": []}')


async def test_an_answer_sent_before_the_request_left_is_still_read() -> None:
    # The server answered and hung up before our held request went out: like httpcore after a
    # failed write, the answer is read rather than the write's failure raised.
    conn = _Connection()
    conn.data_received(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
    conn.connection_lost(None)
    stream = AsyncioStream(conn)
    await stream.write(b"GET / HTTP/1.1\r\n\r\n")
    assert await stream.read(1 << 16) == b"HTTP/1.1 503 Service Unavailable\r\n\r\n"
    assert await stream.read(1 << 16) == b""


async def test_silence_cuts_and_refusals_are_transport_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        writer.transport.abort()

    async with server(silent) as port:
        pool = to(f"http://127.0.0.1:{port}/")
        with pytest.raises(httpcore.ReadTimeout):
            await get(pool, f"http://127.0.0.1:{port}/", timeout=0.2)
        await pool.aclose()
    async with server(cut) as port:
        pool = to(f"http://127.0.0.1:{port}/")
        with pytest.raises((httpcore.ReadError, httpcore.RemoteProtocolError)):
            await get(pool, f"http://127.0.0.1:{port}/")
        await pool.aclose()
    # A port nobody listens on any more: the client's own error type, no URL or key in it.
    async with FloraClient(f"http://127.0.0.1:{port}/api/v1", "sk-secret") as client:
        with pytest.raises(TransportError) as info:
            await client.get_run("t", "r")
    assert "sk-secret" not in str(info.value)
    assert "ConnectError" in str(info.value)


async def test_the_client_sends_up_to_its_connection_limit_at_once() -> None:
    active = peak = connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal active, peak, connections
        connections += 1
        async for _ in each_request(reader):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.05)
            active -= 1
            writer.write(answer(b'{"run_id": "r", "status": "running"}'))
            await writer.drain()

    async with (
        server(handler) as port,
        FloraClient(f"http://127.0.0.1:{port}/api/v1", "k", max_connections=24) as c,
    ):
        runs = await asyncio.gather(*(c.get_run("t", "r") for _ in range(24)))
        assert len(runs) == 24 and peak == 24  # all at once: none queued behind another
        runs = await asyncio.gather(*(c.get_run("t", "r") for _ in range(40)))
    assert len(runs) == 40 and peak == 24  # no more than the limit at once
    assert connections == 24  # the second round went over the first round's connections


async def test_a_connection_is_dropped_when_the_server_says_close_or_a_request_fails() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        async for request in each_request(reader):
            path = request.split(b" ")[1]
            if path == b"/cut":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
                await writer.drain()
                writer.transport.abort()
                return
            writer.write(answer(b"[]", close=path == b"/close"))
            await writer.drain()
            if path == b"/close":
                writer.close()
                return

    async with server(handler) as port:
        pool = to(f"http://127.0.0.1:{port}/", 2)
        assert await get(pool, f"http://127.0.0.1:{port}/close") == b"[]"
        assert await get(pool, f"http://127.0.0.1:{port}/a") == b"[]"  # a new connection
        with pytest.raises((httpcore.ReadError, httpcore.RemoteProtocolError)):
            await get(pool, f"http://127.0.0.1:{port}/cut")  # on the kept one, which is dropped
        assert await get(pool, f"http://127.0.0.1:{port}/b") == b"[]"
        assert pool._idle and len(pool._idle) == 1
        await pool.aclose()
        assert pool._idle == []
    assert connections == 3


def test_the_client_sends_on_our_backend() -> None:
    client = FloraClient("http://127.0.0.1:9/api/v1", "k", max_connections=8)
    assert client._connections is not None
    assert isinstance(client._connections.network_backend, AsyncioBackend)


async def test_httpcore_locks_take_a_free_lock_at_once_and_still_exclude() -> None:
    from httpcore._synchronization import AsyncLock

    to("http://127.0.0.1:9/")  # installs the fast locks, as the client does
    declare_asyncio()
    lock, order = AsyncLock(), []

    async def other() -> None:
        order.append("other ran")

    async def holder() -> None:
        async with lock:
            order.append("held")
            await asyncio.sleep(0.01)
            order.append("released")

    async def waiter() -> None:
        async with lock:
            order.append("waiter got it")

    task = asyncio.create_task(other())
    async with lock:  # free: taken without a turn of the loop, so `other` has not run yet
        order.append("free lock taken")
    await task
    await asyncio.gather(holder(), waiter())
    assert order == ["free lock taken", "other ran", "held", "released", "waiter got it"]


async def test_an_environment_proxy_is_used_like_httpx_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        lines.append(request.split(b"\r\n")[0])
        writer.write(answer(b'{"run_id": "r", "status": "running"}', close=True))
        await writer.drain()
        writer.close()

    async with server(proxy) as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("NO_PROXY", "internal.example")
        assert env_proxy("http://internal.example/api/v1") is None
        async with FloraClient("http://api.example.invalid/api/v1", "k") as client:
            run = await client.get_run("t", "r")
    assert run.run_id == "r"
    assert lines == [b"GET http://api.example.invalid/api/v1/techniques/t/runs/r HTTP/1.1"]
