"""What the poller, recovery and the budget read: runs in flight, costs, doubts."""

from __future__ import annotations

from ..models import State
from .base import _BY_STATE, Store
from .records import Doubt, InFlight


class Polling(Store):
    def in_flight(self, batch: str) -> list[InFlight]:
        return [
            InFlight(*r)
            for r in self._db.execute(
                "SELECT row_id, run_id, technique_id, created_at, run_status, first_sent_at, "
                f"retries FROM rows {_BY_STATE} WHERE batch = ? AND state = ? AND idx IS NOT NULL",
                (batch, State.SUBMITTED.value),
            )
        ]

    def cost_unsettled(self, batch: str) -> list[InFlight]:
        """Completed runs whose charged cost has not been reported yet."""
        return [
            InFlight(*r)
            for r in self._db.execute(
                "SELECT row_id, run_id, technique_id, created_at, run_status, first_sent_at "
                "FROM rows INDEXED BY rows_by_cost WHERE batch = ? AND state = ? AND cost_final = 0 "
                "AND run_id IS NOT NULL AND idx IS NOT NULL",
                (batch, State.COMPLETED.value),
            )
        ]

    def doubtful(self, batch: str, code: str) -> list[Doubt]:
        """In-doubt rows of one kind, with the window in which their run was created."""
        return [
            Doubt(*r)
            for r in self._db.execute(
                f"SELECT row_id, technique_id, first_sent_at, updated_at FROM rows {_BY_STATE} "
                "WHERE batch = ? AND state = ? AND error_code = ? AND idx IS NOT NULL",
                (batch, State.IN_DOUBT.value, code),
            )
        ]

    def known_run_ids(self) -> set[str]:
        """Every run id this state directory has ever recorded, history included."""
        ids = {r for (r,) in self._db.execute("SELECT run_id FROM rows WHERE run_id IS NOT NULL")}
        ids.update(
            r for (r,) in self._db.execute("SELECT run_id FROM history WHERE run_id IS NOT NULL")
        )
        return ids

    def techniques(self, batch: str, state: State) -> list[str]:
        return [
            t
            for (t,) in self._db.execute(
                f"SELECT DISTINCT technique_id FROM rows {_BY_STATE} WHERE batch = ? AND state = ? "
                "AND idx IS NOT NULL",
                (batch, state.value),
            )
        ]

    def max_cost(self, batch: str) -> float | None:
        (top,) = self._db.execute(
            "SELECT max(charged_cost) FROM rows WHERE batch = ? AND idx IS NOT NULL", (batch,)
        ).fetchone()
        return None if top is None else float(top)

    def open_costs(self, batch: str) -> dict[str, float | None]:
        """Rows whose run may still charge (being sent, running, in doubt, or finished with the
        cost not reported yet), with the quote each showed."""
        return dict(
            self._db.execute(
                "SELECT row_id, quote FROM rows WHERE batch = ? AND idx IS NOT NULL AND ("
                "state IN ('sending', 'submitted', 'in_doubt') "
                "OR (state = 'completed' AND cost_final = 0 AND run_id IS NOT NULL))",
                (batch,),
            ).fetchall()
        )
