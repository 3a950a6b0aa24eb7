"""The control panel under /_emulator/: not FLORA's, needs no key, never faulted or counted.

GET  /_emulator/ledger   every run really created: drawn times, fate, costs; keys, charges
GET  /_emulator/stats    request counts, media requests, leaked Authorization values
GET  /_emulator/faults   fault settings; POST a JSON object to change some of them
GET  /_emulator/config   run settings; POST a JSON object to change some of them
POST /_emulator/clock    {"advance": seconds}: move the emulator's clock forward
POST /_emulator/reset    forget runs, keys, counts and spent credits
"""

from __future__ import annotations

import json
from typing import Any

from .asgi import Reply, Request, error_reply, json_reply
from .assets import Assets
from .config import EmulatorConfig
from .state import Store
from .stats import Stats


class Control:
    def __init__(
        self, config: EmulatorConfig, store: Store, stats: Stats, assets: Assets | None = None
    ) -> None:
        self.config, self.store, self.stats = config, store, stats
        self.assets = assets

    async def handle(self, request: Request) -> Reply:
        name = request.path.removeprefix("/_emulator/").strip("/")
        method = request.method
        if name == "ledger" and method == "GET":
            ledger = self.store.ledger()
            if self.assets is not None:
                ledger.update(self.assets.ledger())
            return json_reply(200, ledger)
        if name == "stats" and method == "GET":
            return json_reply(200, self.stats.as_dict())
        if name == "faults" and method in ("GET", "POST"):
            return await self._settings(request, "faults")
        if name == "config" and method in ("GET", "POST"):
            return await self._settings(request, "config")
        if name == "clock" and method in ("GET", "POST"):
            return await self._clock(request)
        if name == "reset" and method == "POST":
            self.store.reset()
            self.stats.reset()
            if self.assets is not None:
                self.assets.reset()
            return json_reply(200, {"reset": True})
        return error_reply(404, "not_found", f"No control endpoint {method} {request.path}.")

    async def _object(self, request: Request) -> dict[str, Any] | Reply:
        raw = await request.body()
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return error_reply(400, "invalid_json", "The request body is not valid JSON.")
        if not isinstance(data, dict):
            return error_reply(400, "input_validation_error", "Send a JSON object.")
        return data

    async def _settings(self, request: Request, which: str) -> Reply:
        if request.method == "POST":
            changes = await self._object(request)
            if isinstance(changes, Reply):
                return changes
            try:
                if which == "faults":
                    self.config.faults.update(changes)
                else:
                    self.config.update(changes)
            except (ValueError, TypeError) as exc:
                return error_reply(400, "input_validation_error", str(exc))
            if which == "faults" and "credits" in changes:
                self.store.credits_reset()  # a new grant: the balance counts from here
        if which == "faults":
            return json_reply(200, self.config.faults.as_dict())
        return json_reply(200, self.config.as_dict())

    async def _clock(self, request: Request) -> Reply:
        if request.method == "POST":
            data = await self._object(request)
            if isinstance(data, Reply):
                return data
            advance = data.get("advance", 0)
            if isinstance(advance, bool) or not isinstance(advance, int | float) or advance < 0:
                return error_reply(400, "input_validation_error", "advance: seconds, not negative")
            self.store.clock_offset += float(advance)
        return json_reply(200, {"now": self.store.now(), "offset": self.store.clock_offset})
