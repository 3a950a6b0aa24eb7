import json
from collections.abc import Callable

import httpcore
import httpx
import pytest

from batchrun.client import FloraClient, parse_run
from batchrun.errors import ApiError, TransportError
from batchrun.viahttpx import OriginBearerAuth

BASE = "https://api.example.com/api/v1"


class FakeConnections:
    """The client's connections answered by an httpx-style handler: the client's own path, the
    one it takes without an injected transport, with no network under it."""

    def __init__(self, handler) -> None:
        self.handler = handler

    async def exchange(self, request: httpcore.Request) -> tuple[httpcore.Response, bytes]:
        body = b"".join([chunk async for chunk in request.stream])  # type: ignore[union-attr]
        seen = httpx.Request(request.method, bytes(request.url).decode(), headers=request.headers,
                             content=body)  # fmt: skip
        try:
            answer = self.handler(seen)
        except httpx.TransportError as exc:
            raise httpcore.RemoteProtocolError(str(exc)) from None
        raw = b"".join(answer.stream)  # as sent, before httpx decoded it
        response = httpcore.Response(answer.status_code, headers=answer.headers.raw, content=raw,
                                     extensions={"reason_phrase": answer.reason_phrase.encode()})  # fmt: skip
        return response, raw

    async def aclose(self) -> None:
        pass


Factory = Callable[[Callable[[httpx.Request], httpx.Response]], FloraClient]


@pytest.fixture(params=["httpcore", "httpx transport"])
def client_for(request: pytest.FixtureRequest) -> Factory:
    """Each test runs on both paths: httpcore connections (the default) and an injected
    transport."""

    def make(handler: Callable[[httpx.Request], httpx.Response]) -> FloraClient:
        if request.param == "httpx transport":
            return FloraClient(BASE, "sk-secret", transport=httpx.MockTransport(handler))
        client = FloraClient(BASE, "sk-secret", max_connections=4)
        client._connections = FakeConnections(handler)  # type: ignore[assignment]
        return client

    return make


async def test_create_accepts_200_and_201_and_sends_key_in_both_places(client_for: Factory) -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = 201 if len(seen) == 1 else 200
        return httpx.Response(
            status, json={"run_id": "run_1", "status": "pending", "created_at": 5}
        )

    async with client_for(handler) as c:
        body = b'{"inputs":[],"mode":"async","idempotency_key":"k1"}'
        a = await c.create_run("tech", body, "k1")
        b = await c.create_run("tech", body, "k1")
    assert a.run.run_id == b.run.run_id == "run_1"
    assert seen[0].headers["Idempotency-Key"] == "k1"
    assert seen[0].headers["Authorization"] == "Bearer sk-secret"
    assert seen[0].content == seen[1].content == body
    assert seen[0].url.path == "/api/v1/techniques/tech/runs"


async def test_error_body_becomes_api_error_with_request_id(client_for: Factory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            headers={"request-id": "req_9"},
            json={
                "error": {
                    "code": "input_validation_error",
                    "message": "bad input",
                    "fields": [{"field": "inputs[0].value", "message": "empty"}],
                }
            },
        )

    async with client_for(handler) as c:
        with pytest.raises(ApiError) as info:
            await c.get_run("tech", "run_1")
    err = info.value
    assert (err.status, err.code, err.request_id) == (400, "input_validation_error", "req_9")
    assert "inputs[0].value: empty" in str(err) and "req_9" in str(err)


async def test_retry_after_headers(client_for: Factory) -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"retry-after-ms": "1500"}),
            httpx.Response(429, headers={"Retry-After": "3"}),
            httpx.Response(503, text="<html>down</html>"),
        ]
    )

    async with client_for(lambda r: next(answers)) as c:
        delays = []
        for _ in range(3):
            with pytest.raises(ApiError) as info:
                await c.get_run("t", "r")
            delays.append(info.value.retry_after)
    assert delays == [1.5, 3.0, None]


