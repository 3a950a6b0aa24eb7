"""Finding the run behind a 409 ``idempotency_duplicate``.

The server holds a run under the row's key but would not say which. The run history lists runs
without their keys, so a run is adopted only where no doubt is possible: it was created inside
the row's send window, no journal in this state directory knows it, and it is the only such run
left once every other row's certain match is taken out. Anything less stays ``in_doubt``.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence

from ..errors import ApiError, TransportError
from ..journal import Doubt
from ..models import Run
from .context import Batch, Event

CODE = "idempotency_duplicate"
_PAGE = 100


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

    async def run(self) -> None:
        b = self.b
        tried: frozenset[str] = frozenset()
        while not b.stop.stopping:
            last_round = self.sent.is_set()
            doubts = b.journal.doubtful(b.name, CODE)
            ids = frozenset(d.row_id for d in doubts)
            if doubts and (ids != tried or last_round):
                try:
                    await self.resolve(doubts)
                except (ApiError, TransportError) as exc:
                    b.emit(Event("notice", {"message": f"run history unavailable: {exc}"}))
                tried = ids
            if last_round:
                return
            # Every 2 s, or at once when the batch stops or the last send is answered.
            waits = [asyncio.ensure_future(e.wait()) for e in (b.stop.event, self.sent)]
            await asyncio.wait(waits, timeout=2.0, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()

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
            b.journal.record_runs(b.name, list(found.items()))
            for row_id, run in found.items():
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
