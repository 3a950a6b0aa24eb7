"""``--max-cost``: no run is sent when what is charged plus what runs in flight may still cost
would pass the budget. Costs a run may still bring are estimated from the technique's
``run_cost``, else from the dearest run seen so far; with no estimate at all, one run at a time."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..journal import Journal


class Budget:
    def __init__(
        self,
        max_cost: float,
        journal: Journal,
        batch: str,
        estimate: float | None,
        in_flight: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_cost = max_cost
        self.journal = journal
        self.batch = batch
        self.estimate = estimate
        self.in_flight = in_flight
        self._clock = clock
        self._cached: tuple[float, float, int, float | None] | None = None

    def _journal_view(self) -> tuple[float, int, float | None]:
        # The sums scan the batch: read them at most a few times a second.
        now = self._clock()
        if self._cached is None or now - self._cached[0] > 0.2:
            s = self.journal.stats(self.batch)
            seen = self.journal.max_cost(self.batch)
            self._cached = (now, s["charged_cost"], s["costs_unknown"], seen)
        return self._cached[1:]

    def committed(self) -> float:
        """Charged so far plus the estimate for runs whose cost is not known yet."""
        charged, unknown, _ = self._journal_view()
        per_run = self._per_run() or 0.0
        return charged + (self.in_flight() + unknown) * per_run

    def _per_run(self) -> float | None:
        seen = self._journal_view()[2]
        if self.estimate is None:
            return seen
        return max(self.estimate, seen or 0.0)

    def allowance(self) -> int:
        """How many more runs may be sent now."""
        per_run = self._per_run()
        left = self.max_cost - self.committed()
        if per_run is None:  # nothing to go on yet: one run at a time until a cost is seen
            return 1 if self.in_flight() == 0 and left > 0 else 0
        if per_run <= 0:
            return 1 << 30 if left >= 0 else 0
        return max(0, math.floor(left / per_run + 1e-9))