async def test_transport_failures_become_transport_error(client_for: Factory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed", request=request)

    async with client_for(handler) as c:
        with pytest.raises(TransportError) as info:
            await c.get_run("t", "r")
    assert "sk-secret" not in str(info.value)


def test_key_never_travels_to_another_origin() -> None:
    auth = OriginBearerAuth("sk-secret", BASE)
    for url, expected in [
        (BASE + "/technique-runs", True),
        ("https://api.example.com:443/other", True),
        ("https://media.example.com/out.png", False),
        ("http://api.example.com/api/v1/x", False),
        ("https://api.example.com:8443/api/v1/x", False),
    ]:
        request = httpx.Request("GET", url)
        next(auth.auth_flow(request))
        assert ("Authorization" in request.headers) is expected, url


def test_run_parsing_survives_both_readings() -> None:
    run = parse_run(
        {
            "runId": "r1",
            "status": "completed",
            "created_at": 1_700_000_000_000,
            "charged_cost": "0.5",
        }
    )
    assert run.run_id == "r1" and run.created_at == 1_700_000_000.0 and run.charged_cost == 0.5
    run = parse_run({"run_id": "r2", "status": "failed", "created_at": 1_700_000_000.25})
    assert run.created_at == 1_700_000_000.25 and run.finished
    listed = parse_run(
        {"technique_run_id": "r3", "status": "running", "technique": {"technique_id": "t"}}
    )
    assert listed.run_id == "r3" and listed.technique_id == "t"


async def test_list_pages_and_technique(client_for: Factory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/technique-runs"):
            assert request.url.params["limit"] == "100"
            cursor = request.url.params.get("cursor")
            return httpx.Response(
                200,
                json={
                    "technique_runs": [{"run_id": "b" if cursor else "a", "status": "pending"}],
                    "meta": {"next_cursor": None if cursor else "c1"},
                },
            )
        return httpx.Response(
            200,
            content=json.dumps(
                {
                    "technique_id": "t",
                    "inputs": [{"id": "prompt", "type": "text"}],
                    "run_cost": 0.04,
                }
            ),
        )

    async with client_for(handler) as c:
        first = await c.list_runs("t")
        second = await c.list_runs("t", first.next_cursor)
        tech = await c.get_technique("t")
    assert [r.run_id for r in first.runs + second.runs] == ["a", "b"]
    assert second.next_cursor is None
    assert tech.run_cost == 0.04 and tech.inputs[0].id == "prompt"


async def test_list_parses_only_the_runs_asked_for_and_says_how_old_the_page_reaches(
    client_for: Factory,
) -> None:
    items = [
        {"technique_run_id": "a", "status": "completed", "created_at": 30},
        {"runId": "b", "status": "running", "createdAt": 20_000},
        {"id": "c", "status": "failed", "created_at": 10},
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["limit"] == "3"
        return httpx.Response(200, json={"technique_runs": items, "meta": {"next_cursor": "n"}})

    async with client_for(handler) as c:
        every = await c.list_runs("t", limit=3)
        some = await c.list_runs("t", limit=3, only={"b", "c"})
    assert [r.run_id for r in every.runs] == ["a", "b", "c"]
    assert [r.run_id for r in some.runs] == ["b", "c"] and some.next_cursor == "n"
    assert every.last_created_at == some.last_created_at == 10.0


async def test_list_without_items_is_an_empty_page(client_for: Factory) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"technique_runs": None, "meta": None})

    async with client_for(handler) as c:
        page = await c.list_runs("t")
    assert page.runs == () and page.next_cursor is None and page.last_created_at is None


async def test_run_history_is_asked_compressed_and_compressed_answers_are_decoded(
    client_for: Factory,
) -> None:
    import gzip

    asked = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("Accept-Encoding"))
        run = {"run_id": "r", "status": "completed"}
        data = {"technique_runs": [run]} if request.url.path.endswith("technique-runs") else run
        body = gzip.compress(json.dumps(data).encode())
        return httpx.Response(200, content=body, headers={"Content-Encoding": "gzip"})

    async with client_for(handler) as c:
        page = await c.list_runs("t")
        run = await c.get_run("t", "r")  # not asked for, and decoded all the same
    assert page.runs[0].status == run.status == "completed"
    assert "gzip" in asked[0] and asked[1] is None


async def test_asking_about_a_technique_survives_a_dropped_connection() -> None:
    from batchrun.errors import ConfigError
    from batchrun.techniques import fetch_techniques

    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("dropped", request=request)
        return httpx.Response(200, json={"technique_id": "t", "run_cost": 0.04})

    async with FloraClient(BASE, "sk-secret", transport=httpx.MockTransport(handler)) as c:
        found = await fetch_techniques(c, ["t"])
    assert found["t"] is not None and found["t"].run_cost == 0.04 and len(calls) == 2

    def refused(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "no"}})

    async with FloraClient(BASE, "sk-secret", transport=httpx.MockTransport(refused)) as c:
        with pytest.raises(ConfigError):
            await fetch_techniques(c, ["t"])


@pytest.mark.parametrize(
    ("base", "host_header", "host", "port"),
    [
        ("https://API.Example.com/api/v1/", b"api.example.com", b"api.example.com", None),
        ("http://127.0.0.1:8901/api/v1", b"127.0.0.1:8901", b"127.0.0.1", 8901),
        ("http://[::1]:8080/api/v1", b"[::1]:8080", b"::1", 8080),
        ("https://bücher.example/api v1", b"xn--bcher-kva.example", b"xn--bcher-kva.example", None),
    ],
)
def test_the_base_url_gives_the_host_header_and_where_to_connect(
    base: str, host_header: bytes, host: bytes, port: int | None
) -> None:
    client = FloraClient(base, "k")
    assert dict(client._raw_headers)[b"Host"] == host_header
    assert client._url[1:] == (host, port)
    assert client._path("techniques", "t/x", "runs").endswith("/techniques/t%2Fx/runs")
    assert client._path("x").startswith(("/api/v1/", "/api%20v1/"))
