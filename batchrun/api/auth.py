"""The API key as an ``httpx.Auth`` that refuses to travel: only requests to the API's own
origin carry it. Media hosts, a ``poll_url`` elsewhere or a redirect to another origin get none."""

from __future__ import annotations

from collections.abc import Generator

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    return (u.scheme, u.host, u.port or _DEFAULT_PORTS.get(u.scheme))


class OriginBearerAuth(httpx.Auth):
    def __init__(self, api_key: str, base_url: str) -> None:
        self._header = f"Bearer {api_key}"
        self._origin = origin(base_url)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin(request.url) == self._origin:
            request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:  # never the key, whatever prints this object
        return f"OriginBearerAuth(origin={self._origin!r})"
