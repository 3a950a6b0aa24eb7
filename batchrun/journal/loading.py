"""Loading a manifest into the journal, and starting rows again (what `run` and `plan` ask)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice

from ..keys import canonical_json, content_digest
from ..models import Job, RowProblem, State
from .base import _CHUNK, _RUN_FIELDS, Store
from .records import SyncStats, _inputs_json, problem_row_id


class Loading(Store):
    def plan(self, batch: str, items: Iterable[Job | RowProblem]) -> SyncStats:
        """What loading would do, without writing anything."""
        stats = SyncStats()
        for chunk in _chunks(items):
            self._classify(batch, chunk, stats, write=False)
        return stats

    def sync_manifest(
        self,
        batch: str,
        manifest: str,
        columns: Sequence[str],
        items: Iterable[Job | RowProblem],
        accept_problems: bool,
        fingerprint: str | None = None,
    ) -> tuple[SyncStats, bool]:
        """Load the manifest in one transaction. Rows new to the journal start pending; rows whose
        request changed are archived to history and start again; others keep their state.
        Problems abort the load (nothing changes) unless accepted and none is fatal.
        Returns the stats and whether the load was committed."""
        stats = SyncStats()
        now = self.clock()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "manifest = excluded.manifest, columns = excluded.columns, "
                "updated_at = excluded.updated_at, fingerprint = excluded.fingerprint",
                (batch, manifest, canonical_json(list(columns)), now, now, fingerprint),
            )
            # Rows not seen in this load have left the manifest; the temp table keeps that
            # bookkeeping out of the rows themselves, so unchanged rows are never rewritten.
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS seen (row_id TEXT PRIMARY KEY)")
            self._db.execute("DELETE FROM seen")
            for chunk in _chunks(items):
                self._classify(batch, chunk, stats, write=True)
            stats.removed = self._db.execute(
                "UPDATE rows SET idx = NULL WHERE batch = ? AND idx IS NOT NULL "
                "AND row_id NOT IN (SELECT row_id FROM seen)",
                (batch,),
            ).rowcount
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        if stats.fatal or (stats.problem_count and not accept_problems):
            self._db.execute("ROLLBACK")
            return stats, False
        self._bump()
        self._db.execute("COMMIT")
        return stats, True

    def _classify(
        self, batch: str, chunk: list[Job | RowProblem], stats: SyncStats, write: bool
    ) -> None:
        ids = [it.row_id if isinstance(it, Job) else problem_row_id(it) for it in chunk]
        marks = ",".join("?" * len(ids))
        existing: dict[str, tuple[str, str, int | None, int, str]] = {
            r[0]: r[1:]
            for r in self._db.execute(
                "SELECT row_id, digest, state, idx, line, cells FROM rows "
                f"WHERE batch = ? AND row_id IN ({marks})",
                (batch, *ids),
            )
        }
        now = self.clock()
        inserts, touches, resets = [], [], []
        pending, sending, rejected = State.PENDING.value, State.SENDING.value, State.REJECTED.value
        for row_id, item in zip(ids, chunk, strict=True):
            stats.rows += 1
            if isinstance(item, RowProblem):
                stats.note_problem(item)
                stats.rejected += 1
                state, digest = rejected, "rejected:" + canonical_json(item.reason)
                technique, inputs, error = "", "[]", item.reason
            else:
                state, digest = pending, content_digest(item.technique_id, item.inputs)
                technique, inputs, error = item.technique_id, _inputs_json(item.inputs), None
            cells = canonical_json(list(item.columns))
            old = existing.get(row_id)
            now_state = old[1] if old is not None and old[0] == digest else state
            if now_state in (pending, sending):
                stats.to_send[technique] += 1
            if old is None:
                stats.new += 1
                stats.by_state[state] += 1
                inserts.append(
                    (
                        batch,
                        row_id,
                        item.index,
                        item.line,
                        technique,
                        inputs,
                        digest,
                        cells,
                        state,
                        error and "invalid_row",
                        error,
                        now,
                    )
                )
            elif old[0] == digest:
                stats.unchanged += 1
                stats.by_state[old[1]] += 1
                if old[2:] != (item.index, item.line, cells):
                    touches.append((item.index, item.line, cells, batch, row_id))
            else:
                stats.edited += 1
                stats.by_state[state] += 1
                resets.append(
                    (
                        row_id,
                        item.index,
                        item.line,
                        technique,
                        inputs,
                        digest,
                        cells,
                        state,
                        error and "invalid_row",
                        error,
                        now,
                    )
                )
        if not write:
            return
        self._db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(i,) for i in ids])
        if inserts:
            self._db.executemany(
                "INSERT INTO rows (batch, row_id, idx, line, technique_id, inputs, digest, cells, "
                "state, error_code, error_message, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                inserts,
            )
        if touches:
            self._db.executemany(
                "UPDATE rows SET idx = ?, line = ?, cells = ? WHERE batch = ? AND row_id = ?",
                touches,
            )
        for row_id, *values in resets:
            self._archive(batch, row_id, "edited in the manifest")
            self._db.execute(
                "UPDATE rows SET idx = ?, line = ?, technique_id = ?, inputs = ?, digest = ?, "
                "cells = ?, state = ?, error_code = ?, error_message = ?, updated_at = ?, "
                "attempt = attempt + (CASE WHEN idem_key IS NULL THEN 0 ELSE 1 END), retries = 0, "
                + _RUN_FIELDS.replace("error_code = NULL, error_message = NULL, ", "")
                + " WHERE batch = ? AND row_id = ?",
                (*values, batch, row_id),
            )

    def retry_failed(self, batch: str) -> int:
        """Failed rows of the manifest start again with the next attempt number (a new key)."""
        return self._next_attempt(batch, State.FAILED, "--retry-failed")

    def resend_in_doubt(self, batch: str) -> int:
        """The user's explicit override: in-doubt rows are sent again under a new key."""
        return self._next_attempt(batch, State.IN_DOUBT, "--resend-in-doubt")

    def _next_attempt(self, batch: str, state: State, reason: str) -> int:
        """Rows in ``state`` go back to pending under attempt + 1; the old one goes to history.
        Durable: the attempt number is part of the key, and must not roll back on power loss."""
        with self._tx(durable=True) as db:
            ids = [
                r
                for (r,) in db.execute(
                    "SELECT row_id FROM rows WHERE batch = ? AND state = ? AND idx IS NOT NULL",
                    (batch, state.value),
                )
            ]
            for row_id in ids:
                self._archive(batch, row_id, reason)
                db.execute(
                    f"UPDATE rows SET state = ?, attempt = attempt + 1, retries = 0, {_RUN_FIELDS}, "
                    "updated_at = ? WHERE batch = ? AND row_id = ?",
                    (State.PENDING.value, self.clock(), batch, row_id),
                )
        return len(ids)


def _chunks(items: Iterable[Job | RowProblem]) -> Iterator[list[Job | RowProblem]]:
    it = iter(items)
    while chunk := list(islice(it, _CHUNK)):
        yield chunk
