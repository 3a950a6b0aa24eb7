"""The poller: moves in-flight runs to their final state and reads late costs.

One list request (``GET /technique-runs``, newest first, 100 a page) reports on many runs at once;
older runs due a look are read with the next page (or one by one, when the list cannot page).
Sweeps are paced by how fast runs are finishing (``pacing``). A failed run whose error tier calls
for it sends its row again (``resend``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ..errors import ApiError, TransportError
from ..journal import InFlight
from ..models import Run
from .context import Batch, Event
from .pacing import Pacer
from .retry import call, is_retryable

_PAGE = 100
_IDLE = 0.05
T = TypeVar("T")
Heard = tuple[Run, float]  # a run as the server told of it, and when (our clock)


class Poller:
    def __init__(self, batch: Batch, all_sent: asyncio.Event) -> None:
        self.b = batch
        self.all_sent = all_sent  # nothing is left to send: the runs out are the last
        self.pacer = Pacer(batch.tuning.poll_min, batch.tuning.poll_max)
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
            if not flights and costs is None and self.all_sent.is_set():
                return
            last_ended = False  # the sweep found every run out ended
            try:
                done = await self._sweep(flights) if flights else set()
                await self._read_costs(costs or [])
                # Paced by the runs still out: those just found finished are due no more.
                left = [f for f in flights if f.row_id not in done]
                last_ended = bool(flights) and not left
                # No run in flight: look again soon for what the submitter sends or a cost due.
                self.pacer.draining = b.drained
                delay = self.pacer.next(bool(done), left, b.wall()) if left else _IDLE
            except (ApiError, TransportError) as exc:
                delay = self.pacer.backoff()
                if isinstance(exc, ApiError) and exc.status == 429:
                    delay = max(delay, exc.retry_after or 0)  # polls slow down; sends decide alone
                b.emit(Event("waiting", {"reason": f"polling: {exc}", "seconds": delay}))
            self._tell_waiting(flights)
            await self._wait(delay, wake_when_sent=last_ended)

    async def _wait(self, delay: float, wake_when_sent: bool) -> None:
        """Until the next sweep, a stop, or (the runs out just ended) the news that nothing is
        left to send: those were the last, and the batch goes on to its report at once."""
        if wake_when_sent and self.all_sent.is_set():
            return
        events = [self.b.stop.event]
        if wake_when_sent:
            events.append(self.all_sent)
        waits = [asyncio.ensure_future(e.wait()) for e in events]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def _tell_waiting(self, flights: Sequence[InFlight]) -> None:
        """Once everything is sent, the wait for the last runs is said, not silent."""
        now = self.b.mono()
        if not flights or not self.all_sent.is_set() or now - self._told < 30:
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
        seen: dict[str, Heard] = {}
        more: dict[str, str] = {}  # technique -> the cursor of the page after those read
        for technique, wanted in by_technique.items():
            if self._list_works.get(technique, True):
                found, cursor = await self._list_cover(technique, wanted)
                seen.update(found)
                if cursor:
                    more[technique] = cursor
        # Runs older than the pages read are looked at when their progress says they may have
        # ended or they have not been looked at for a while: with the next page, which usually
        # holds them all (one request, as one read on its own would be), then one by one.
        now = self.b.wall()
        due = [f for f in flights if f.run_id not in seen and self.pacer.worth_a_look(f, now)]
        for technique, cursor in more.items():
            ids = {f.run_id for f in due if f.technique_id == technique}
            if ids:
                self.pacer.spend(1)
                try:
                    page, at = await self._call(
                        self.b.client.list_runs, technique, cursor, _PAGE, None, ids
                    )
                except ApiError as exc:
                    if is_retryable(exc):
                        raise
                    continue  # a cursor this server will not take: one by one, then
                seen.update((r.run_id, (r, at)) for r in page.runs if r.run_id in ids)
        due = [f for f in due if f.run_id not in seen]
        self.pacer.spend(len(due))
        for heard in await asyncio.gather(*(self._get(f) for f in due)):
            if heard is not None:
                seen[heard[0].run_id] = heard
        return self._record(flights, seen)

    async def _list_cover(
        self, technique: str, wanted: dict[str, InFlight]
    ) -> tuple[dict[str, Heard], str | None]:
        """Page the run history until it has covered every wanted run (or passed the oldest).
        Returns the runs found and the cursor of the next page, if there is one."""
        oldest = min((f.created_at for f in wanted.values() if f.created_at), default=None)
        found: dict[str, Heard] = {}
        cursor = None
        # Enough pages for every run in flight: the oldest ones may lie beyond them (runs
        # created after them have come and gone), and are cheaper to read one by one.
        cap = -(-len(wanted) // _PAGE)
        for _ in range(cap):
            try:
                self.pacer.spend(1)
                page, at = await self._call(
                    self.b.client.list_runs, technique, cursor, _PAGE, None, wanted
                )
            except ApiError as exc:
                if is_retryable(exc):
                    raise
                # This server (or this technique) has no usable list: read runs one by one.
                self._list_works[technique] = False
                self.b.emit(Event("notice", {"message": f"run list unavailable ({exc}); "
                                             "polling runs one by one"}))  # fmt: skip
                return found, None
            for run in page.runs:
                if run.run_id in wanted:
                    found[run.run_id] = (run, at)
            last = page.last_created_at
            cursor = page.next_cursor
            if len(found) == len(wanted) or not cursor:
                break
            if oldest is not None and last is not None and last < oldest - 1:
                return found, None  # past the oldest run wanted: no further page has it
        return found, cursor

    async def _get(self, flight: InFlight) -> Heard | None:
        async with self._gate:
            try:
                return await self._call(self.b.client.get_run, flight.technique_id, flight.run_id)
            except ApiError as exc:
                if is_retryable(exc):
                    raise
                self.b.emit(Event("notice", {"message": f"run {flight.run_id}: {exc}"}))
                return None

    async def _call(self, fn: Callable[..., Awaitable[T]], *args: Any) -> tuple[T, float]:
        """A read, retried briefly: a blip should not cost a whole sweep interval. Returns the
        answer and when the server wrote it, about halfway through the attempt that got it
        (progress timed after the whole sweep would make every predicted end late by it)."""

        async def attempt() -> tuple[T, float]:
            asked = self.b.wall()
            answer = await fn(*args)
            return answer, (asked + self.b.wall()) / 2

        return await call(attempt, 3, give_up=lambda: self.b.stop.stopping)

    def _record(self, flights: Sequence[InFlight], seen: dict[str, Heard]) -> set[str]:
        b = self.b
        updates, finished, failed = [], [], []
        for f in flights:
            heard = seen.get(f.run_id)
            if heard is None:
                continue
            run, at = heard
            self.pacer.progress(run, at)
            if run.status == f.run_status and not run.finished:
                continue
            updates.append((f.row_id, run))
            if run.finished:
                finished.append((f.row_id, run, f.sent_at))
                if run.status == "failed":
                    failed.append((f.row_id, run, f.retries))
        resends = b.resends_for(failed)
        b.journal.record_runs(b.name, updates, resends)
        for row_id, run, sent_at in finished:
            self.pacer.observe(run, sent_at)
            b.settle(row_id, run)
            b.meter.release()
            b.emit(Event("finished", {"row_id": row_id, "status": run.status,
                                      "cost": run.charged_cost}))  # fmt: skip
            if resends is not None and row_id in resends.at:
                b.emit(Event("retrying", {"row_id": row_id, "code": run.error_code,
                                          "seconds": resends.at[row_id] - b.wall()}))  # fmt: skip
        if finished:
            b.changed.set()
        return {row_id for row_id, _, _ in finished}

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
        for f, heard in zip(due, runs, strict=True):
            run = heard[0] if heard is not None else None
            _, first = self._cost_next[f.row_id]
            self._cost_next[f.row_id] = (now + min(8.0, 2 * (now - first) + 0.1), first)
            if run is not None and run.charged_cost is not None:
                updates.append((f.row_id, run))
                b.settle(f.row_id, run)
                b.emit(Event("cost", {"row_id": f.row_id, "cost": run.charged_cost}))
        b.journal.record_runs(b.name, updates)
