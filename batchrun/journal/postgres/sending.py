"""The submitter's transitions: rows to send, the write-ahead mark, the answers.

Rows change in ``row_id`` order within each transaction, so workers that record answers for the
same rows at once wait for each other instead of deadlocking. A row that leaves 'sending' by an
answer or a verdict also leaves its worker's lease: a status read needs no lease.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...models import Run, State
from ..records import Resends, RowTask, _inputs_from, run_update
from .base import _RUN_FIELDS, Cursor, PgStore

_TASK_COLS = "row_id, idx, technique_id, inputs, attempt, idem_key, body, first_sent_at"


def _task(r: Sequence[Any]) -> RowTask:
    body = None if r[6] is None else bytes(r[6])
    return RowTask(r[0], r[1], r[2], _inputs_from(r[3]), r[4], r[5], body, r[7])


class PgSending(PgStore):
    def _tasks(self, sql: str, args: Sequence[Any]) -> list[RowTask]:
        return [_task(r) for r in self._all(sql, args)]

    def pending(self, batch: str, after_idx: int, limit: int) -> list[RowTask]:
        """The next rows never sent, in manifest order (tier re-sends come by ``resends_due``)."""
        return self._tasks(
            f"SELECT {_TASK_COLS} FROM rows WHERE batch = %s AND state = %s AND idx > %s "
            "AND resend_after IS NULL ORDER BY idx LIMIT %s",
            (batch, State.PENDING.value, after_idx, limit),
        )

    def resends_due(self, batch: str, now: float, limit: int) -> list[RowTask]:
        """Rows whose failed run is to be sent again by its tier, and whose wait is over."""
        return self._tasks(
            f"SELECT {_TASK_COLS} FROM rows WHERE batch = %s AND state = %s "
            "AND resend_after <= %s AND idx IS NOT NULL ORDER BY resend_after, idx LIMIT %s",
            (batch, State.PENDING.value, now, limit),
        )

    def next_resend(self, batch: str) -> float | None:
        """When the next tier re-send is due; None when none waits."""
        row = self._one(
            "SELECT min(resend_after) FROM rows WHERE batch = %s AND state = %s "
            "AND idx IS NOT NULL",
            (batch, State.PENDING.value),
        )
        return None if row is None or row[0] is None else float(row[0])

    def sending(self, batch: str) -> list[RowTask]:
        """Rows whose create may have left without an answer being recorded."""
        return self._tasks(
            f"SELECT {_TASK_COLS} FROM rows WHERE batch = %s AND state = %s "
            "AND idx IS NOT NULL ORDER BY idx",
            (batch, State.SENDING.value),
        )

    def mark_sending(
        self,
        batch: str,
        sends: Sequence[tuple[str, str, bytes]],
        answered: Sequence[tuple[str, Run]] = (),
        resends: Resends | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> float:
        """Write-ahead: record (row_id, key, body) as being sent, committed before any POST.
        ``answered``: runs to record as ``record_runs`` would, riding on the same commit."""
        now = self.clock()
        with self._tx(batch, durable=True) as cur:
            self._lock_in_order(cur, batch, answered, sends)
            self._update_runs(cur, batch, answered, now, keys)
            self._schedule_resends(cur, batch, resends, answered)
            self._mark(cur, batch, sends, now)
        return now

    @staticmethod
    def _lock_in_order(
        cur: Cursor,
        batch: str,
        answered: Sequence[tuple[str, Run]],
        sends: Sequence[tuple[str, str, bytes]],
    ) -> None:
        """Answers and write-aheads in one commit change two sets of rows: both are locked
        first, together in row id order, as loads and the other write-aheads change rows."""
        if answered and sends:
            ids = sorted({r for r, _ in answered} | {r for r, _, _ in sends})
            cur.execute(
                "SELECT 1 FROM rows WHERE batch = %s AND row_id = ANY(%s) ORDER BY row_id "
                "FOR UPDATE",
                (batch, ids),
            )

    @staticmethod
    def _mark(
        cur: Cursor,
        batch: str,
        sends: Sequence[tuple[str, str, bytes]],
        now: float,
        worker_id: str | None = None,
    ) -> list[str]:
        """Rows to 'sending' with their key and body; with ``worker_id``, only the rows whose
        lease that worker holds now. Returns the rows marked."""
        if not sends:
            return []
        ordered = sorted(sends)
        held = (
            ""
            if worker_id is None
            else "AND r.lease_owner = %(worker)s AND r.lease_expires > now() "
        )
        cur.execute(
            "UPDATE rows r SET state = %(state)s, idem_key = s.key, body = s.body, "
            "resend_after = NULL, "
            "first_sent_at = coalesce(r.first_sent_at, %(now)s), last_sent_at = %(now)s, "
            "updated_at = %(now)s FROM unnest(%(ids)s::text[], %(keys)s::text[], "
            "%(bodies)s::bytea[]) AS s(row_id, key, body) "
            f"WHERE r.batch = %(batch)s AND r.row_id = s.row_id {held}RETURNING r.row_id",
            {
                "state": State.SENDING.value,
                "now": now,
                "ids": [r for r, _, _ in ordered],
                "keys": [k for _, k, _ in ordered],
                "bodies": [b for _, _, b in ordered],
                "batch": batch,
                "worker": worker_id,
            },
        )
        return [r for (r,) in cur.fetchall()]

    def record_runs(
        self,
        batch: str,
        updates: Sequence[tuple[str, Run]],
        resends: Resends | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        """Record what the API said about runs: a create's answer or a poll. ``resends``: failed
        runs whose rows go back to pending under the next attempt, in the same commit (durable:
        the attempt number is part of the next key). ``keys``: the key each answered create
        was sent under; an answer for a row that has moved on to another key since (a reload
        edited it) is not recorded."""
        if updates:
            with self._tx(batch, durable=bool(resends and resends.at)) as cur:
                self._update_runs(cur, batch, updates, self.clock(), keys)
                self._schedule_resends(cur, batch, resends, updates)

    def _schedule_resends(
        self,
        cur: Cursor,
        batch: str,
        resends: Resends | None,
        updates: Sequence[tuple[str, Run]],
    ) -> None:
        """Failed rows with tier re-sends left go back to pending under the next attempt, not
        before their time; the failed attempt goes to history. Only a row whose own run is the
        one that failed: two workers seeing the same failure send it again once."""
        if not resends or not resends.at:
            return
        runs = {row_id: run.run_id for row_id, run in updates}
        ids = sorted(resends.at)
        args = {
            "batch": batch,
            "ids": ids,
            "runs": [runs.get(r) for r in ids],
            "due": [resends.at[r] for r in ids],
            "failed": State.FAILED.value,
            "limit": resends.limit,
            "now": self.clock(),
            "pending": State.PENDING.value,
        }
        cur.execute(
            "INSERT INTO history SELECT r.batch, r.row_id, r.attempt, r.digest, r.state, "
            "r.idem_key, r.run_id, r.run_status, r.charged_cost, r.error_code, r.error_message, "
            "r.outputs, r.created_at, r.completed_at, %(now)s, 'sent again by its error tier' "
            "FROM rows r JOIN unnest(%(ids)s::text[], %(runs)s::text[]) AS s(row_id, run_id) "
            "ON r.row_id = s.row_id AND r.run_id = s.run_id WHERE r.batch = %(batch)s "
            "AND r.state = %(failed)s AND r.retries < %(limit)s AND r.idem_key IS NOT NULL",
            args,
        )
        run_fields = _RUN_FIELDS.replace("resend_after = NULL, ", "")
        cur.execute(
            "UPDATE rows r SET state = %(pending)s, attempt = r.attempt + 1, "
            f"retries = r.retries + 1, {run_fields}, resend_after = s.due, updated_at = %(now)s "
            "FROM unnest(%(ids)s::text[], %(due)s::double precision[], %(runs)s::text[]) "
            "AS s(row_id, due, run_id) "
            "WHERE r.batch = %(batch)s AND r.row_id = s.row_id AND r.state = %(failed)s "
            "AND r.run_id = s.run_id AND r.retries < %(limit)s",
            args,
        )

    @staticmethod
    def _update_runs(
        cur: Cursor,
        batch: str,
        updates: Sequence[tuple[str, Run]],
        now: float,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        if not updates:
            return
        keys = keys or {}
        # In row order: two workers updating the same rows take their locks in one order.
        rows = [
            run_update(r, run, now, batch, keys.get(r))
            for r, run in sorted(updates, key=lambda u: u[0])
        ]
        # Only news of the row's own run counts: another worker's sweep that saw a run of an
        # earlier attempt must not undo a re-send or a later result, nor a create's answer land
        # on a row that moved on to another key (a reload edited it while the create was out).
        cur.executemany(
            "UPDATE rows SET state = %s, run_id = %s, run_status = %s, "
            "charged_cost = coalesce(%s::double precision, charged_cost), "
            "quote = coalesce(%s::double precision, quote), "
            "cost_final = greatest(cost_final, %s::integer), "
            "error_code = %s, error_message = %s, outputs = coalesce(%s::text, outputs), "
            "created_at = coalesce(%s::double precision, created_at), "
            "started_at = coalesce(%s::double precision, started_at), "
            "completed_at = coalesce(%s::double precision, completed_at), updated_at = %s, "
            "lease_owner = NULL, lease_expires = NULL "
            "WHERE batch = %s AND row_id = %s AND (run_id = %s OR (run_id IS NULL AND NOT EXISTS ("
            "SELECT 1 FROM history h WHERE h.batch = rows.batch AND h.row_id = rows.row_id "
            "AND h.run_id = %s))) AND (%s::text IS NULL OR idem_key = %s)",
            rows,
        )

    def set_state(
        self,
        batch: str,
        row_ids: Sequence[str],
        state: State,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        now = self.clock()
        with self._tx(batch) as cur:
            cur.execute(
                "UPDATE rows SET state = %s, error_code = %s, error_message = %s, "
                "updated_at = %s, lease_owner = NULL, lease_expires = NULL "
                "WHERE batch = %s AND row_id = ANY(%s)",
                (state.value, error_code, error_message, now, batch, sorted(row_ids)),
            )

    def unsend(self, batch: str, row_ids: Sequence[str]) -> None:
        """The server refused before creating anything (402, 401): the rows were never sent."""
        now = self.clock()
        with self._tx(batch) as cur:
            cur.execute(
                f"UPDATE rows SET state = %s, {_RUN_FIELDS}, updated_at = %s "
                "WHERE batch = %s AND row_id = ANY(%s)",
                (State.PENDING.value, now, batch, sorted(row_ids)),
            )
