"""Finding the run behind a 409 ``idempotency_duplicate``.

The server holds a run under the row's key but would not say which. The run history lists runs
without their keys, so a run is adopted only where no doubt is possible: it was created inside
the row's send window, no journal in this state directory knows it, and it is the only such run
left once every other row's certain match is taken out. Anything less stays ``in_doubt``.

Keys are the same in every journal (that is what keeps a lost state directory from paying
twice), so a batch started again from another state directory within FLORA's key window gets
409 for every row it sends: those runs were made by the other journal, and the run history
cannot tell which is which. When most of the rows this process sends for the first time meet
a 409, that is what happened: the rows say so, sending stops, and the user chooses.
"""

from __future__ import annotations

import asyncio
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence

from ..errors import ApiError, TransportError
from ..journal import Doubt, JournalStore, ReportRow
from ..models import Run, State
from .context import Batch, Event

CODE = "idempotency_duplicate"
_PAGE = 100
_FAST = 0.1  # seconds between looks while it is not yet known whether keys were used elsewhere
_FAST_FOR = 5.0  # for the first seconds of a batch: the sends that would tell come first
_ANSWERS_TO_JUDGE = 40  # answers after which sends that met no 409 settle that they were not

# The start of a row's error_message when its key was used from another journal.
ELSEWHERE = "sent before under this key from another journal"
ELSEWHERE_WHY = (
    f"{ELSEWHERE} (another --state-dir, a deleted state directory, another machine or folder) "
    "within FLORA's key window: FLORA holds its run but will not say which. "
    "`batchrun status` lists the choices"
)
ELSEWHERE_STOP = (
    "FLORA already held runs under the keys of the rows sent first: this batch was sent from "
    "another journal; sending stopped (see below)"
)


def elsewhere_advice(rows: int) -> list[str]:
    """What the user can do about rows whose keys another journal used, and what each costs."""
    return [
        f"{rows} {'row was' if rows == 1 else 'rows were'} sent before under the same keys "
        "from another journal (another --state-dir, a deleted state directory, another machine "
        "or folder) "
        "within FLORA's key window (2 h per the API reference, 24 h per its docs). FLORA holds "
        "their runs but will not say which, so they cannot be adopted here. Choose one:",
        "  - use that journal: rerun with its --state-dir; it knows the runs, nothing is paid "
        "again",
        "  - wait until the window has passed, then rerun with --resend-in-doubt: new runs, "
        "paid again",
        "  - run them as new work now under another name (--batch NEW_NAME): new runs, paid again",
    ]


def elsewhere_rows(journal: JournalStore, batch: str) -> list[ReportRow]:
    """In-doubt rows whose key another journal had used."""
    return [
        r
        for r in journal.rows_in(batch, [State.IN_DOUBT])
        if (r.error_message or "").startswith(ELSEWHERE)
    ]


def sent_elsewhere(fresh: int, answered: int, done: bool) -> bool | None:
    """Whether 409s on first sends mean the keys were used from another journal: True, False, or
    None while too few sends were answered to tell. ``fresh``: rows this process sent for the
    first time that met a 409; ``answered``: rows that got a run meanwhile. A lost answer
    retried (the only way a journal meets its own key on a first send) is rare: a few of them
    among many runs are that, most sends meeting 409 is not."""
    if fresh >= 3 and fresh >= 4 * answered:
        return True
    if done:
        return fresh >= 2 and fresh >= 4 * answered
    if fresh + answered >= _ANSWERS_TO_JUDGE:
        return False
    return None


_REQUEST = re.compile(r"\((HTTP \d+ .*)\)$")


def match(windows: dict[str, tuple[float, float]], runs: Iterable[Run]) -> dict[str, Run]:
    """Pair rows with runs where the pairing is forced. A row whose window holds exactly one
    candidate owns it; that run is then no one else's candidate; repeat until nothing changes."""
    cands = {
        row: {r.run_id: r for r in runs if r.created_at is None or lo <= r.created_at <= hi}
        for row, (lo, hi) in windows.items()
    }
    owned: dict[str, Run] = {}
    changed = True
    while changed:
        changed = False
        sole: dict[str, list[str]] = defaultdict(list)
        for row, c in cands.items():
            if len(c) == 1:
                sole[next(iter(c))].append(row)
        for run_id, rows in sole.items():
            if len(rows) != 1:
                continue  # two rows claim the same lone run: neither claim is sure
            row = rows[0]
            owned[row] = cands.pop(row)[run_id]
            for other in cands.values():
                other.pop(run_id, None)
            changed = True
    return owned


