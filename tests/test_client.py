import json
from collections.abc import Callable

import httpx
import pytest

from batchrun.api import FloraClient
from batchrun.api.answers import parse_run
from batchrun.api.auth import OriginBearerAuth
from batchrun.errors import ApiError, TransportError

BASE = "https://api.example.com/api/v1"


Factory = Callable[[Callable[[httpx.Request], httpx.Response]], FloraClient]


@pytest.fixture
def client_for() -> Factory:
    """The real client over an injected transport, through httpx's public constructor."""

    def make(handler: Callable[[httpx.Request], httpx.Response]) -> FloraClient:
        return FloraClient(BASE, "sk-secret", transport=httpx.MockTransport(handler))

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


async def test_answers_are_asked_compressed_and_decoded(
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
    assert all("gzip" in a for a in asked)


async def test_asking_about_a_technique_survives_a_dropped_connection() -> None:
    from batchrun.engine.techniques import fetch_techniques
    from batchrun.errors import ConfigError

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
    ("base", "host_header", "prefix"),
    [
        ("https://API.Example.com/api/v1/", "api.example.com", "/api/v1/"),
        ("http://127.0.0.1:8901/api/v1", "127.0.0.1:8901", "/api/v1/"),
        ("http://[::1]:8080/api/v1", "[::1]:8080", "/api/v1/"),
        ("https://bücher.example/api v1", "xn--bcher-kva.example", "/api%20v1/"),
    ],
)
async def test_the_base_url_gives_the_host_header_and_the_path(
    base: str, host_header: str, prefix: str
) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"run_id": "r", "status": "pending"})

    async with FloraClient(base, "k", transport=httpx.MockTransport(handler)) as c:
        await c.get_run("t/x", "r")
    (request,) = seen
    assert request.headers["Host"] == host_header
    assert request.url.raw_path.decode().startswith(prefix)
    assert request.url.raw_path.decode().endswith("/techniques/t%2Fx/runs/r")
    assert request.headers["Authorization"] == "Bearer k"
