"""What the emulator can be told: run timing and costs, which of FLORA's readings to answer with,
faults.

A run is ``pending`` for a drawn queue time, then ``running`` for a drawn run time, then ends:
created_at -> started_at -> completed_at. Both are lognormal with the same spread ``run_spread``
(sigma of the underlying normal), their means ``pending_seconds`` (or ``pending_fraction`` of
``run_seconds``) and ``run_seconds``; a spread of 0 makes every run take exactly those times.
While it runs, ``progress`` rises evenly in whole percents ("even"), unevenly ("uneven": held at
0 for the first fifth of the run, as a model loads, and at 99 for the last tenth, as outputs are
stored) or not at all ("none": 0 until the run ends, as servers that do not measure it answer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .faults import Faults

_CHOICES: dict[str, tuple[object, ...]] = {
    "duplicate_mode": ("conflict409", "replay"),
    "create_status": (201, 200),
    "timestamps": ("s", "ms"),
    "id_field": ("run_id", "runId"),
    "absent_fields": ("omit", "null"),
    "progress": ("even", "uneven", "none"),
}
_SECONDS = ("run_seconds", "late_cost_seconds", "idempotency_window", "upload_expiry")
# name -> (low, high): the numbers that must lie in a range.
_RANGES: dict[str, tuple[float, float]] = {
    "run_spread": (0.0, 3.0),
    "pending_fraction": (0.0, 100.0),
    "cost_drift": (0.0, 100.0),
    "cost_drift_rate": (0.0, 1.0),
}
# Settings that only matter when the server starts; the rest may change at runtime.
_FIXED = ("seed", "base_path", "faults")


@dataclass
class EmulatorConfig:
    """Run settings. Every default is FLORA's reading or the friendliest one for a client."""

    api_key: str | None = None  # None: any non-empty bearer token is accepted
    run_seconds: float = 2.0  # mean run time, started_at to completed_at
    run_spread: float = 0.5  # sigma of the lognormal run and queue times; 0: exact
    pending_seconds: float | None = None  # mean queue time; None: pending_fraction * run_seconds
    pending_fraction: float = 0.1
    progress: str = "even"  # how progress rises while a run runs: "even", "uneven" or "none"
    seed: int = 0
    quote_on_create: bool = True  # the create answer carries charged_cost = run_cost, a quote
    cost_drift_rate: float = 0.2  # chance a completed run's final cost differs from its quote
    cost_drift: float = 0.25  # how far: quote * (1 + cost_drift) ** u, u uniform in [-1, 1]
    late_cost_seconds: float = 0.0  # charged_cost appears this long after completion
    duplicate_mode: str = "conflict409"  # a repeated key: 409 (as measured) or a 200 replay
    idempotency_window: float = 7200.0  # seconds a key is remembered
    create_status: int = 201
    timestamps: str = "s"  # "s": float epoch seconds; "ms": integer epoch milliseconds
    id_field: str = "run_id"  # "runId": the SDK's spelling, in create/get answers
    absent_fields: str = "omit"  # optional fields without a value: left out, or null
    open_catalogue: bool = False  # unknown technique ids act as a generic technique
    media_base: str | None = None  # None: the other loopback name, i.e. another origin
    base_path: str = "/api/v1"
    # Assets: the workspaces the key sees, the largest signed upload, how long its URL lives
    workspaces: list[str] = field(default_factory=lambda: ["ws_emulator"])
    max_asset_bytes: int = 500_000_000
    upload_expiry: float = 3600.0
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        for name in _SECONDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{name} must be a non-negative number of seconds")
            setattr(self, name, float(value))
        if self.pending_seconds is not None:
            value = self.pending_seconds
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError("pending_seconds must be a non-negative number or null")
            self.pending_seconds = float(value)
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value}")
            setattr(self, name, float(value))
        if not isinstance(self.quote_on_create, bool):
            raise ValueError("quote_on_create must be true or false")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty (None accepts any key)")
        if not self.base_path.startswith("/") or self.base_path.endswith("/"):
            raise ValueError("base_path must start with '/' and not end with one")
        if self.media_base is not None:
            self.media_base = self.media_base.rstrip("/")
        spaces = self.workspaces
        if not isinstance(spaces, list | tuple) or not all(
            isinstance(w, str) and w.strip() for w in spaces
        ):
            raise ValueError("workspaces must be a list of non-empty ids")
        self.workspaces = list(spaces)
        size = self.max_asset_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError("max_asset_bytes must be a positive integer")

    def pending_mean(self) -> float:
        if self.pending_seconds is not None:
            return self.pending_seconds
        return self.pending_fraction * self.run_seconds

    def update(self, changes: Mapping[str, Any]) -> None:
        """Runtime change of run settings, all or nothing."""
        names = {f.name for f in dataclasses.fields(self)} - set(_FIXED)
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown or start-only setting(s) {unknown}; known: {sorted(names)}")
        candidate = dataclasses.replace(self, **dict(changes))
        for name in names:
            setattr(self, name, getattr(candidate, name))

    def as_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["faults"] = self.faults.as_dict()
        if data["api_key"] is not None:
            data["api_key"] = "<set>"  # the control panel has no auth: never echo a key
        return data
