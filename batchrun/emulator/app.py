"""The emulator's HTTP surface: FLORA's endpoints behind auth and faults, media files, control panel."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable

from starlette.types import Receive, Scope, Send

from .asgi import CUT, Cut, Reply, Request, cut_connection, error_reply, json_reply, send_reply
from .assets import UPLOAD_PREFIX, Assets
from .catalogue import MEDIA_TYPES, find
from .config import EmulatorConfig
from .control import Control
from .listing import list_runs
from .media import media_bytes
from .state import Clock, Store
from .stats import Stats
from .validate import check_create
from .views import Views

Answer = Reply | Cut
Handler = Callable[[Request, list[str]], Awaitable[Answer]]

_OTHER_LOOPBACK = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}


def _split_host(host: str) -> tuple[str, str]:
    """("name", ":port") from a Host header, IPv6 literals included."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest
    name, sep, port = host.rpartition(":")
    return (name, sep + port) if sep and port.isdigit() else (host, "")


def canonical_sha256(technique_id: str, body: dict[str, object]) -> str:
    """What "the same request" means for a key: same technique, same body bar the key itself."""
    rest = {k: v for k, v in body.items() if k != "idempotency_key"}
    text = json.dumps([technique_id, rest], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class EmulatorApp:
    """The ASGI application. ``store`` and ``stats`` are its whole memory."""

    def __init__(self, config: EmulatorConfig | None = None, clock: Clock = time.time) -> None:
        self.config = config or EmulatorConfig()
        self.store = Store(self.config, clock)
        self.stats = Stats()
        self.views = Views(self.config)
        self.assets = Assets(self.config, self.store.now, self._bases)
        self.control = Control(self.config, self.store, self.stats, self.assets)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan work and no websockets
        request = Request(scope, receive)
        path, prefix = request.path, self.config.base_path
        if path.startswith(prefix + "/") or path == prefix:
            answer = await self._api(request)
            self.stats.status("cut" if isinstance(answer, Cut) else answer.status)
        else:
            self.stats.off_api(request.headers.get("authorization"))
            if path.startswith("/media/"):
                answer = self._media(request)
                self.stats.status(answer.status)
            elif path.startswith(UPLOAD_PREFIX):
                self.stats.by_endpoint["upload"] += 1
                answer = await self.assets.upload(request)
                self.stats.status(answer.status if isinstance(answer, Reply) else "cut")
            elif path.startswith("/_emulator/"):
                answer = await self.control.handle(request)
            else:
                answer = error_reply(404, "not_found", f"No route {path}.")
        if isinstance(answer, Cut):
            await cut_connection(send)
        else:
            await send_reply(send, answer)

    # -- the API pipeline ----------------------------------------------------------------------

    def _route(self, request: Request) -> tuple[str, Handler | None, list[str]]:
        """(endpoint name, handler or None for a wrong method, path parameters)."""
        rest = request.path[len(self.config.base_path) :].strip("/")
        parts = rest.split("/") if rest else []
        get = request.method == "GET"
        match parts:
            case ["techniques", technique, "runs"]:
                return "create", self._create if request.method == "POST" else None, [technique]
            case ["techniques", technique, "runs", run_id]:
                return "get", self._get if get else None, [technique, run_id]
            case ["technique-runs"]:
                return "list", self._list if get else None, []
            case ["techniques", technique]:
                return "technique", self._technique if get else None, [technique]
            case ["workspaces"]:
                return "workspaces", self.assets.workspaces if get else None, []
            case ["assets"]:
                post = request.method == "POST"
                handler = self.assets.create if post else self.assets.listing if get else None
                return ("asset_create" if post else "asset_list"), handler, []
            case ["assets", asset_id]:
                return "asset_get", self.assets.get if get else None, [asset_id]
            case ["assets", asset_id, "complete" | "retry" as action]:
                handler = self.assets.complete if action == "complete" else self.assets.retry
                post = request.method == "POST"
                return f"asset_{action}", handler if post else None, [asset_id]
        return "other", self._unknown, []

    async def _api(self, request: Request) -> Answer:
        endpoint, handler, params = self._route(request)
        self.stats.api(endpoint)
        faults, dice = self.config.faults, self.store.dice
        hit = faults.applies_to("assets" if endpoint.startswith(("asset", "workspaces"))
                                else endpoint)  # fmt: skip
        if hit and faults.latency[1] > 0:
            await asyncio.sleep(dice.uniform("latency", *faults.latency))
        if hit and dice.roll("drop", faults.drop):
            self.stats.fault("drop")
            return CUT
        # A 5xx comes from in front of everything (a gateway, a crash); a 429 is counted per
        # workspace, so it needs to know the caller first.
        if hit and dice.roll("rate_5xx", faults.rate_5xx):
            self.stats.fault("rate_5xx")
            status = dice.choice("rate_5xx_status", (500, 502, 503))
            return error_reply(status, "unknown_error", "An unexpected error occurred.")
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        if hit and dice.roll("rate_429", faults.rate_429):
            self.stats.fault("rate_429")
            return self._rate_limited("Too many requests; slow down.")
        if handler is None:
            return error_reply(405, "method_not_allowed", f"{request.method} is not allowed here.")
        return await handler(request, params)

    def _authenticate(self, request: Request) -> Reply | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            message = "Missing or malformed Authorization header; expected 'Bearer <key>'."
            return error_reply(401, "unauthorized", message)
        if self.config.api_key is not None and token != self.config.api_key:
            return error_reply(401, "invalid_api_key", "The API key is not valid.")
        return None

    def _rate_limited(self, message: str) -> Reply:
        faults, dice = self.config.faults, self.store.dice
        headers: dict[str, str] = {}
        if dice.roll("retry_after", faults.retry_after_prob):
            if dice.roll("retry_after_ms", faults.retry_after_ms_prob):
                headers["retry-after-ms"] = str(round(faults.retry_after * 1000))
            else:
                headers["retry-after"] = f"{faults.retry_after:g}"
        return error_reply(429, "rate_limited", message, headers=headers)

    def _bases(self, request: Request) -> tuple[str, str]:
        """The API base URL and the media base URL, which is another origin by default."""
        host = request.host()
        api = f"{request.scheme}://{host}{self.config.base_path}"
        if self.config.media_base:
            return api, self.config.media_base
        name, port = _split_host(host)
        other = _OTHER_LOOPBACK.get(name.lower(), name)
        return api, f"{request.scheme}://{other}{port}"

    # -- FLORA's endpoints ---------------------------------------------------------------------

    async def _create(self, request: Request, params: list[str]) -> Answer:
        spec = find(params[0], self.config.open_catalogue)
        if spec is None:
            return error_reply(404, "not_found", f"Technique '{params[0]}' not found.")
        raw = await request.body()
        if raw is None:
            field = [{"field": "body", "message": "is larger than 1 MiB"}]
            return error_reply(400, "input_validation_error", "The request is invalid.", field)
        try:
            body = json.loads(raw)
        except ValueError:  # UnicodeDecodeError included
            return error_reply(400, "invalid_json", "The request body is not valid JSON.")
        inputs, problems = check_create(body, spec)
        header_key = request.headers.get("idempotency-key")
        body_key = body.get("idempotency_key") if isinstance(body, dict) else None
        if header_key is not None and not header_key.strip():
            problems.append({"field": "Idempotency-Key", "message": "must not be empty"})
        elif header_key and isinstance(body_key, str) and body_key and body_key != header_key:
            message = "differs from the Idempotency-Key header"
            problems.append({"field": "idempotency_key", "message": message})
        problems += self.assets.not_ready(inputs)  # a run may name only ready assets
        if problems:
            return error_reply(400, "input_validation_error", "The request is invalid.", problems)
        assert isinstance(body, dict)
        key = header_key or body_key or None
        sha = canonical_sha256(spec.technique_id, body)
        api, media = self._bases(request)
        if key is not None:
            seen = self.store.remembered(key)
            if seen is not None and seen.body_sha256 != sha:
                message = "This idempotency key was already used with a different request."
                return error_reply(422, "idempotency_conflict", message)
            if seen is not None and self.config.duplicate_mode == "replay":
                rec = self.store.runs[seen.run_id]
                view = self.views.run(rec, self.store.now(), api, media)
                return json_reply(200, view, {"idempotent-replayed": "true"})
            if seen is not None:
                message = "A request with this idempotency key was already processed."
                return error_reply(409, "idempotency_duplicate", message)
        faults = self.config.faults
        if faults.max_active is not None and self.store.active() >= faults.max_active:
            self.stats.fault("max_active")
            return self._rate_limited(f"At most {faults.max_active} runs may be active at once.")
        left = self.store.credits_left()
        if left is not None and spec.run_cost > left + 1e-9:
            self.stats.fault("credits")
            message = f"This run costs ${spec.run_cost:.2f}; ${max(left, 0):.2f} of credits left."
            return error_reply(402, "insufficient_credits", message)
        rec = self.store.create(spec, inputs, key, sha)
        if self.store.dice.roll("lose_answer", faults.lose_answer):
            rec.answer_lost = True
            self.stats.fault("lose_answer")
            return CUT
        view = self.views.run(rec, rec.created_at, api, media, as_created=True)
        return json_reply(self.config.create_status, view)

    async def _get(self, request: Request, params: list[str]) -> Answer:
        spec = find(params[0], self.config.open_catalogue)
        rec = self.store.runs.get(params[1])
        if spec is None or rec is None or rec.spec.technique_id != spec.technique_id:
            return error_reply(404, "not_found", f"Run '{params[1]}' not found.")
        return json_reply(200, self.views.run(rec, self.store.now(), *self._bases(request)))

    async def _list(self, request: Request, params: list[str]) -> Answer:
        return list_runs(request.query, self.store, self.views, *self._bases(request))

    async def _technique(self, request: Request, params: list[str]) -> Answer:
        spec = find(params[0], self.config.open_catalogue)
        if spec is None:
            return error_reply(404, "not_found", f"Technique '{params[0]}' not found.")
        return json_reply(200, self.views.technique(spec))

    async def _unknown(self, request: Request, params: list[str]) -> Answer:
        return error_reply(404, "not_found", f"No route {request.path}.")

    # -- media ---------------------------------------------------------------------------------

    def _media(self, request: Request) -> Reply:
        self.stats.media(request.headers.get("authorization"))
        missing = error_reply(404, "not_found", "No such file.")
        asset = self.assets.media(request.path) if request.method == "GET" else None
        if asset is not None:
            return asset
        parts = request.path.split("/")
        if request.method != "GET" or len(parts) != 4:
            return missing
        rec = self.store.runs.get(parts[2])
        output_id, _, ext = parts[3].rpartition(".")
        if rec is None or rec.status(self.store.now()) != "completed":
            return missing
        out = next((o for o in rec.spec.outputs if o.id == output_id), None)
        if out is None or out.type not in MEDIA_TYPES or MEDIA_TYPES[out.type][0] != ext:
            return missing
        body = media_bytes(rec.run_id, out.id, out.type)
        return Reply(200, body, content_type=MEDIA_TYPES[out.type][1])
