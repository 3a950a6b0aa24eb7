"""The FLORA API over httpx's transport layer: four calls, answers parsed into models, failures mapped to two types.

Every non-success answer becomes ``ApiError`` (status, code, message, request-id); every failure
where the request may or may not have reached the server becomes ``TransportError``. Nothing else
escapes. The API key is attached only to requests for the configured API origin.
"""

from __future__ import annotations

import json
import math
import os
import ssl
import time
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import httpcore

from .connections import Connections
from .errors import ApiError, TransportError
from .models import Output, Run, Technique, TechniqueInput
from .netio import declare_asyncio

if TYPE_CHECKING:
    import httpx

    from .viahttpx import OriginBearerAuth

DEFAULT_BASE_URL = "https://app.flora.ai/api/v1"
USER_AGENT = "batchrun/0.1"
# Asked for on run-history pages only: other answers are a few hundred bytes, where compression
# buys nothing and the header alone costs 2% of a create's CPU. What httpx's client offers;
# a compressed answer is decoded by httpx's decoders whatever was asked.
_COMPRESSED = {"Accept-Encoding": "gzip, deflate"}
_MS_THRESHOLD = 1e11  # epoch seconds stay below this until the year 5138; milliseconds do not


def _timestamp(value: Any) -> float | None:
    """API timestamps are numbers: epoch seconds or, in some readings, milliseconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value <= 0:
            return None
        return value / 1000.0 if value > _MS_THRESHOLD else float(value)
    if isinstance(value, str) and value:
        try:
            return _timestamp(float(value))
        except ValueError:
            pass
        try:
            from datetime import datetime

            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _number(value: Any) -> float | None:
    """A finite number, from a number or a numeric string; anything else is no number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_run(data: Mapping[str, Any]) -> Run:
    run_id = (
        data.get("run_id") or data.get("runId") or data.get("technique_run_id") or data.get("id")
    )
    if not run_id:
        raise ValueError("run has no run_id")
    technique = data.get("technique")
    technique_id = technique.get("technique_id") if isinstance(technique, dict) else None
    outputs = tuple(
        Output(
            str(o.get("output_id") or o.get("outputId") or ""),
            str(o.get("type") or ""),
            str(o.get("url") or ""),
        )
        for o in data.get("outputs") or ()
        if isinstance(o, dict)
    )
    return Run(
        run_id=str(run_id),
        status=str(data.get("status") or "pending"),
        progress=_number(data.get("progress")),
        charged_cost=_number(data.get("charged_cost", data.get("chargedCost"))),
        created_at=_timestamp(data.get("created_at", data.get("createdAt"))),
        started_at=_timestamp(data.get("started_at", data.get("startedAt"))),
        completed_at=_timestamp(data.get("completed_at", data.get("completedAt"))),
        error_code=_text(data.get("error_code", data.get("errorCode"))),
        error_message=_text(data.get("error_message", data.get("errorMessage"))),
        outputs=outputs,
        poll_url=_text(data.get("poll_url", data.get("pollUrl"))),
        technique_id=_text(technique_id or data.get("technique_id")),
    )


