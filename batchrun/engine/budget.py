"""``--max-cost``: an exact account, so the batch never passes its budget.

Every run holds a reserve from before its create leaves until its final cost is known: the
larger of its quote (the ``charged_cost`` a create or an unfinished run shows) and the estimate
(the technique's ``run_cost``, else the dearest run seen), scaled by the largest final-to-quote
ratio seen so far. A run is sent only when what is charged, plus every reserve, plus its own
reserve stays within the budget. Events move the account at once (no cached view of the
journal), so no order of sends, answers, completions, late costs and re-sends can overrun it,
as long as no final cost exceeds what its run reserved. With no estimate at all, one run at a
time until a cost is seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

_UNBOUNDED = 1 << 30  # runs: more than any batch sends


class Budget:
    def __init__(
        self,
        max_cost: float,
        estimate: float | None,
        charged: float = 0.0,
        open_quotes: Mapping[str, float | None] | None = None,
        dearest: float | None = None,
    ) -> None:
        """``charged``: final costs recorded so far; ``open_quotes``: rows whose run may still
        charge (sent, running, in doubt, or finished with the cost not reported), with the quote
        each showed (None: none seen); ``dearest``: the largest cost charged so far (a resumed
        batch, or another worker's runs, count toward the estimate too)."""
        self.max_cost = max_cost
        self.estimate = estimate
        self.charged = charged
        self._dearest: float | None = dearest  # the largest quote or final cost seen
        self._drift = 1.0  # the largest final / quote ratio seen
        self._quotes: dict[str, float] = {}
        self._reserves: dict[str, float] = {}
        for row_id, quote in (open_quotes or {}).items():
            if quote is not None:
                self._see(quote)
                self._quotes[row_id] = quote
            self._reserves[row_id] = 0.0
        for row_id in self._reserves:
            self._reserves[row_id] = self._reserve_for(self._quotes.get(row_id))

    def _see(self, cost: float) -> None:
        if cost > 0 and (self._dearest is None or cost > self._dearest):
            self._dearest = cost

    def per_run(self) -> float | None:
        """What one more run may cost, as far as anything tells."""
        known = [c for c in (self.estimate, self._dearest) if c is not None]
        return max(known) * self._drift if known else None

    def _reserve_for(self, quote: float | None) -> float:
        per_run = self.per_run() or 0.0
        return max(per_run, (quote or 0.0) * self._drift)

    def committed(self) -> float:
        """Charged so far plus every open reserve."""
        return self.charged + sum(self._reserves.values())

    def allowance(self) -> int:
        """How many more runs may be sent now."""
        left = self.max_cost - self.committed()
        per_run = self.per_run()
        if per_run is None:  # nothing to go on yet: one run at a time until a cost is seen
            return 1 if not self._reserves and left > 0 else 0
        if per_run <= 0:
            return _UNBOUNDED if left >= 0 else 0
        # A vanishing cost (1e-310) makes the quotient infinite: no more than unbounded.
        return max(0, math.floor(min(left / per_run + 1e-9, _UNBOUNDED)))

    # -- events ------------------------------------------------------------------------------

    def sending(self, row_ids: Iterable[str]) -> None:
        """Creates about to leave (first sends, resends of the same key, tier re-sends)."""
        for row_id in row_ids:
            self._reserves[row_id] = max(
                self._reserves.get(row_id, 0.0), self._reserve_for(self._quotes.get(row_id))
            )

    def quoted(self, row_id: str, quote: float | None) -> None:
        """A create's answer or an unfinished run showed this cost: a quote, not the charge."""
        if quote is None:
            return
        self._see(quote)
        self._quotes[row_id] = quote
        if row_id in self._reserves:
            self._reserves[row_id] = max(self._reserves[row_id], quote * self._drift)

    def settled(self, row_id: str, cost: float) -> None:
        """The run's final cost is known."""
        quote = self._quotes.pop(row_id, None)
        if quote and cost > quote:
            self._drift = max(self._drift, cost / quote)
        self._see(cost)
        self._reserves.pop(row_id, None)
        self.charged += cost

    def released(self, row_id: str) -> None:
        """Nothing was created for this row (refused before any run existed)."""
        self._reserves.pop(row_id, None)
        self._quotes.pop(row_id, None)
