"""Plain ASGI plumbing: reading a request, sending an answer, and cutting a connection dead.

The emulator speaks raw ASGI rather than through a framework so that every answer passes one
place (request-id, status counts) and so that a fault can get at the connection itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

MAX_BODY = 1 << 20


class Request:
    __slots__ = ("headers", "method", "path", "query", "receive", "scheme", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.scheme: str = scope.get("scheme", "http")
        self.headers: dict[str, str] = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
        }
        query = scope.get("query_string", b"").decode("latin-1")
        self.query: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            self.query.setdefault(name, value)

    async def body(self, limit: int = MAX_BODY) -> bytes | None:
        """The whole body, or None when it is larger than ``limit``."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def host(self) -> str:
        """host[:port] as the client addressed us, for URLs that must point back here."""
        host = self.headers.get("host")
        if host:
            return host
        server = self.scope.get("server") or ("127.0.0.1", 80)
        return f"{server[0]}:{server[1]}"


@dataclass(slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


class Cut:
    """A handler's answer that is no answer: the connection dies instead."""


CUT = Cut()


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Reply(status, body, headers=headers or {})


def error_reply(
    status: int,
    code: str,
    message: str,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return json_reply(status, {"error": error}, headers)


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


async def send_reply(send: Send, reply: Reply) -> None:
    headers = [
        (b"content-type", reply.content_type.encode()),
        (b"content-length", str(len(reply.body)).encode()),
        (b"request-id", new_request_id().encode()),
    ]
    headers.extend((k.lower().encode(), v.encode()) for k, v in reply.headers.items())
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body})


class CutConnection(Exception):
    """Raised on purpose mid-answer when the server gives no access to the socket."""


class QuietCuts(logging.Filter):
    """Cut connections are the point of a fault, not an error worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, CutConnection)


async def cut_connection(send: Send) -> None:
    """Close the connection without a byte of answer, so the client sees a transport error.

    uvicorn hands the app a bound method of its request cycle, which holds the socket's
    transport: aborting that is a real dropped connection. With a server that does not, the
    fallback announces a long body, sends a few bytes of it and raises; the server then closes
    the connection and the client sees an incomplete message (still a transport error for a
    client that reads the body, but a status line did get out).
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if isinstance(transport, asyncio.Transport):
        transport.abort()
        # Let connection_lost run, so the server knows why no answer followed and logs nothing.
        for _ in range(10):
            if getattr(cycle, "disconnected", True):
                break
            await asyncio.sleep(0)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"65536")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"run', "more_body": True})
    raise CutConnection("connection cut on purpose")