def parse_technique(data: Mapping[str, Any], requested: str) -> Technique:
    inputs = tuple(
        TechniqueInput(
            id=str(i.get("id")),
            type=str(i.get("type") or "text"),
            name=_text(i.get("name")),
            required=i.get("required") if isinstance(i.get("required"), bool) else None,
        )
        for i in data.get("inputs") or ()
        if isinstance(i, dict) and i.get("id")
    )
    return Technique(
        technique_id=str(data.get("technique_id") or data.get("id") or requested),
        name=_text(data.get("name")),
        inputs=inputs,
        run_cost=_number(data.get("run_cost", data.get("runCost"))),
        raw=dict(data),
    )


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        import email.utils  # an HTTP date here is rare; the module costs 10 ms to import

        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - now)


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer read whole: what the calls below need of it, whichever transport carried
    it. Header names are in lower case; a repeated header's values are joined with ", "."""

    status_code: int
    reason_phrase: str
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _header_map(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


_RUN_ID_KEYS = ("run_id", "runId", "technique_run_id")
_ITEM_ID_KEYS = (*_RUN_ID_KEYS, "id")


def _named_run(body: Any) -> str | None:
    """A run id an error answer carries, wherever a server may have put it."""
    if not isinstance(body, dict):
        return None
    found = body.get("error")
    err: dict[str, Any] = found if isinstance(found, dict) else {}
    places: list[tuple[Any, tuple[str, ...]]] = [
        (p, _RUN_ID_KEYS) for p in (body, err, err.get("details"), err.get("data"))
    ]
    places += [(p, (*_RUN_ID_KEYS, "id")) for p in (body.get("run"), err.get("run"))]
    for place, keys in places:
        if isinstance(place, dict):
            for key in keys:
                value = place.get(key)
                if isinstance(value, str) and value:
                    return value
    return None


def api_error(response: Answer) -> ApiError:
    code, message, fields = f"http_{response.status_code}", response.reason_phrase, []
    try:
        body = response.json()
        err = body.get("error")
    except (ValueError, AttributeError):
        body = err = None
    if isinstance(err, dict):
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
        fields = [f for f in err.get("fields") or () if isinstance(f, dict)]
    elif isinstance(err, str):
        message = err
    elif not message:
        message = response.text[:200]
    should = response.headers.get("x-should-retry")
    return ApiError(
        status=response.status_code,
        code=code,
        message=message,
        request_id=response.headers.get("request-id") or response.headers.get("x-request-id"),
        fields=fields,
        retry_after=_retry_after(response.headers, time.time()),
        should_retry=None if should is None else should.strip().lower() == "true",
        run_id=_named_run(body),
    )


def _invalid(response: Answer, message: str) -> ApiError:
    """An answer that does not mean what the API says it should (read as a duplicate by the
    submitter: never a reason to send again)."""
    return ApiError(
        response.status_code,
        "invalid_response",
        message,
        request_id=response.headers.get("request-id"),
    )


@dataclass(frozen=True, slots=True)
class Created:
    run: Run
    status_code: int
    replayed: bool


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: tuple[Run, ...]
    next_cursor: str | None
    last_created_at: float | None = None  # of the page's last (oldest) item, parsed or not


def _proxy_named() -> bool:
    """Whether the environment names any proxy; only then is httpx asked which applies."""
    return any(k.lower() in ("http_proxy", "https_proxy", "all_proxy") for k in os.environ)


_KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept: httpx's default


def _tls_for(scheme: str) -> ssl.SSLContext:
    """One TLS context for all connections. Loading the system's CAs costs 30 ms of CPU, and a
    client for a plain-HTTP API (a local gateway, the emulator) sends nothing anywhere else: it
    gets a context that trusts no one, so a stray https request would fail, never go unverified."""
    if scheme == "https":
        return ssl.create_default_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


_CORE_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
)


