"""Which rows this process may send, and how many creates it may start: one interface for the
submitter, whatever journal the batch has.

- ``LocalClaims``: one process holds the batch (the SQLite journal's flock), so every pending row
  is its to send, rows left 'sending' are its to resend, and its own meters are the batch's
  limits. Each call is the journal call the submitter always made.
- ``LeasedClaims``: a journal shared by several workers (``Leasing``). Rows are claimed under a
  lease a heartbeat renews; a row is sent only while this worker holds its lease, and a row left
  'sending' by a worker whose lease ran out comes back here to be resent under the same key and
  body. Send slots are taken under a lock that serializes the batch, so ``--concurrency``,
  ``--rate`` and ``--max-cost`` hold for all workers together; a 429 seen here slows them all.

The submitter calls the same methods either way and never asks which it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING

from ..journal import JournalStore, Leasing, Resends, RowTask
from ..models import Run
from .budget import Budget

if TYPE_CHECKING:
    from .context import Batch

DEFAULT_LEASE_SECONDS = 120.0
THROTTLE_SECONDS = 5.0  # how long a 429's lower cap holds for every worker, at least


def worker_id() -> str:
    """A name no other worker shares: host, pid and a random tail (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LocalClaims:
    """The batch is this process's alone: the journal's rows and the local meters decide."""

    recheck = 0.5  # seconds between looks for a free slot when nothing signals one

    def __init__(self, b: Batch) -> None:
        self.b = b
        self.skipped: set[str] = set()  # rows this process could not send (files not ready)

    def unconfirmed(self) -> list[RowTask]:
        """Rows a previous process announced and never heard back about."""
        return self.b.journal.sending(self.b.name)

    def rows(self, after: int, size: int) -> tuple[list[RowTask], list[RowTask]]:
        """(rows to resend under the key and body they carry, rows never sent)."""
        return [], self.b.journal.pending(self.b.name, after, size)

    def resends_due(self, now: float, limit: int) -> list[RowTask]:
        return self.b.journal.resends_due(self.b.name, now, limit)

    def refresh(self, ready: int) -> None:
        """Bring the meters and the budget up to date before room is counted."""

    def slots(self, want: int, rows: int) -> int:
        """How many of ``want`` new creates may start now (the meters counted them already);
        ``rows``: rows at hand to start them with."""
        return want

    async def no_slot(self) -> None:
        """Wait a moment after ``slots`` gave none."""
        await asyncio.sleep(self.recheck)

    def mark(
        self,
        sends: Sequence[tuple[str, str, bytes]],
        answered: Sequence[tuple[str, Run]],
        resends: Resends | None,
        keys: Mapping[str, str],
    ) -> list[str] | None:
        """The write-ahead mark; returns the rows to send, or None for all of them."""
        self.b.journal.mark_sending(self.b.name, sends, answered, resends, keys)
        return None

    def left(self) -> bool:
        """Whether rows this process cannot send now may still come its way."""
        return False

    def throttled(self, retry_after: float | None) -> None:
        """A 429 was seen here (the local meter has already cut its limit)."""

    @contextlib.asynccontextmanager
    async def working(self) -> AsyncIterator[None]:
        """For as long as the batch is worked on here."""
        yield


class LeasedClaims(LocalClaims):
    """One of several workers on a batch in a shared journal."""

    recheck = 0.05  # other workers' runs finishing signal nothing here: look again soon

    def __init__(
        self,
        b: Batch,
        journal: Leasing,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        rate: float | None = None,
        worker: str | None = None,
    ) -> None:
        super().__init__(b)
        self.journal = journal
        self.worker_id = worker or worker_id()
        self.lease_seconds = lease_seconds
        self.rate = rate

    def unconfirmed(self) -> list[RowTask]:
        return []  # rows left 'sending' are claimed once their lease ran out (see ``rows``)

    def rows(self, after: int, size: int) -> tuple[list[RowTask], list[RowTask]]:
        # About one window's worth: rows claimed here wait here, so other workers cannot take
        # them while this one has no slot to send them in.
        limit = max(1, min(size, self.b.meter.limit))
        tasks = self.journal.claim_pending(self.b.name, self.worker_id, limit, self.lease_seconds)
        resume = [t for t in tasks if t.idem_key and t.body is not None and t.first_sent_at]
        fresh = [t for t in tasks if not (t.idem_key and t.body is not None and t.first_sent_at)]
        return resume, fresh

    def resends_due(self, now: float, limit: int) -> list[RowTask]:
        return []  # claimed with the pending rows once due, under a lease like them

    def refresh(self, ready: int) -> None:
        """Runs in flight are the batch's, counted in the journal: the rows 'sending' or
        'submitted' (of any worker, dead ones too) and the slots others hold. ``ready``: rows
        of this worker's, 'sending' already, waiting to be resent: they need no new slot."""
        self.b.meter.in_flight = max(0, self.journal.in_flight_count(self.b.name) - ready)
        self._refresh_budget()

    def _refresh_budget(self) -> None:
        """The budget from the batch-wide figures: what is charged, every run that may still
        charge (whoever sent it), and a run's reserve for each slot other workers hold."""
        b = self.b
        if b.budget is None:
            return
        quotes: dict[str, float | None] = dict(b.journal.open_costs(b.name))
        others = self.journal.slots_held_by_others(b.name, self.worker_id)
        quotes.update({f"\0slot {i}": None for i in range(others)})
        charged = float(b.journal.stats(b.name)["charged_cost"])
        b.budget = Budget(b.budget.max_cost, b.budget.estimate, charged, quotes,
                          b.journal.max_cost(b.name))  # fmt: skip

    def slots(self, want: int, rows: int) -> int:
        want = min(want, rows)
        if want <= 0:
            return 0
        b = self.b
        n = self.journal.take_send_slots(
            b.name, self.worker_id, want, b.meter.limit, self.lease_seconds, self.rate
        )
        if n and b.budget is not None:
            # Counted again with the slots just taken: two workers that both saw room for the
            # last run now each see the other's slot, and neither sends it alone.
            self._refresh_budget()
            allowed = max(0, min(n, b.budget.allowance()))
            if allowed < n:
                self.journal.release_send_slots(b.name, self.worker_id, n - allowed)
                n = allowed
        return n

    async def no_slot(self) -> None:
        await asyncio.sleep(self.recheck * random.uniform(1.0, 2.0))  # workers out of step

    def mark(
        self,
        sends: Sequence[tuple[str, str, bytes]],
        answered: Sequence[tuple[str, Run]],
        resends: Resends | None,
        keys: Mapping[str, str],
    ) -> list[str] | None:
        b = self.b
        marked = self.journal.mark_sending_leased(
            b.name, self.worker_id, sends, answered, resends, keys
        )
        # Slots taken for rows not marked (a lease lost, a resend that needed none) go back.
        self.journal.release_send_slots(b.name, self.worker_id, 1 << 30)
        return marked

    def left(self) -> bool:
        """Rows other workers hold (or held: their leases run out), runs in flight anywhere
        (a failed one may be sent again), tier re-sends not due yet."""
        b = self.b
        b.meter.in_flight = self.journal.in_flight_count(b.name)  # others' answers count too
        waiting = b.journal.pending(b.name, -1, len(self.skipped) + 1)
        return (
            b.meter.in_flight > 0
            or any(t.row_id not in self.skipped for t in waiting)
            or b.journal.next_resend(b.name) is not None
        )

    def throttled(self, retry_after: float | None) -> None:
        seconds = max(retry_after or 0.0, THROTTLE_SECONDS)
        self.journal.throttle(self.b.name, seconds, self.b.meter.limit)

    @contextlib.asynccontextmanager
    async def working(self) -> AsyncIterator[None]:
        """The heartbeat renews this worker's leases and slots, and follows the batch's limits
        as the last `run` or `worker` set them; leaving frees its rows for others at once."""
        self.journal.renew_leases(self.worker_id, self.lease_seconds)
        beat = asyncio.create_task(self._heartbeat())
        try:
            yield
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            self.journal.release_leases(self.worker_id)

    async def _heartbeat(self) -> None:
        every = max(0.2, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(every)
            self.journal.renew_leases(self.worker_id, self.lease_seconds)
            self._follow_limits()

    def _follow_limits(self) -> None:
        limits = self.journal.limits(self.b.name)
        if limits is None:
            return
        meter = self.b.meter
        if limits.concurrency and limits.concurrency != meter.maximum:
            before, meter.maximum = meter.maximum, limits.concurrency
            if meter.limit >= before or meter.limit > meter.maximum:
                meter.limit = meter.maximum  # not cut by a 429 just now: the new cap at once
        self.rate = limits.rate
        if self.b.budget is not None and limits.max_cost is not None:
            self.b.budget.max_cost = limits.max_cost


def claims_for(
    b: Batch,
    journal: JournalStore,
    concurrency: int,
    rate: float | None,
    max_cost: float | None,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
) -> LocalClaims:
    """Leased claims where the journal is shared by several workers (its limits set to these,
    for every worker of the batch), else the local ones."""
    if isinstance(journal, Leasing):
        journal.set_limits(b.name, concurrency, rate, max_cost)
        return LeasedClaims(b, journal, lease_seconds, rate)
    return LocalClaims(b)
