"""The FLORA API over one ``httpx.AsyncClient``: four calls, answers parsed into models,
failures mapped to two types.

Every non-success answer becomes ``ApiError`` (status, code, message, request-id); every failure
where the request may or may not have reached the server becomes ``TransportError``. Nothing else
escapes. The API key is attached only to requests for the configured API origin.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import TransportError
from ..models import Run, Technique
from .answers import ITEM_ID_KEYS, api_error, invalid_answer, parse_run, parse_technique, timestamp
from .auth import OriginBearerAuth

DEFAULT_BASE_URL = "https://app.flora.ai/api/v1"
USER_AGENT = "batchrun/0.1"
KEEPALIVE_SECONDS = 5.0  # an idle connection is kept this long: httpx's default


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


def timeouts(read: float) -> httpx.Timeout:
    return httpx.Timeout(read, connect=10.0)


class FloraClient:
    """One client per batch. ``transport`` is injectable (``httpx.MockTransport``, an ASGI
    transport) so tests run the real client in-process; without it httpx connects, with the
    proxies the environment names (``trust_env``)."""

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
        url = httpx.URL(self.base_url)
        self._base_path = quote(url.path.rstrip("/"), safe="/%:@!$&'()*+,;=")
        self._origin = str(url.copy_with(path="/", query=None, fragment=None)).rstrip("/")
        self._host_name = url.host
        self._http = httpx.AsyncClient(
            auth=OriginBearerAuth(api_key, self.base_url) if api_key else None,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            timeout=timeouts(timeout),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
            transport=transport,
            follow_redirects=False,  # a redirect is an answer to report, not to follow
            trust_env=True,
        )

    async def __aenter__(self) -> FloraClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _url(self, *parts: str) -> str:
        return self._origin + self._base_path + "/" + "/".join(quote(p, safe="") for p in parts)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method, url, content=content, headers=headers, params=params
            )
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # The message names the exception type only: URLs could carry secrets one day.
            raise TransportError(f"{type(exc).__name__} talking to {self._host_name}") from None
        if response.status_code >= 300:
            raise api_error(response)
        return response

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise invalid_answer(
                response, "the server answered with something that is not JSON"
            ) from None

    async def create_run(self, technique_id: str, body: bytes, key: str) -> Created:
        response = await self._send(
            "POST",
            self._url("techniques", technique_id, "runs"),
            content=body,
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
        )
        data = self._json(response)
        if isinstance(data, dict) and isinstance(data.get("data"), dict) and "status" not in data:
            data = data["data"]
        try:
            run = parse_run(data)
        except (ValueError, AttributeError):
            raise invalid_answer(response, "create answered without a run id") from None
        replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
        return Created(run, response.status_code, replayed)

    async def get_run(self, technique_id: str, run_id: str) -> Run:
        response = await self._send("GET", self._url("techniques", technique_id, "runs", run_id))
        try:
            return parse_run(self._json(response))
        except (ValueError, AttributeError):
            raise invalid_answer(response, "run without id") from None

    async def list_runs(
        self,
        technique_id: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        status: str | None = None,
        only: Container[str] | None = None,
    ) -> RunPage:
        """A page of the run history, newest first. ``only``: parse just the runs with these
        ids (a poll sweep wants a few of a page)."""
        params: dict[str, str | int] = {"limit": limit}
        if technique_id:
            params["technique_id"] = technique_id
        if cursor:
            params["cursor"] = cursor
        if status:
            params["status"] = status
        response = await self._send("GET", self._url("technique-runs"), params=params)
        data = self._json(response)
        items = data.get("technique_runs", data.get("data")) if isinstance(data, dict) else None
        items = items if isinstance(items, list) else []
        runs = []
        for item in items:
            if not isinstance(item, dict):
                continue
            if only is not None and not any(item.get(k) in only for k in ITEM_ID_KEYS):
                continue
            try:
                runs.append(parse_run(item))
            except ValueError:
                continue
        meta = data.get("meta") if isinstance(data, dict) else None
        next_cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
        last = items[-1] if items and isinstance(items[-1], dict) else {}
        last_created = timestamp(last.get("created_at", last.get("createdAt")))
        return RunPage(tuple(runs), str(next_cursor) if next_cursor else None, last_created)

    async def get_technique(self, technique_id: str) -> Technique:
        response = await self._send("GET", self._url("techniques", technique_id))
        data = self._json(response)
        if isinstance(data, dict) and isinstance(data.get("technique"), dict):
            data = data["technique"]
        if not isinstance(data, dict):
            raise invalid_answer(response, "technique is not an object")
        return parse_technique(data, technique_id)
