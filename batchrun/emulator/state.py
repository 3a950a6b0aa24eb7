"""The emulator's account: runs, idempotency keys, the ledger of charges, the credit balance.

A run's status is worked out from the clock whenever it is asked for, so nothing runs in the
background and a test can move time by hand (an injected clock, or the clock offset). Everything a
run will do (queue time, run time, failure, final cost) is drawn when it is created, from seeded
streams, and the ledger shows it all.
"""

from __future__ import annotations

import bisect
import heapq
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .catalogue import TechniqueSpec
from .config import EmulatorConfig
from .failures import (
    MODERATED_CODE,
    PROVIDER_ERROR,
    SAFETY_CATEGORIES,
    TIERS,
    Failure,
    Trigger,
    find_trigger,
    message_of,
    moderated_message,
    tier_of,
)
from .faults import Dice

Clock = Callable[[], float]
_LOADING, _STORING = 0.2, 0.9  # uneven progress: where in a run it starts and stops rising
PROJECT_ID = "prj_emulator"
WORKSPACE_ID = "ws_emulator"


@dataclass(slots=True)
class RunRecord:
    run_id: str
    spec: TechniqueSpec
    inputs: list[dict[str, str]]
    key: str | None
    body_sha256: str
    created_at: float
    started_at: float
    completed_at: float
    quoted_cost: float  # the technique's run_cost when the run was created
    final_cost: float  # what the account pays if it completes (0 when it fails: refunded)
    failure: Failure | None = None
    answer_lost: bool = False  # lose_answer cut the connection after this run was made

    @property
    def fails(self) -> bool:
        return self.failure is not None

    def status(self, now: float) -> str:
        if now >= self.completed_at:
            return "failed" if self.fails else "completed"
        return "running" if now >= self.started_at else "pending"

    def progress(self, now: float, rises: str = "even") -> int:
        """Whole percents; ``rises`` as EmulatorConfig.progress says."""
        status = self.status(now)
        if status == "pending":
            return 0
        if status != "running":
            return 100
        if rises == "none":
            return 0
        span = self.completed_at - self.started_at
        done = (now - self.started_at) / span if span > 0 else 1.0
        if rises == "uneven":  # a model loading, then outputs being stored
            done = (done - _LOADING) / (_STORING - _LOADING)
        return max(0, min(99, int(100 * done)))

    @property
    def sort_key(self) -> tuple[float, str]:
        return (self.created_at, self.run_id)


@dataclass(slots=True)
class KeyEntry:
    body_sha256: str
    run_id: str
    at: float


