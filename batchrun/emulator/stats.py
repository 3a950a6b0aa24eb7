"""Request counts, for tests and benchmarks that check what a client really sent."""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.api_requests = 0
        self.by_endpoint: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.media_requests = 0
        self.media_auth_leaks = 0
        self.auth_seen_off_api: set[str] = set()

    def api(self, endpoint: str) -> None:
        self.api_requests += 1
        self.by_endpoint[endpoint] += 1

    def media(self, authorization: str | None) -> None:
        self.media_requests += 1
        self.by_endpoint["media"] += 1
        if authorization is not None:
            self.media_auth_leaks += 1

    def off_api(self, authorization: str | None) -> None:
        """Any request outside the API: an Authorization header there is a leaked key."""
        if authorization is not None:
            self.auth_seen_off_api.add(authorization)

    def status(self, status: int | str) -> None:
        self.by_status[str(status)] += 1

    def fault(self, name: str) -> None:
        self.faults[name] += 1

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "api_requests": self.api_requests,
            "by_endpoint": dict(self.by_endpoint),
            "by_status": dict(self.by_status),
            "faults": dict(self.faults),
            "media_requests": self.media_requests,
            "media_auth_leaks": self.media_auth_leaks,
            "auth_seen_off_api": sorted(self.auth_seen_off_api),
        }
        # Flat spellings too ("endpoint:create"), which existing end-to-end tests read.
        data.update({f"endpoint:{k}": v for k, v in self.by_endpoint.items()})
        data.update({f"status:{k}": v for k, v in self.by_status.items()})
        data.update({f"fault:{k}": v for k, v in self.faults.items()})
        return data
