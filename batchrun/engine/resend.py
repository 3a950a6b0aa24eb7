"""Failed runs sent again by their error tier (``--retries``): ``retry_now`` codes at once,
``retry_later`` codes after a back-off that grows with each re-send, the others never. Each
re-send is a new attempt under the next attempt's key; the failed one stays in the history."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..journal import Resends
from ..models import Run
from ..tiers import RETRY_LATER, RETRY_NOW, tier_of


@dataclass(frozen=True)
class ResendPolicy:
    retries: int = 2  # more sends a row whose run failed may have
    backoff: float = 30.0  # first wait before a retry_later re-send; doubles each time
    cap: float = 600.0
    jitter: Callable[[], float] = field(default=lambda: random.uniform(0.75, 1.0))

    def when(self, run: Run, retries_used: int, now: float) -> float | None:
        """When a failed run's row is to be sent again; None: not at all."""
        if run.status != "failed" or retries_used >= self.retries:
            return None
        tier = tier_of(run.error_code, run.error_message)
        if tier == RETRY_NOW:
            return now
        if tier == RETRY_LATER:
            return now + min(self.cap, self.backoff * 2.0**retries_used) * self.jitter()
        return None

    def resends(self, runs: Iterable[tuple[str, Run, int]], now: float) -> Resends | None:
        """(row id, run, re-sends used) -> the rows to send again, for the journal."""
        at = {}
        for row_id, run, used in runs:
            due = self.when(run, used, now)
            if due is not None:
                at[row_id] = due
        return Resends(at, self.retries) if at else None
