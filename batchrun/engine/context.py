"""What the submitter, poller and recovery share for one batch: the journal, the client, the
meters, the stop signal and the event sink. They never call each other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api import FloraClient
from ..errors import BatchrunError
from ..journal import JournalStore, Resends
from ..models import Run
from .budget import Budget
from .limits import InFlightMeter, RateMeter
from .resend import ResendPolicy

if TYPE_CHECKING:
    from .leases import LocalClaims
    from .uploads import Uploads


@dataclass(frozen=True, slots=True)
class Event:
    """Something a person watching the batch may want to see; the CLI decides how."""

    kind: str  # sent, finished, waiting, notice, stopping
    data: dict[str, Any]


Emit = Callable[[Event], None]


class Stop:
    """Why the batch is stopping, if it is. ``submit_only``: stop sending, keep collecting."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.submit_reason: str | None = None
        self.error: BatchrunError | None = None
        self.event = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self.reason is not None

    @property
    def submitting_stopped(self) -> bool:
        return self.reason is not None or self.submit_reason is not None

    def request(self, reason: str, error: BatchrunError | None = None) -> None:
        if self.reason is None:
            self.reason = reason
            self.error = error
        self.event.set()

    def stop_submitting(self, reason: str) -> None:
        if self.submit_reason is None:
            self.submit_reason = reason
        self.event.set()


@dataclass
class Tuning:
    """Knobs with sensible defaults; exposed where a user may need them."""

    key_window: float = 7200.0  # the server keeps idempotency keys this long (the shorter reading)
    send_attempts: int = 8  # tries of one create before it is put aside
    send_rounds: int = 3  # put-aside rounds before a create is left unconfirmed
    round_delay: float = 15.0
    poll_min: float = 0.005
    poll_max: float = 5.0
    poll_concurrency: int = 8
    cost_wait: float = 60.0  # how long to keep reading a completed run for its late cost
    recovery_pages: int = 50
    clock_margin: float = 5.0


@dataclass
class Batch:
    name: str
    journal: JournalStore
    client: FloraClient
    meter: InFlightMeter
    rate: RateMeter
    emit: Emit
    stop: Stop
    tuning: Tuning = field(default_factory=Tuning)
    callback_url: str | None = None
    mode: str = "async"
    wall: Callable[[], float] = time.time
    mono: Callable[[], float] = time.monotonic
    # server created_at minus local send time, from recent creates: places runs in our windows
    clock_offsets: list[float] = field(default_factory=list)
    # Creates answered, not yet in the journal: they ride on the next write-ahead commit, or are
    # written before the poller reads what is in flight. A process killed before either leaves
    # those rows "sending", and a rerun resends the same keys, which the server replays.
    # (row_id, run, the key it was created under)
    answered: list[tuple[str, Run, str]] = field(default_factory=list)

    # --max-cost's account (None: no budget) and the tier re-send policy (None: --retries 0)
    budget: Budget | None = None
    resend: ResendPolicy | None = None
    # Local files uploaded as assets, awaited before their rows are sent (None: no files)
    assets: Uploads | None = None
    # Set when something the submitter may be waiting for changed: a slot freed, a re-send due.
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    drained: bool = False  # the submitter has nothing left to send for now
    first_drained: asyncio.Event = field(default_factory=asyncio.Event)  # drained, once
    resends_scheduled: bool = False  # rows went back to pending by their tier since the last look
    # Which rows this process may send and how many at once (None: all of them, its meters):
    # with a journal shared by several workers, rows are leased and limits batch-wide.
    claims: LocalClaims | None = None

    def take_answered(
        self,
    ) -> tuple[list[tuple[str, Run]], Resends | None, dict[str, str]]:
        """Answers not yet in the journal, the re-sends their failed runs call for, and the key
        each was created under (an answer for a row since moved to another key is stale)."""
        taken, self.answered = self.answered, []
        runs = [(row_id, run) for row_id, run, _ in taken]
        keys = {row_id: key for row_id, _, key in taken}
        return runs, self.resends_for([(row_id, run, 0) for row_id, run in runs]), keys

    def record_answered(self) -> None:
        if self.answered:
            self.journal.record_runs(self.name, *self.take_answered())

    def resends_for(self, runs: list[tuple[str, Run, int]]) -> Resends | None:
        if self.resend is None or not runs:
            return None
        resends = self.resend.resends(runs, self.wall())
        if resends is not None:
            self.resends_scheduled = True
            self.changed.set()
        return resends

    def settle(self, row_id: str, run: Run) -> None:
        """Tell the budget what a run showed: a quote while it runs, a charge once final."""
        if self.budget is None:
            return
        if run.status == "failed":
            self.budget.settled(row_id, run.charged_cost or 0.0)
        elif run.finished and run.charged_cost is not None:
            self.budget.settled(row_id, run.charged_cost)
        else:
            self.budget.quoted(row_id, run.charged_cost)
