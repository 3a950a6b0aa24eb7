"""The submitter's transitions: rows to send, the write-ahead mark, the answers."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from ..models import Run, State
from .base import _BY_STATE, _RUN_FIELDS, Store
from .records import Resends, RowTask, _inputs_from, run_update


class Sending(Store):
    def _tasks(self, sql: str, args: Sequence[Any]) -> list[RowTask]:
        return [
            RowTask(r[0], r[1], r[2], _inputs_from(r[3]), r[4], r[5], r[6], r[7])
            for r in self._db.execute(sql, args)
        ]

    _TASK_COLS = "row_id, idx, technique_id, inputs, attempt, idem_key, body, first_sent_at"

    def pending(self, batch: str, after_idx: int, limit: int) -> list[RowTask]:
        """The next rows never sent, in manifest order (tier re-sends come by ``resends_due``)."""
        return self._tasks(
            f"SELECT {self._TASK_COLS} FROM rows WHERE batch = ? AND state = ? AND idx > ? "
            "AND resend_after IS NULL ORDER BY idx LIMIT ?",
            (batch, State.PENDING.value, after_idx, limit),
        )

    def resends_due(self, batch: str, now: float, limit: int) -> list[RowTask]:
        """Rows whose failed run is to be sent again by its tier, and whose wait is over."""
        return self._tasks(
            f"SELECT {self._TASK_COLS} FROM rows {_BY_STATE} WHERE batch = ? AND state = ? "
            "AND resend_after <= ? AND idx IS NOT NULL ORDER BY resend_after, idx LIMIT ?",
            (batch, State.PENDING.value, now, limit),
        )

    def next_resend(self, batch: str) -> float | None:
        """When the next tier re-send is due; None when none waits."""
        (at,) = self._db.execute(
            f"SELECT min(resend_after) FROM rows {_BY_STATE} WHERE batch = ? AND state = ? "
            "AND idx IS NOT NULL",
            (batch, State.PENDING.value),
        ).fetchone()
        return None if at is None else float(at)

    def sending(self, batch: str) -> list[RowTask]:
        """Rows whose create may have left without an answer being recorded."""
        return self._tasks(
            f"SELECT {self._TASK_COLS} FROM rows WHERE batch = ? AND state = ? "
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
        with self._tx(durable=True) as db:
            self._update_runs(db, batch, answered, now, keys)
            self._schedule_resends(db, batch, resends, answered)
            db.executemany(
                "UPDATE rows SET state = ?, idem_key = ?, body = ?, resend_after = NULL, "
                "first_sent_at = coalesce(first_sent_at, ?), last_sent_at = ?, updated_at = ? "
                "WHERE batch = ? AND row_id = ?",
                [(State.SENDING.value, k, b, now, now, now, batch, r) for r, k, b in sends],
            )
        return now

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
            with self._tx(durable=bool(resends and resends.at)) as db:
                self._update_runs(db, batch, updates, self.clock(), keys)
                self._schedule_resends(db, batch, resends, updates)

    def _schedule_resends(
        self,
        db: sqlite3.Connection,
        batch: str,
        resends: Resends | None,
        updates: Sequence[tuple[str, Run]],
    ) -> None:
        """Rows whose run (the one just recorded as failed, still the row's own) is sent again."""
        if not resends or not resends.at:
            return
        now, failed = self.clock(), State.FAILED.value
        runs = {row_id: run.run_id for row_id, run in updates}
        for row_id, at in resends.at.items():
            guard = (batch, row_id, failed, runs.get(row_id), resends.limit)
            if (
                db.execute(
                    "SELECT 1 FROM rows WHERE batch = ? AND row_id = ? AND state = ? AND run_id = ? "
                    "AND retries < ?",
                    guard,
                ).fetchone()
                is None
            ):
                continue
            self._archive(batch, row_id, "sent again by its error tier")
            db.execute(
                f"UPDATE rows SET state = ?, attempt = attempt + 1, retries = retries + 1, "
                f"{_RUN_FIELDS}, resend_after = ?, updated_at = ? "
                "WHERE batch = ? AND row_id = ? AND state = ? AND run_id = ? AND retries < ?",
                (State.PENDING.value, at, now, *guard),
            )

    @staticmethod
    def _update_runs(
        db: sqlite3.Connection,
        batch: str,
        updates: Sequence[tuple[str, Run]],
        now: float,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        keys = keys or {}
        rows = [run_update(row_id, run, now, batch, keys.get(row_id)) for row_id, run in updates]
        # Only news of the row's own run counts: a look at a run of an earlier attempt (another
        # worker's sweep, an answer that came late) must not undo a re-send or a later result,
        # nor a create's answer land on a row that moved on to another key (a reload edited it).
        db.executemany(
            "UPDATE rows SET state = ?, run_id = ?, run_status = ?, "
            "charged_cost = coalesce(?, charged_cost), quote = coalesce(?, quote), "
            "cost_final = max(cost_final, ?), "
            "error_code = ?, error_message = ?, outputs = coalesce(?, outputs), "
            "created_at = coalesce(?, created_at), started_at = coalesce(?, started_at), "
            "completed_at = coalesce(?, completed_at), updated_at = ? "
            "WHERE batch = ? AND row_id = ? AND (run_id = ? OR (run_id IS NULL AND NOT EXISTS ("
            "SELECT 1 FROM history h WHERE h.batch = rows.batch AND h.row_id = rows.row_id "
            "AND h.run_id = ?))) AND (? IS NULL OR idem_key = ?)",
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
        with self._tx() as db:
            db.executemany(
                "UPDATE rows SET state = ?, error_code = ?, error_message = ?, updated_at = ? "
                "WHERE batch = ? AND row_id = ?",
                [(state.value, error_code, error_message, now, batch, r) for r in row_ids],
            )

    def unsend(self, batch: str, row_ids: Sequence[str]) -> None:
        """The server refused before creating anything (402, 401): the rows were never sent."""
        now = self.clock()
        with self._tx() as db:
            db.executemany(
                f"UPDATE rows SET state = ?, {_RUN_FIELDS}, updated_at = ? "
                "WHERE batch = ? AND row_id = ?",
                [(State.PENDING.value, now, batch, r) for r in row_ids],
            )
