"""The poller: moves in-flight runs to their final state and reads late costs.

One list request (``GET /technique-runs``, newest first, 100 a page) reports on many runs at once;
runs the list did not cover are read one by one. Sweeps are paced by when runs are expected to
finish, learnt from the runs that did, so short runs are noticed quickly and long ones cost little.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ..errors import ApiError, TransportError
from ..journal import InFlight
from ..models import Run
from .context import Batch, Event
from .retry import call, is_retryable

_PAGE = 100
_IDLE = 0.05
T = TypeVar("T")


class Pacer:
    """How long to wait before the next sweep."""

    def __init__(self, lo: float, hi: float, offsets: Sequence[float] = ()) -> None:
        self.lo, self.hi = lo, hi
        self.duration: float | None = None  # typical run duration, learnt
        self._idle = 0
        self._offsets = offsets  # server created_at minus our send time, recent creates

    def _due(self, f: InFlight, duration: float, skew: float | None) -> float | None:
        """When a run should end, on our clock. From the server's created_at where its clock
        is known to within a few ms of ours (the creates of a wave leave one after another, so
        the send time runs early); never before the send time says, nor much after."""
        if f.sent_at is None:
            return None
        early = f.sent_at + duration
        if skew is None or f.created_at is None:
            return early
        return min(max(f.created_at - skew + duration, early), early + duration / 10)

    def observe(self, run: Run) -> None:
        if run.completed_at and run.created_at and run.completed_at >= run.created_at:
            d = run.completed_at - run.created_at
            self.duration = d if self.duration is None else 0.8 * self.duration + 0.2 * d

    def next(self, found: bool, flights: Sequence[InFlight], now: float) -> float:
        self._idle = 0 if found else self._idle + 1
        if self.duration is None:
            # Until a run has been seen to end: soon at first (runs may be quick), then less often.
            return min(self.hi, 0.05 * 1.5 ** min(self._idle, 12))
        step = min(self.hi, max(self.lo, self.duration / 20))
        skew = None
        if len(self._offsets) >= 5 and max(self._offsets) - min(self._offsets) < 0.1:
            skew = min(self._offsets)  # the create that waited least: our clocks' difference
        due = [d for f in flights if (d := self._due(f, self.duration, skew)) is not None]
        wait = (min(due) - now) if due else step
        # Not before a run is due, but once some are overdue, every `step`.
        return min(self.hi, max(step if wait <= 0 else wait, self.lo))

    def backoff(self) -> float:
        self._idle += 3
        return min(self.hi, 1.0 * 1.5 ** min(self._idle, 12))


class Poller:
    def __init__(self, batch: Batch, finished_sending: Callable[[], bool]) -> None:
        self.b = batch
        self.finished_sending = finished_sending
        self.pacer = Pacer(batch.tuning.poll_min, batch.tuning.poll_max, batch.clock_offsets)
        self._list_works: dict[str, bool] = {}
        self._cost_next: dict[str, tuple[float, float]] = {}  # row -> (next read, first seen)
        self._gate = asyncio.Semaphore(batch.tuning.poll_concurrency)
        self._told = batch.mono()

    async def run(self) -> None:
        b = self.b
        while not b.stop.stopping:
            b.record_answered()
            flights = b.journal.in_flight(b.name)
            costs = self._costs_due()
            if not flights and costs is None and self.finished_sending():
                return
            try:
                done = await self._sweep(flights) if flights else set()
                await self._read_costs(costs or [])
                # Paced by the runs still out: those just found finished are due no more.
                left = [f for f in flights if f.row_id not in done]
                # No run in flight: look again soon for what the submitter sends or a cost due.
                delay = self.pacer.next(bool(done), left, b.wall()) if flights else _IDLE
            except (ApiError, TransportError) as exc:
                delay = self.pacer.backoff()
                if isinstance(exc, ApiError) and exc.status == 429:
                    delay = max(delay, exc.retry_after or 0)  # polls slow down; sends decide alone
                b.emit(Event("waiting", {"reason": f"polling: {exc}", "seconds": delay}))
            self._tell_waiting(flights)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(b.stop.event.wait(), delay)

    def _tell_waiting(self, flights: Sequence[InFlight]) -> None:
        """Once everything is sent, the wait for the last runs is said, not silent."""
        now = self.b.mono()
        if not flights or not self.finished_sending() or now - self._told < 30:
            return
        self._told = now
        sent = [f.sent_at for f in flights if f.sent_at]
        oldest = f", oldest sent {self.b.wall() - min(sent):.0f}s ago" if sent else ""
        self.b.emit(Event("waiting", {"reason": f"waiting for the last {len(flights)} runs{oldest}",
                                      "seconds": None}))  # fmt: skip

    # -- status ----------------------------------------------------------------------------

    async def _sweep(self, flights: Sequence[InFlight]) -> set[str]:
        """Status of every run in flight; returns the rows whose runs finished."""
        by_technique: dict[str, dict[str, InFlight]] = defaultdict(dict)
        for f in flights:
            by_technique[f.technique_id][f.run_id] = f
        seen: dict[str, Run] = {}
        for technique, wanted in by_technique.items():
            if self._list_works.get(technique, True):
                seen.update(await self._list_cover(technique, wanted))
        unseen = [f for f in flights if f.run_id not in seen]
        for run in await asyncio.gather(*(self._get(f) for f in unseen)):
            if run is not None:
                seen[run.run_id] = run
        return self._record(flights, seen)

    async def _list_cover(self, technique: str, wanted: dict[str, InFlight]) -> dict[str, Run]:
        """Page the run history until it has covered every wanted run (or passed the oldest)."""
        oldest = min((f.created_at for f in wanted.values() if f.created_at), default=None)
        found: dict[str, Run] = {}
        cursor = None
        cap = 2 + 2 * (len(wanted) // _PAGE + 1)
        for _ in range(cap):
            try:
                # Our runs are the newest: a page a little larger than what we wait for covers
                # them, and costs the server less to build than a full one.
                limit = min(_PAGE, len(wanted) + 10) if cursor is None else _PAGE
                page = await self._call(
                    self.b.client.list_runs, technique, cursor, limit, None, wanted
                )
            except ApiError as exc:
                if is_retryable(exc):
                    raise
                # This server (or this technique) has no usable list: read runs one by one.
                self._list_works[technique] = False
                self.b.emit(Event("notice", {"message": f"run list unavailable ({exc}); "
                                             "polling runs one by one"}))  # fmt: skip
                return found
            for run in page.runs:
                if run.run_id in wanted:
                    found[run.run_id] = run
            last = page.last_created_at
            if len(found) == len(wanted) or not page.next_cursor:
                break
            if oldest is not None and last is not None and last < oldest - 1:
                break
            cursor = page.next_cursor
        return found

    async def _get(self, flight: InFlight) -> Run | None:
        async with self._gate:
            try:
                return await self._call(self.b.client.get_run, flight.technique_id, flight.run_id)
            except ApiError as exc:
                if is_retryable(exc):
                    raise
                self.b.emit(Event("notice", {"message": f"run {flight.run_id}: {exc}"}))
                return None

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A read, retried briefly: a blip should not cost a whole sweep interval."""
        return await call(lambda: fn(*args), 3, give_up=lambda: self.b.stop.stopping)

    def _record(self, flights: Sequence[InFlight], seen: dict[str, Run]) -> set[str]:
        b = self.b
        updates, finished = [], []
        for f in flights:
            run = seen.get(f.run_id)
            if run is None or (run.status == f.run_status and not run.finished):
                continue
            updates.append((f.row_id, run))
            if run.finished:
                finished.append((f.row_id, run))
        b.journal.record_runs(b.name, updates)
        for row_id, run in finished:
            self.pacer.observe(run)
            b.meter.release()
            b.emit(Event("finished", {"row_id": row_id, "status": run.status,
                                      "cost": run.charged_cost}))  # fmt: skip
        return {row_id for row_id, _ in finished}

    # -- late costs --------------------------------------------------------------------------

    def _costs_due(self) -> list[InFlight] | None:
        """Completed runs still without a cost and due for a read; None when none is waited for."""
        b, now = self.b, self.b.mono()
        unsettled = b.journal.cost_unsettled(b.name)
        waiting, due = False, []
        for f in unsettled:
            next_at, first = self._cost_next.setdefault(f.row_id, (now + 0.1, now))
            if now - first > b.tuning.cost_wait:
                continue  # bounded: the report says this cost is still unknown
            waiting = True
            if next_at <= now:
                due.append(f)
        return due if waiting else None

    async def _read_costs(self, due: Sequence[InFlight]) -> None:
        b, now = self.b, self.b.mono()
        runs = await asyncio.gather(*(self._get(f) for f in due))
        updates = []
        for f, run in zip(due, runs, strict=True):
            _, first = self._cost_next[f.row_id]
            self._cost_next[f.row_id] = (now + min(8.0, 2 * (now - first) + 0.1), first)
            if run is not None and run.charged_cost is not None:
                updates.append((f.row_id, run))
                b.emit(Event("cost", {"row_id": f.row_id, "cost": run.charged_cost}))
        b.journal.record_runs(b.name, updates)
