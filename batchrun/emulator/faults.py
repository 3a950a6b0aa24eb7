"""Switchable faults and the seeded dice that decide when they strike.

Each kind of decision draws from its own random stream, so switching one fault on does not change
which requests another fault hits, nor the run ids and durations: a scenario replays exactly for
the same seed and the same order of requests.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .failures import DEFAULT_FAIL_MIX, DEFAULT_FAIL_RATE, parse_mix

T = TypeVar("T")

# The API endpoints a request fault can be restricted to.
ENDPOINTS = ("create", "get", "list", "technique", "assets")

_PROBABILITIES = (
    "rate_429",
    "retry_after_prob",
    "retry_after_ms_prob",
    "rate_5xx",
    "drop",
    "lose_answer",
    "fail_rate",
)


def parse_latency(value: Any) -> tuple[float, float]:
    """A fixed delay (``0.05``) or a uniform range (``"0.01..0.2"`` or ``[0.01, 0.2]``)."""
    if isinstance(value, bool):
        raise ValueError("latency must be seconds or a min..max range")
    if isinstance(value, int | float):
        low = high = float(value)
    elif isinstance(value, str):
        low_text, sep, high_text = value.partition("..")
        try:
            low = float(low_text)
            high = float(high_text) if sep else low
        except ValueError:
            raise ValueError(f"latency {value!r} is not seconds or min..max") from None
    elif isinstance(value, list | tuple) and len(value) == 2:
        low, high = (_number("latency", v) for v in value)
    else:
        raise ValueError("latency must be seconds or a min..max range")
    if not 0 <= low <= high:
        raise ValueError(f"latency range {low}..{high} must satisfy 0 <= min <= max")
    return (low, high)


def parse_endpoints(value: Any) -> tuple[str, ...]:
    """``"all"``, a comma-separated string or a list of endpoint names."""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ValueError("endpoints must be a list of names or a comma-separated string")
    cleaned = [n.strip() for n in names if n.strip()]
    if cleaned == ["all"]:
        return ENDPOINTS
    unknown = sorted(set(cleaned) - set(ENDPOINTS))
    if unknown:
        raise ValueError(f"unknown endpoint(s) {unknown}; choose from {', '.join(ENDPOINTS)}, all")
    return tuple(n for n in ENDPOINTS if n in cleaned)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    return float(value)


@dataclass
class Faults:
    """Fault settings. Request faults are off by default; runs fail at a realistic small rate.

    Probabilities are per request, except ``fail_rate``: per run, with the failure's tier drawn
    by the shares in ``fail_mix`` (see ``failures.py``).
    """

    latency: tuple[float, float] = (0.0, 0.0)  # extra seconds per API request, uniform min..max
    rate_429: float = 0.0
    retry_after: float = 1.0  # seconds announced on a 429
    retry_after_prob: float = 1.0  # chance a 429 announces when to retry at all
    retry_after_ms_prob: float = 0.0  # chance the announcement is retry-after-ms instead
    rate_5xx: float = 0.0  # 500/502/503 before anything happens
    drop: float = 0.0  # connection cut before the request is handled
    lose_answer: float = 0.0  # create: run made, key recorded, then the connection is cut
    fail_rate: float = DEFAULT_FAIL_RATE  # a run ends failed, with a code of a tier drawn by:
    fail_mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_FAIL_MIX))
    max_active: int | None = None  # pending+running runs allowed at once; a create above: 429
    credits: float | None = None  # USD balance; a create it cannot pay for: 402
    endpoints: tuple[str, ...] = ENDPOINTS  # where latency, 429, 5xx and drop apply

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        self.latency = parse_latency(self.latency)
        self.endpoints = parse_endpoints(self.endpoints)
        self.fail_mix = parse_mix(self.fail_mix)
        for name in _PROBABILITIES:
            value = _number(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
            setattr(self, name, value)
        if _number("retry_after", self.retry_after) < 0:
            raise ValueError("retry_after must not be negative")
        if self.max_active is not None and (
            isinstance(self.max_active, bool) or not isinstance(self.max_active, int)
        ):
            raise ValueError("max_active must be an integer or null")
        if self.max_active is not None and self.max_active < 0:
            raise ValueError("max_active must not be negative")
        if self.credits is not None:
            self.credits = _number("credits", self.credits)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial update, all or nothing: a bad value leaves every setting as it was."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown fault setting(s) {unknown}; known: {sorted(names)}")
        values = dict(changes)
        if "latency" in values:
            values["latency"] = parse_latency(values["latency"])
        if "endpoints" in values:
            values["endpoints"] = parse_endpoints(values["endpoints"])
        if "fail_mix" in values:
            values["fail_mix"] = parse_mix(values["fail_mix"])
        candidate = dataclasses.replace(self, **values)  # validates in __post_init__
        for name in names:
            setattr(self, name, getattr(candidate, name))

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["latency"] = list(self.latency)
        data["endpoints"] = list(self.endpoints)
        data["fail_mix"] = dict(self.fail_mix)
        return data

    def applies_to(self, endpoint: str) -> bool:
        return endpoint in self.endpoints


class Dice:
    """Seeded random streams, one per kind of decision."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, name: str) -> random.Random:
        rng = self._streams.get(name)
        if rng is None:
            rng = self._streams[name] = random.Random(f"{self.seed}:{name}")
        return rng

    def roll(self, name: str, probability: float) -> bool:
        # Drawing nothing when a fault is off keeps its stream aligned with the requests it sees.
        return probability > 0.0 and self.stream(name).random() < probability

    def uniform(self, name: str, low: float, high: float) -> float:
        return low if low == high else self.stream(name).uniform(low, high)

    def choice(self, name: str, options: Sequence[T]) -> T:
        return self.stream(name).choice(options)

    def weighted(self, name: str, weights: Mapping[str, float]) -> str:
        names = [n for n, w in weights.items() if w > 0]
        return self.stream(name).choices(names, [weights[n] for n in names])[0]

    def lognormal(self, name: str, mean: float, sigma: float) -> float:
        """A lognormal draw whose mean is ``mean``; exactly ``mean`` when sigma is 0."""
        if mean <= 0.0 or sigma <= 0.0:
            return max(mean, 0.0)
        return self.stream(name).lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)

    def hex(self, name: str, digits: int) -> str:
        return f"{self.stream(name).getrandbits(4 * digits):0{digits}x}"