class FloraClient:
    """One async client per batch. ``transport`` is injectable so tests can run in-process.

    Requests go to httpx's transport layer (httpcore) directly: httpx's client layer (cookie jar,
    redirects, auth flow) and its request and response models cost about a third of the CPU of
    a request, and none of it is wanted here (no cookies, no redirects followed, one bearer
    header for one origin). An injected httpx transport, or a proxy named by the environment,
    is used through httpx as usual.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        max_connections: int = 64,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        base = urlsplit(self.base_url)
        scheme, host, port = base.scheme.lower(), base.hostname or "", base.port
        self._base_path = quote(base.path.rstrip("/"), safe="/%:@!$&'()*+,;=")
        self._origin_url = f"{scheme}://{base.netloc.rpartition('@')[2]}"
        self._host_name = host
        self._api_key = api_key
        self._auth: OriginBearerAuth | None = None  # made when a request goes through httpx
        self._timeout = {"connect": 10.0, "read": timeout, "write": timeout, "pool": timeout}
        self._headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        # By construction every request goes to the API origin, so the key rides on all of them.
        raw_host = host.encode("idna")
        netloc = (b"[%s]" % raw_host if ":" in host else raw_host) + (
            b":%d" % port if port else b""
        )
        raw = [(b"Host", netloc), *((k.encode(), v.encode()) for k, v in self._headers.items())]
        if api_key:
            raw.append((b"Authorization", f"Bearer {api_key}".encode()))
        self._raw_headers = raw
        self._url = (scheme.encode("ascii"), raw_host, port)
        self._transport: httpx.AsyncBaseTransport | None = transport
        self._runs_paths: dict[str, str] = {}
        self._connections: Connections | None = None
        if transport is None and _proxy_named():
            from . import viahttpx

            if proxy := viahttpx.env_proxy(self.base_url):
                self._transport = viahttpx.proxy_transport(proxy, _tls_for(scheme), max_connections)
        if self._transport is None:
            self._connections = Connections(
                httpcore.URL(scheme=self._url[0], host=raw_host, port=port).origin,
                limit=max_connections,
                ssl_context=_tls_for(scheme),
                keepalive_expiry=_KEEPALIVE_EXPIRY,
            )

    async def __aenter__(self) -> FloraClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._connections is not None:
            await self._connections.aclose()
        if self._transport is not None:
            await self._transport.aclose()

    def _path(self, *parts: str) -> str:
        return self._base_path + "/" + "/".join(quote(p, safe="") for p in parts)

    def _runs_path(self, technique_id: str) -> str:
        """Where a technique's runs are created: the same few paths for every row of a batch."""
        path = self._runs_paths.get(technique_id)
        if path is None:
            path = self._runs_paths[technique_id] = self._path("techniques", technique_id, "runs")
        return path

    async def _send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Answer:
        """One request to the API origin. ``path``: from ``_path``, percent-encoded."""
        target = f"{path}?{urlencode(params)}" if params else path
        try:
            if self._connections is not None:
                answer = await self._exchange(self._connections, method, target, content, headers)
            else:
                answer = await self._exchange_httpx(method, target, content, headers)
        except _CORE_ERRORS as exc:
            raise self._transport_error(exc) from None
        if answer.status_code >= 300:
            raise api_error(answer)
        return answer

    def _transport_error(self, exc: BaseException) -> TransportError:
        # The message names the exception type only: URLs could carry secrets one day.
        return TransportError(f"{type(exc).__name__} talking to {self._host_name}")

    async def _exchange(
        self,
        connections: Connections,
        method: str,
        target: str,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> Answer:
        raw = self._raw_headers.copy()
        if headers:
            raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        if content is not None:
            raw.append((b"Content-Length", b"%d" % len(content)))
        scheme, host, port = self._url
        url = httpcore.URL(scheme=scheme, host=host, port=port, target=target.encode("ascii"))
        request = httpcore.Request(method.encode("ascii"), url, headers=raw, content=content,
                                   extensions={"timeout": self._timeout})  # fmt: skip
        declare_asyncio()
        response, body = await connections.exchange(request)
        answer_headers = _header_map(response.headers)
        encoding = answer_headers.get("content-encoding")
        if encoding and encoding.strip().lower() != "identity":
            from . import viahttpx

            try:
                body = viahttpx.decoded(body, encoding)
            except viahttpx.TRANSPORT_ERRORS as exc:
                raise self._transport_error(exc) from None
        reason = response.extensions.get("reason_phrase", b"")
        return Answer(response.status, reason.decode("ascii", "replace"), answer_headers, body)

    async def _exchange_httpx(
        self, method: str, target: str, content: bytes | None, headers: Mapping[str, str] | None
    ) -> Answer:
        from . import viahttpx

        assert self._transport is not None
        if self._auth is None and self._api_key:
            self._auth = viahttpx.OriginBearerAuth(self._api_key, self.base_url)
        try:
            response = await viahttpx.send(
                self._transport, self._origin_url + target, method, content,
                {**self._headers, **headers} if headers else self._headers,
                self._auth, self._timeout,
            )  # fmt: skip
        except viahttpx.TRANSPORT_ERRORS as exc:
            raise self._transport_error(exc) from None
        return Answer(response.status_code, response.reason_phrase,
                      _header_map(response.headers.raw), response.content)  # fmt: skip

    @staticmethod
    def _json(response: Answer) -> Any:
        try:
            return response.json()
        except ValueError:
            raise _invalid(
                response, "the server answered with something that is not JSON"
            ) from None

    async def create_run(self, technique_id: str, body: bytes, key: str) -> Created:
        response = await self._send(
            "POST",
            self._runs_path(technique_id),
            content=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )
        data = self._json(response)
        if isinstance(data, dict) and isinstance(data.get("data"), dict) and "status" not in data:
            data = data["data"]
        try:
            run = parse_run(data)
        except (ValueError, AttributeError):
            raise _invalid(response, "create answered without a run id") from None
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        return Created(run, response.status_code, replayed)

    async def get_run(self, technique_id: str, run_id: str) -> Run:
        response = await self._send("GET", self._path("techniques", technique_id, "runs", run_id))
        try:
            return parse_run(self._json(response))
        except (ValueError, AttributeError):
            raise _invalid(response, "run without id") from None

    async def list_runs(
        self,
        technique_id: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        status: str | None = None,
        only: Container[str] | None = None,
    ) -> RunPage:
        """A page of the run history, newest first. ``only``: parse just the runs with these
        ids (a poll sweep wants a few of a page, and parsing the rest costs more than reading).
        """
        params: dict[str, str | int] = {"limit": limit}
        if technique_id:
            params["technique_id"] = technique_id
        if cursor:
            params["cursor"] = cursor
        if status:
            params["status"] = status
        response = await self._send(
            "GET", self._path("technique-runs"), params=params, headers=_COMPRESSED
        )
        data = self._json(response)
        items = data.get("technique_runs", data.get("data")) if isinstance(data, dict) else None
        items = items if isinstance(items, list) else []
        runs = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if only is not None and not any(item.get(k) in only for k in _ITEM_ID_KEYS):
                continue
            try:
                runs.append(parse_run(item))
            except ValueError:
                continue
        meta = data.get("meta") if isinstance(data, dict) else None
        next_cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
        last = items[-1] if items and isinstance(items[-1], dict) else {}
        last_created = _timestamp(last.get("created_at", last.get("createdAt")))
        return RunPage(tuple(runs), str(next_cursor) if next_cursor else None, last_created)

    async def get_technique(self, technique_id: str) -> Technique:
        response = await self._send("GET", self._path("techniques", technique_id))
        data = self._json(response)
        if isinstance(data, dict) and isinstance(data.get("technique"), dict):
            data = data["technique"]
        if not isinstance(data, dict):
            raise _invalid(response, "technique is not an object")
        return parse_technique(data, technique_id)
