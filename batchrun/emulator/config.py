"""What the emulator can be told: run timing, which of FLORA's readings to answer with, faults."""

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
}
_SECONDS = ("run_seconds", "late_cost_seconds", "idempotency_window")
# Settings that only matter when the server starts; the rest may change at runtime.
_FIXED = ("seed", "base_path", "faults")


@dataclass
class EmulatorConfig:
    """Run settings. Every default is FLORA's reading or the friendliest one for a client."""

    api_key: str | None = None  # None: any non-empty bearer token is accepted
    run_seconds: float = 2.0  # created_at to completed_at
    pending_seconds: float | None = None  # None: 10 % of the run's duration
    jitter: float = 0.0  # a run's duration varies by +- this fraction, seeded
    seed: int = 0
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
        if self.pending_seconds is not None and self.pending_seconds < 0:
            raise ValueError("pending_seconds must not be negative")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("jitter must be a fraction in [0, 1)")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty (None accepts any key)")
        if not self.base_path.startswith("/") or self.base_path.endswith("/"):
            raise ValueError("base_path must start with '/' and not end with one")
        if self.media_base is not None:
            self.media_base = self.media_base.rstrip("/")

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
