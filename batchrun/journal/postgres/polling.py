"""What the poller, recovery and the budget read: runs in flight, costs, doubts."""

from __future__ import annotations

from ...models import State
from ..records import Doubt, InFlight
from .base import PgStore

_FLIGHT = "row_id, run_id, technique_id, created_at, run_status, first_sent_at"


class PgPolling(PgStore):
    def in_flight(self, batch: str) -> list[InFlight]:
        return [
            InFlight(*r)
            for r in self._all(
                f"SELECT {_FLIGHT}, retries FROM rows WHERE batch = %s AND state = %s "
                "AND idx IS NOT NULL ORDER BY idx",
                (batch, State.SUBMITTED.value),
            )
        ]

    def cost_unsettled(self, batch: str) -> list[InFlight]:
        """Completed runs whose charged cost has not been reported yet."""
        return [
            InFlight(*r)
            for r in self._all(
                f"SELECT {_FLIGHT} FROM rows WHERE batch = %s AND state = 'completed' "
                "AND cost_final = 0 AND run_id IS NOT NULL AND idx IS NOT NULL ORDER BY idx",
                (batch,),
            )
        ]

    def doubtful(self, batch: str, code: str) -> list[Doubt]:
        """In-doubt rows of one kind, with the window in which their run was created."""
        return [
            Doubt(*r)
            for r in self._all(
                "SELECT row_id, technique_id, first_sent_at, updated_at FROM rows "
                "WHERE batch = %s AND state = %s AND error_code = %s AND idx IS NOT NULL "
                "ORDER BY idx",
                (batch, State.IN_DOUBT.value, code),
            )
        ]

    def known_run_ids(self) -> set[str]:
        """Every run id this journal has ever recorded, history included."""
        return {
            r
            for (r,) in self._all(
                "SELECT run_id FROM rows WHERE run_id IS NOT NULL "
                "UNION SELECT run_id FROM history WHERE run_id IS NOT NULL"
            )
        }

    def techniques(self, batch: str, state: State) -> list[str]:
        return [
            t
            for (t,) in self._all(
                "SELECT technique_id FROM rows WHERE batch = %s AND state = %s "
                "AND idx IS NOT NULL GROUP BY technique_id ORDER BY min(idx)",
                (batch, state.value),
            )
        ]

    def max_cost(self, batch: str) -> float | None:
        row = self._one(
            "SELECT max(charged_cost) FROM rows WHERE batch = %s AND idx IS NOT NULL", (batch,)
        )
        return None if row is None or row[0] is None else float(row[0])

    def open_costs(self, batch: str) -> dict[str, float | None]:
        """Rows whose run may still charge (being sent, running, in doubt, or finished with the
        cost not reported yet), with the quote each showed."""
        return {
            row_id: quote
            for row_id, quote in self._all(
                "SELECT row_id, quote FROM rows WHERE batch = %s AND idx IS NOT NULL AND ("
                "state IN ('sending', 'submitted', 'in_doubt') "
                "OR (state = 'completed' AND cost_final = 0 AND run_id IS NOT NULL)) ORDER BY idx",
                (batch,),
            )
        }