class Recovery:
    def __init__(self, batch: Batch, sent: asyncio.Event) -> None:
        self.b = batch
        self.sent = sent  # set once the submitter has nothing more to send
        self.recovered = 0
        self.started = batch.wall()
        self.started_mono = batch.mono()
        self.answered_before = self._answered()
        self.elsewhere: bool | None = None  # keys used from another journal? None: not known yet
        self.marked: set[str] = set()

    async def run(self) -> None:
        b = self.b
        tried: frozenset[str] = frozenset()
        last_try = float("-inf")
        while not b.stop.stopping:
            last_round = self.sent.is_set()
            doubts = b.journal.doubtful(b.name, CODE)
            if self.elsewhere is not False:
                self._judge(doubts, last_round)
            ids = frozenset(d.row_id for d in doubts)
            now = b.mono()
            if doubts and (last_round or (ids != tried and now - last_try >= 2.0)):
                try:
                    await self.resolve(doubts)
                except (ApiError, TransportError) as exc:
                    b.emit(Event("notice", {"message": f"run history unavailable: {exc}"}))
                tried, last_try = ids, now
            if last_round:
                return
            # Every 2 s (a tenth of a second while the first sends are judged), or at once
            # when the batch stops or the last send is answered.
            waits = [asyncio.ensure_future(e.wait()) for e in (b.stop.event, self.sent)]
            fast = self.elsewhere is None and now - self.started_mono < _FAST_FOR
            timeout = _FAST if fast else 2.0
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()

    def _answered(self) -> int:
        counts = self.b.journal.counts(self.b.name)
        return sum(counts.get(s.value, 0) for s in (State.SUBMITTED, State.COMPLETED, State.FAILED))

    def _judge(self, doubts: Sequence[Doubt], done: bool) -> None:
        """Were this batch's keys used from another journal? Once they were, every row that
        meets a 409 on its first send says so, and sending stops."""
        b = self.b
        fresh = [
            d for d in doubts if d.first_sent_at is not None and d.first_sent_at >= self.started
        ]
        if self.elsewhere is None:
            if not fresh and not done:
                return
            answered = max(0, self._answered() - self.answered_before)
            self.elsewhere = sent_elsewhere(len(fresh), answered, done)
            if not self.elsewhere:
                return
            b.stop.stop_submitting(ELSEWHERE_STOP)
            b.emit(Event("notice", {"message": ELSEWHERE_STOP}))
        new = {d.row_id for d in fresh} - self.marked
        if not new:
            return
        for row in b.journal.rows_in(b.name, [State.IN_DOUBT]):
            if row.row_id in new:
                found = _REQUEST.search(row.error_message or "")
                why = ELSEWHERE_WHY + (f" ({found.group(1)})" if found else "")
                b.journal.set_state(b.name, [row.row_id], State.IN_DOUBT, CODE, why)
        self.marked |= new

    def _bounds(self) -> tuple[float, float]:
        """How far a run's server created_at may sit from our send times: learnt from the
        creates that did answer; wide while there are too few of them."""
        offsets = self.b.clock_offsets
        if len(offsets) < 5:
            margin = self.b.tuning.clock_margin
            mid = statistics.median(offsets) if offsets else 0.0
            return mid - margin, mid + margin
        spread = max(offsets) - min(offsets)
        return min(offsets) - 0.25 - spread, max(offsets) + 0.25 + spread

    async def resolve(self, doubts: Sequence[Doubt]) -> int:
        b = self.b
        early, late = self._bounds()
        by_technique: dict[str, list[Doubt]] = defaultdict(list)
        for d in doubts:
            by_technique[d.technique_id].append(d)
        adopted = 0
        for technique, group in by_technique.items():
            windows = {
                d.row_id: ((d.first_sent_at or d.marked_at) + early, d.marked_at + late)
                for d in group
            }  # fmt: skip
            start = min(lo for lo, _ in windows.values())
            runs, covered_from = await self._history(technique, start)
            # A window the history did not reach back to could hide the row's own run.
            windows = {row: w for row, w in windows.items() if w[0] >= covered_from}
            known = b.journal.known_run_ids()
            unknown = [r for r in runs if r.run_id not in known]
            found = match(windows, unknown)
            if not found:
                continue
            failed = [(row_id, run, 0) for row_id, run in found.items() if run.status == "failed"]
            b.journal.record_runs(b.name, list(found.items()), b.resends_for(failed))
            for row_id, run in found.items():
                b.settle(row_id, run)
                if not run.finished:
                    b.meter.take()  # the poller releases it when the run ends
                b.emit(Event("notice", {"message": f"row {row_id}: found its run {run.run_id} "
                                        "in the run history"}))  # fmt: skip
            adopted += len(found)
        self.recovered += adopted
        return adopted

    async def _history(self, technique: str, since: float) -> tuple[list[Run], float]:
        """Runs created since ``since``, newest first, and how far back the listing is complete."""
        runs: list[Run] = []
        cursor = None
        for _ in range(self.b.tuning.recovery_pages):
            page = await self.b.client.list_runs(technique, cursor, _PAGE)
            runs.extend(page.runs)
            last = page.last_created_at
            if not page.next_cursor or (last is not None and last < since):
                return runs, float("-inf")
            cursor = page.next_cursor
        stamps = [r.created_at for r in runs if r.created_at is not None]
        return runs, (min(stamps) if stamps else float("inf"))
