"""The client's road through httpx's own transports: one injected (tests run the real client
in-process), or the proxy the environment names. Also httpx's body decoders.

Imported only when one of these is wanted: importing httpx costs about 50 ms of CPU, a fortieth
of a 2,000-row batch's client CPU, and the direct road to the API (``connections``) needs only
httpcore, the layer httpx is built on.
"""

from __future__ import annotations

import ssl
import urllib.request
from collections.abc import Generator, Mapping

import httpx

TRANSPORT_ERRORS = (httpx.TransportError, httpx.DecodingError)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    port = u.port or _DEFAULT_PORTS.get(u.scheme)
    return (u.scheme, u.host, port)


class OriginBearerAuth(httpx.Auth):
    """Bearer auth that refuses to travel: requests to any other origin go out without it."""

    def __init__(self, api_key: str, base_url: str) -> None:
        self._header = f"Bearer {api_key}"
        self._origin = origin(base_url)

    def sign(self, request: httpx.Request) -> None:
        if origin(request.url) == self._origin:
            request.headers["Authorization"] = self._header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign(request)
        yield request


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY, with
    NO_PROXY honoured), as an httpx client with its default trust_env would use."""
    u = httpx.URL(url)
    proxies = urllib.request.getproxies_environment()
    if not u.host or urllib.request.proxy_bypass(u.host):
        return None
    return proxies.get(u.scheme) or proxies.get("all")


def proxy_transport(proxy: str, tls: ssl.SSLContext, connections: int) -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(
        verify=tls, proxy=proxy, limits=httpx.Limits(max_connections=connections)
    )


async def send(
    transport: httpx.AsyncBaseTransport,
    url: str,
    method: str,
    content: bytes | None,
    headers: Mapping[str, str],
    auth: OriginBearerAuth | None,
    timeout: Mapping[str, float | None],
) -> httpx.Response:
    """One request through ``transport``, its answer read whole."""
    request = httpx.Request(
        method, url, content=content, headers=headers, extensions={"timeout": timeout}
    )
    if auth is not None:
        auth.sign(request)
    response = await transport.handle_async_request(request)
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


def decoded(body: bytes, encoding: str) -> bytes:
    """A body as sent with Content-Encoding, decoded by httpx's own decoders."""
    return httpx.Response(200, headers={"Content-Encoding": encoding}, content=body).content
