"""The emulator's HTTP surface: FLORA's four endpoints, media files and a control panel."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from .catalogue import EXTENSIONS, find
from .config import EmulatorConfig
from .state import Store
from .validate import validate_create

PREFIX = "/api/v1"
Handler = Callable[[Request], Awaitable[Response]]


class CutConnection(Exception):
    """Raised on purpose after a partial answer: the server then drops the connection."""


class CutResponse(Response):
    """Starts an answer and never finishes it, so the client sees the connection die (a
    transport error), not an HTTP status."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"4096"), (b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b'{"run_', "more_body": True})
        raise CutConnection("connection cut on purpose")


def error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None,
          headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _bases(request: Request, config: EmulatorConfig) -> tuple[str, str]:
    """The API base, and a media base on a different origin (the other loopback name)."""
    host, port = request.url.hostname or "127.0.0.1", request.url.port
    api = f"{request.url.scheme}://{request.url.netloc}{PREFIX}"
    if config.media_base:
        return api, config.media_base.rstrip("/")
    other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(host, host)
    return api, f"{request.url.scheme}://{other}{':' + str(port) if port else ''}"


def build_app(config: EmulatorConfig | None = None, store: Store | None = None) -> Starlette:
    config = config or EmulatorConfig()
    store = store or Store(config)
    faults = config.faults
    assert faults is not None

    def authorized(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return error(401, "unauthorized", "Missing or malformed Authorization header.")
        if config.api_key is not None and token.strip() != config.api_key:
            return error(401, "invalid_api_key", "The API key is not valid.")
        return None

    def guarded(endpoint: str, handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            store.stats["api_requests"] += 1
            store.stats[f"endpoint:{endpoint}"] += 1
            applies = endpoint in faults.endpoints
            if faults.latency:
                await asyncio.sleep(faults.latency)
            if applies and store.chance(faults.drop):
                store.stats["fault:drop"] += 1
                return CutResponse()
            denied = authorized(request)
            if denied is not None:
                return denied
            if applies and store.chance(faults.rate_5xx):
                store.stats["fault:5xx"] += 1
                status = store.rng.choice((500, 502, 503))
                return error(status, "unknown_error", "Something went wrong on our side.")
            if applies and store.chance(faults.rate_429):
                store.stats["fault:429"] += 1
                return rate_limited()
            return await handler(request)

        return wrapped

    def rate_limited() -> Response:
        headers = {}
        if faults.retry_after is not None:
            if faults.retry_after_ms:
                headers["retry-after-ms"] = str(int(faults.retry_after * 1000))
            else:
                headers["Retry-After"] = f"{faults.retry_after:g}"
        return error(429, "rate_limited", "Too many requests; slow down.", headers=headers)

    async def create(request: Request) -> Response:
        spec = find(request.path_params["technique"], config.open_catalogue)
        if spec is None:
            return error(404, "not_found", "Technique not found.")
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return error(400, "invalid_json", "The request body is not valid JSON.")
        problems = validate_create(body, spec, config.open_catalogue)
        header_key = request.headers.get("idempotency-key")
        body_key = body.get("idempotency_key") if isinstance(body, dict) else None
        if header_key and body_key and header_key != body_key:
            problems.append({"field": "idempotency_key", "message": "differs from the header"})
        if problems:
            return error(400, "input_validation_error", "Invalid technique inputs.", problems)
        key = header_key or body_key
        sha = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        api, media = _bases(request, config)
        if key:
            seen = store.remembered(key)
            if seen is not None:
                if seen[0] != sha:
                    return error(422, "idempotency_conflict",
                                 "This idempotency key was used with a different request.")  # fmt: skip
                if config.duplicate_mode == "replay":
                    view = store.view(store.runs[seen[1]], api, media)
                    return JSONResponse(view, 200, headers={"idempotent-replayed": "true"})
                return error(409, "idempotency_duplicate",
                             "A request with this idempotency key was already made.")  # fmt: skip
        if faults.max_active is not None and store.active() >= faults.max_active:
            store.stats["fault:max_active"] += 1
            return rate_limited()
        if faults.credits is not None and store.spent + spec.run_cost > faults.credits + 1e-9:
            return error(402, "insufficient_credits", "Not enough credits for this run.")
        rec = store.create(spec, body["inputs"], key, sha)
        if "create" in faults.endpoints and store.chance(faults.lose_answer):
            store.stats["fault:lose_answer"] += 1
            return CutResponse()
        return JSONResponse(store.view(rec, api, media), config.create_status)

    async def get_run(request: Request) -> Response:
        rec = store.runs.get(request.path_params["run"])
        spec = find(request.path_params["technique"], config.open_catalogue)
        if rec is None or spec is None or spec.technique_id != rec.spec.technique_id:
            return error(404, "not_found", "Run not found.")
        return JSONResponse(store.view(rec, *_bases(request, config)))

    async def list_runs(request: Request) -> Response:
        q = request.query_params
        try:
            limit = int(q.get("limit", "20"))
            if not 1 <= limit <= 100:
                raise ValueError
        except ValueError:
            return error(400, "input_validation_error", "Invalid query.",
                         [{"field": "limit", "message": "must be an integer from 1 to 100"}])  # fmt: skip
        below = len(store.order)
        if q.get("cursor"):
            try:
                below = int(json.loads(base64.urlsafe_b64decode(q["cursor"]))["before"])
            except (ValueError, KeyError, TypeError):
                return error(400, "input_validation_error", "Invalid query.",
                             [{"field": "cursor", "message": "not a cursor we issued"}])  # fmt: skip
        wanted = q.get("technique_id")
        spec = find(wanted, config.open_catalogue) if wanted else None
        tid = spec.technique_id if spec else wanted
        status, now = q.get("status"), store.clock()
        if q.get("project_id") not in (None, "prj_emulator") or q.get("workspace_id") not in (
            None, "ws_emulator",
        ):  # fmt: skip
            return JSONResponse({"technique_runs": [], "meta": {"next_cursor": None}})
        api, media = _bases(request, config)
        items: list[dict[str, Any]] = []
        last: int | None = None
        for rec in reversed(store.order[:below]):
            if tid and rec.spec.technique_id != tid:
                continue
            if status and rec.status(now) != status:
                continue
            if len(items) == limit:
                break
            items.append(store.view(rec, api, media, listed=True))
            last = rec.seq
        more = last is not None and len(items) == limit  # a last page may come back empty
        cursor = base64.urlsafe_b64encode(json.dumps({"before": last}).encode()).decode()
        meta = {"next_cursor": cursor if more else None, "total_estimate": len(store.order)}
        return JSONResponse({"technique_runs": items, "meta": meta})

    async def technique(request: Request) -> Response:
        spec = find(request.path_params["technique"], config.open_catalogue)
        if spec is None:
            return error(404, "not_found", "Technique not found.")
        return JSONResponse({
            "technique_id": spec.technique_id, "slug": spec.slug, "name": spec.name,
            "inputs": [{"id": i, "name": i.title(), "type": t, "required": r}
                       for i, t, r in spec.inputs],
            "run_cost": spec.run_cost,
        })  # fmt: skip

    async def media(request: Request) -> Response:
        store.stats["media_requests"] += 1
        auth = request.headers.get("authorization")
        if auth:
            store.stats["media_auth_leaks"] += 1
            store.auth_seen_off_api.add(auth)
        name = request.path_params["name"]
        run = store.runs.get(request.path_params["run"])
        if run is None:
            return error(404, "not_found", "No such file.")
        ext = name.rsplit(".", 1)[-1]
        ctype = next((c for e, c in EXTENSIONS.values() if e == ext), "application/octet-stream")
        seed = f"{run.run_id}/{name}".encode()
        return Response(b"EMULATED-MEDIA " + hashlib.sha256(seed).digest() * 64, media_type=ctype)

    async def ledger(request: Request) -> Response:
        return JSONResponse(store.ledger())

    async def stats(request: Request) -> Response:
        return JSONResponse({**store.stats, "auth_seen_off_api": sorted(store.auth_seen_off_api)})

    async def fault_panel(request: Request) -> Response:
        if request.method == "POST":
            try:
                faults.update(await request.json())
            except (ValueError, TypeError) as exc:
                return error(400, "invalid_json", str(exc))
        return JSONResponse(faults.as_dict())

    async def reset(request: Request) -> Response:
        store.reset()
        return JSONResponse({"ok": True})

    routes = [
        Route(
            f"{PREFIX}/techniques/{{technique}}/runs", guarded("create", create), methods=["POST"]
        ),
        Route(f"{PREFIX}/techniques/{{technique}}/runs/{{run}}", guarded("get", get_run)),
        Route(f"{PREFIX}/technique-runs", guarded("list", list_runs)),
        Route(f"{PREFIX}/techniques/{{technique}}", guarded("technique", technique)),
        Route("/media/{run}/{name}", media),
        Route("/_emulator/ledger", ledger),
        Route("/_emulator/stats", stats),
        Route("/_emulator/faults", fault_panel, methods=["GET", "POST"]),
        Route("/_emulator/reset", reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return RequestIds(app, store)  # type: ignore[return-value]


class RequestIds:
    """Every answer carries a request-id header, and its status is counted."""

    def __init__(self, app: Starlette, store: Store) -> None:
        self.app, self.store, self.state = app, store, app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                rid = "req_" + uuid.uuid4().hex[:16]
                message["headers"] = [*message.get("headers", []), (b"request-id", rid.encode())]
                self.store.stats[f"status:{message['status']}"] += 1
            await send(message)

        await self.app(scope, receive, send_with_id)