class Store:
    """Everything the server remembers. Used from the event loop only, so it needs no locks."""

    def __init__(self, config: EmulatorConfig, clock: Clock = time.time) -> None:
        self.config = config
        self._clock = clock
        self.clock_offset = 0.0  # moved forward by the control panel to skip time
        self.dice = Dice(config.seed)
        self._seq = 0  # never reset, so run ids stay unique for the life of the process
        self.reset()

    def reset(self) -> None:
        self.runs: dict[str, RunRecord] = {}  # creation order
        self.ordered: list[RunRecord] = []  # ascending (created_at, run_id), for paging
        self.keys: dict[str, KeyEntry] = {}
        self._ends: list[float] = []  # heap of completed_at of possibly active runs
        self.committed = 0.0  # cost of runs that will complete, since credits were last set
        self.trigger_counts: dict[str, int] = {}  # FAIL<n>: runs created per exact input text

    def now(self) -> float:
        return self._clock() + self.clock_offset

    # -- idempotency ---------------------------------------------------------------------------

    def remembered(self, key: str) -> KeyEntry | None:
        """The key's first use, if still inside the window; an expired key is forgotten."""
        entry = self.keys.get(key)
        if entry is not None and self.now() - entry.at >= self.config.idempotency_window:
            del self.keys[key]
            return None
        return entry

    # -- runs ----------------------------------------------------------------------------------

    def active(self) -> int:
        now = self.now()
        while self._ends and self._ends[0] <= now:
            heapq.heappop(self._ends)
        return len(self._ends)

    def credits_left(self) -> float | None:
        credits = self.config.faults.credits
        return None if credits is None else credits - self.committed

    def credits_reset(self) -> None:
        """New credits were granted: the balance counts from now."""
        self.committed = 0.0

    def create(
        self, spec: TechniqueSpec, inputs: list[dict[str, str]], key: str | None, sha: str
    ) -> RunRecord:
        cfg, dice, now = self.config, self.dice, self.now()
        pending = dice.lognormal("pending", cfg.pending_mean(), cfg.run_spread)
        running = dice.lognormal("duration", cfg.run_seconds, cfg.run_spread)
        failure = self._failure(inputs)
        final_cost = self._final_cost(spec.run_cost)
        if failure is not None:
            final_cost = 0.0  # failed runs are refunded
        self._seq += 1
        # The sequence leads the id so that, among runs created at the same instant, the
        # tie-break on run_id still follows creation order and cursors stay stable.
        run_id = f"run_{self._seq:08x}{dice.hex('run_id', 16)}"
        rec = RunRecord(
            run_id=run_id,
            spec=spec,
            inputs=inputs,
            key=key,
            body_sha256=sha,
            created_at=now,
            started_at=now + pending,
            completed_at=now + pending + running,
            quoted_cost=spec.run_cost,
            final_cost=final_cost,
            failure=failure,
        )
        self.runs[run_id] = rec
        if not self.ordered or self.ordered[-1].sort_key <= rec.sort_key:
            self.ordered.append(rec)
        else:  # only when an injected clock goes backwards
            bisect.insort(self.ordered, rec, key=lambda r: r.sort_key)
        heapq.heappush(self._ends, rec.completed_at)
        self.committed += final_cost
        if key:
            self.keys[key] = KeyEntry(sha, run_id, now)
        return rec

    def _failure(self, inputs: list[dict[str, str]]) -> Failure | None:
        """How the run will fail, if it will: a trigger in its inputs decides, else the dice."""
        faults, dice = self.config.faults, self.dice
        # Rolled for every run, so the failure stream stays aligned with the creates it sees.
        drawn = dice.roll("fail", faults.fail_rate)
        trigger = find_trigger(inputs)
        if trigger is not None:
            return self._triggered(trigger)
        if not drawn:
            return None
        tier = dice.weighted("fail_tier", faults.fail_mix)
        if tier == "moderated":
            category = dice.choice("safety", SAFETY_CATEGORIES)
            return Failure(MODERATED_CODE, moderated_message(category), "moderated", "drawn")
        code = dice.choice("fail_code", tuple(TIERS[tier]))
        return Failure(code, TIERS[tier][code], tier, "drawn")

    def _triggered(self, trigger: Trigger) -> Failure | None:
        if trigger.count is not None:
            seen = self.trigger_counts.get(trigger.text, 0)
            self.trigger_counts[trigger.text] = seen + 1
            if seen >= trigger.count:
                return None
        code = trigger.code
        if code is None:
            return Failure(*PROVIDER_ERROR, None, "trigger")
        if code.upper() == "MODERATED":
            category = self.dice.choice("safety", SAFETY_CATEGORIES)
            return Failure(MODERATED_CODE, moderated_message(category), "moderated", "trigger")
        return Failure(code, message_of(code), tier_of(code), "trigger")

    def _final_cost(self, quote: float) -> float:
        """The cost a completed run is charged: its quote, or with cost drift, near it."""
        cfg, dice = self.config, self.dice
        # Rolled for every run (failing ones too), so failures and drift move nothing else.
        drifts = dice.roll("cost_drift", cfg.cost_drift_rate)
        if not drifts or cfg.cost_drift <= 0.0:
            return quote
        u = dice.uniform("cost_drift_amount", -1.0, 1.0)
        return round(quote * math.pow(1.0 + cfg.cost_drift, u), 6)

    def newest_first(self, before: tuple[float, str] | None) -> Iterator[RunRecord]:
        """Runs in listing order, starting strictly after a cursor's position."""
        end = len(self.ordered)
        if before is not None:
            end = bisect.bisect_left(self.ordered, before, key=lambda r: r.sort_key)
        for i in range(end - 1, -1, -1):
            yield self.ordered[i]

    # -- the ledger ----------------------------------------------------------------------------

    def charge(self, rec: RunRecord, now: float) -> float | None:
        """What the account really paid for a run: None while it has not ended."""
        status = rec.status(now)
        if status in ("pending", "running"):
            return None
        return rec.final_cost if status == "completed" else 0.0

    def ledger(self) -> dict[str, Any]:
        now = self.now()
        runs: list[dict[str, Any]] = []
        by_key: dict[str, int] = {}
        total = committed = quoted = 0.0
        for rec in self.runs.values():
            cost = self.charge(rec, now)
            total += cost or 0.0
            committed += rec.final_cost
            quoted += rec.quoted_cost
            if rec.key:
                by_key[rec.key] = by_key.get(rec.key, 0) + 1
            failure = rec.failure
            runs.append(
                {
                    "run_id": rec.run_id,
                    "technique_id": rec.spec.technique_id,
                    "idempotency_key": rec.key,
                    "body_sha256": rec.body_sha256,
                    "inputs": rec.inputs,
                    "created_at": round(rec.created_at, 6),
                    "started_at": round(rec.started_at, 6),
                    "completed_at": round(rec.completed_at, 6),
                    "pending_seconds": round(rec.started_at - rec.created_at, 6),
                    "run_seconds": round(rec.completed_at - rec.started_at, 6),
                    "duration_seconds": round(rec.completed_at - rec.created_at, 6),
                    "status": rec.status(now),
                    "charged_cost": cost,
                    "quoted_cost": rec.quoted_cost,
                    "final_cost": rec.final_cost,
                    "error_code": failure.code if failure else None,
                    "error_tier": failure.tier if failure else None,
                    "fail_source": failure.source if failure else None,
                    "answer_lost": rec.answer_lost,
                }
            )
        left = self.credits_left()
        return {
            "runs": runs,
            "charges_total": round(total, 6),
            "charges_committed": round(committed, 6),
            "quotes_total": round(quoted, 6),
            "creates_by_key": by_key,
            "active": self.active(),
            "credits_remaining": None if left is None else round(left, 6),
            "now": now,
        }
