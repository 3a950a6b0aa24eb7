"""Everything the emulator can be told: run timing, FLORA's readings, and switchable faults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

ENDPOINTS = ("create", "get", "list", "technique")


@dataclass
class Faults:
    latency: float = 0.0  # extra seconds per API request
    rate_429: float = 0.0  # probability of 429 rate_limited
    retry_after: float | None = 1.0  # Retry-After seconds on 429 (None: header left out)
    retry_after_ms: bool = False  # send retry-after-ms instead of Retry-After
    rate_5xx: float = 0.0  # probability of 500/502/503 before doing anything
    drop: float = 0.0  # probability the connection is cut before the request is handled
    lose_answer: float = 0.0  # create: the run is made, then the connection is cut
    fail_rate: float = 0.0  # probability a run fails
    max_active: int | None = None  # cap on pending/running runs; over it, 429
    credits: float | None = None  # account balance in USD; short of it, 402
    endpoints: tuple[str, ...] = ENDPOINTS  # where the request faults apply

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in changes.items():
            if key not in names:
                raise ValueError(f"unknown fault '{key}'")
            if key == "endpoints":
                value = tuple(value)
            setattr(self, key, value)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EmulatorConfig:
    api_key: str | None = None  # None: any non-empty bearer token is accepted
    run_seconds: float = 2.0
    pending_seconds: float | None = None  # default: 10 % of run_seconds
    jitter: float = 0.0  # +- fraction of run_seconds, seeded
    seed: int = 0
    late_cost_seconds: float = 0.0
    duplicate_mode: str = "conflict409"  # or "replay"
    idempotency_window: float = 7200.0
    create_status: int = 201
    timestamps: str = "s"  # or "ms"
    id_field: str = "run_id"  # or "runId"
    open_catalogue: bool = False
    media_base: str | None = None  # default: the other loopback name, a different origin
    faults: Faults | None = None

    def __post_init__(self) -> None:
        if self.faults is None:
            self.faults = Faults()
