"""Loading a manifest into the PostgreSQL journal, and starting rows again.

The rows are streamed into the server with COPY (memory stays flat whatever the manifest's size)
and classified there in a few set-based statements, with the same outcome as the SQLite journal:
rows new to the journal start pending; rows whose request changed are archived to history and
start again; others keep their state; rows not in this load leave the manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import psycopg

from ...keys import canonical_json, content_digest
from ...models import Job, RowProblem, State
from ..records import SyncStats, _inputs_json, problem_row_id
from .base import _RUN_FIELDS, Cursor, PgStore, lock_key

_PENDING, _SENDING = State.PENDING.value, State.SENDING.value
_REJECTED = State.REJECTED.value
# What each manifest row becomes, in this order: COPY's columns and the temp table's.
_FIELDS = "row_id, idx, line, technique_id, inputs, digest, cells, state, error_code, error_message"


class PgLoading(PgStore):
    def plan(self, batch: str, items: Iterable[Job | RowProblem]) -> SyncStats:
        """What loading would do, without writing anything."""
        stats = SyncStats()
        with self._lock, self._db.transaction(force_rollback=True):
            cur = self._db.cursor()
            if self._batch_is_empty(cur, batch):
                for _ in _all_new(_encoded(items, stats), stats):
                    pass
            else:
                self._stage(cur, _encoded(items, stats))
                self._classify(cur, batch, stats)
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
        """Load the manifest in one transaction. Problems abort the load (nothing changes)
        unless accepted and none is fatal. Returns the stats and whether the load was committed.
        Loads of one batch take turns: a second process loading the same manifest waits, then
        finds every row unchanged."""
        stats = SyncStats()
        now = self.clock()
        committed = False
        with self._tx(batch) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("load", batch),))
            if self._batch_is_empty(cur, batch):
                self._copy_new(cur, batch, _encoded(items, stats), stats, now)
            else:
                self._stage(cur, _encoded(items, stats))
                self._classify(cur, batch, stats)
                if _rejected(stats, accept_problems):
                    stats.removed = self._removed(cur, batch)
                else:
                    self._apply(cur, batch, stats, now)
            if _rejected(stats, accept_problems):
                raise psycopg.Rollback()
            # Last but for the revision: the batch's row stays locked for as short as can be.
            cur.execute(
                "INSERT INTO batches (name, manifest, columns, created_at, updated_at, "
                "fingerprint) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                "manifest = excluded.manifest, columns = excluded.columns, "
                "updated_at = excluded.updated_at, fingerprint = excluded.fingerprint",
                (batch, manifest, canonical_json(list(columns)), now, now, fingerprint),
            )
            committed = True
        return stats, committed

    @staticmethod
    def _batch_is_empty(cur: Cursor, batch: str) -> bool:
        return (
            cur.execute("SELECT 1 FROM rows WHERE batch = %s LIMIT 1", (batch,)).fetchone() is None
        )

    @staticmethod
    def _copy_new(
        cur: Cursor, batch: str, rows: Iterator[tuple[object, ...]], stats: SyncStats, now: float
    ) -> None:
        """The first load of a batch: straight into its table, nothing to compare with."""
        with cur.copy(f"COPY rows (batch, {_FIELDS}, updated_at) FROM STDIN") as copy:
            for r in _all_new(rows, stats):
                copy.write_row((batch, *r, now))

    @staticmethod
    def _stage(cur: Cursor, rows: Iterator[tuple[object, ...]]) -> None:
        cur.execute(
            "CREATE TEMP TABLE incoming (row_id text, idx integer, line integer, "
            "technique_id text, inputs text, digest text, cells text, state text, "
            "error_code text, error_message text) ON COMMIT DROP"
        )
        with cur.copy(f"COPY incoming ({_FIELDS}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        cur.execute("ANALYZE incoming")

    @staticmethod
    def _classify(cur: Cursor, batch: str, stats: SyncStats) -> None:
        """New, unchanged or edited, and the state each row is in now: one pass, grouped."""
        cur.execute(
            "SELECT r.row_id IS NULL, r.digest = i.digest, "
            "CASE WHEN r.digest = i.digest THEN r.state ELSE i.state END, i.technique_id, "
            "count(*) FROM incoming i LEFT JOIN rows r ON r.batch = %s AND r.row_id = i.row_id "
            "GROUP BY 1, 2, 3, 4",
            (batch,),
        )
        for new, same, state, technique, n in cur.fetchall():
            if new:
                stats.new += n
            elif same:
                stats.unchanged += n
            else:
                stats.edited += n
            stats.by_state[state] += n
            if state in (_PENDING, _SENDING):
                stats.to_send[technique] += n

    def _apply(self, cur: Cursor, batch: str, stats: SyncStats, now: float) -> None:
        # The rows this load changes are locked first, in row id order: workers change rows in
        # that order too, so a worker recording answers waits for the load (or the load for
        # it) instead of the two deadlocking over rows the manifest lists in another order.
        cur.execute(
            "SELECT 1 FROM rows r LEFT JOIN incoming i ON i.row_id = r.row_id "
            "WHERE r.batch = %s AND (i.row_id IS NULL AND r.idx IS NOT NULL "
            "OR r.digest <> i.digest OR r.idx IS DISTINCT FROM i.idx OR r.line <> i.line "
            "OR r.cells <> i.cells) ORDER BY r.row_id FOR UPDATE OF r",
            (batch,),
        )
        edited = "r.batch = %s AND r.row_id = i.row_id AND r.digest <> i.digest"
        cur.execute(
            "INSERT INTO history SELECT r.batch, r.row_id, r.attempt, r.digest, r.state, "
            "r.idem_key, r.run_id, r.run_status, r.charged_cost, r.error_code, r.error_message, "
            "r.outputs, r.created_at, r.completed_at, %s, 'edited in the manifest' "
            f"FROM rows r JOIN incoming i ON {edited} WHERE r.idem_key IS NOT NULL",
            (now, batch),
        )
        run_fields = _RUN_FIELDS.replace("error_code = NULL, error_message = NULL, ", "")
        cur.execute(
            "UPDATE rows r SET idx = i.idx, line = i.line, technique_id = i.technique_id, "
            "inputs = i.inputs, digest = i.digest, cells = i.cells, state = i.state, "
            "error_code = i.error_code, error_message = i.error_message, updated_at = %s, "
            "attempt = r.attempt + (CASE WHEN r.idem_key IS NULL THEN 0 ELSE 1 END), retries = 0, "
            f"{run_fields} FROM incoming i WHERE {edited}",
            (now, batch),
        )
        # Unchanged rows that moved in the manifest (edited ones already match).
        cur.execute(
            "UPDATE rows r SET idx = i.idx, line = i.line, cells = i.cells FROM incoming i "
            "WHERE r.batch = %s AND r.row_id = i.row_id AND (r.idx IS DISTINCT FROM i.idx "
            "OR r.line <> i.line OR r.cells <> i.cells)",
            (batch,),
        )
        cur.execute(
            f"INSERT INTO rows (batch, {_FIELDS}, updated_at) "
            f"SELECT %s, {_FIELDS}, %s FROM incoming i WHERE NOT EXISTS "
            "(SELECT 1 FROM rows r WHERE r.batch = %s AND r.row_id = i.row_id)",
            (batch, now, batch),
        )
        cur.execute(
            "UPDATE rows r SET idx = NULL WHERE r.batch = %s AND r.idx IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM incoming i WHERE i.row_id = r.row_id)",
            (batch,),
        )
        stats.removed = cur.rowcount

    @staticmethod
    def _removed(cur: Cursor, batch: str) -> int:
        """How many rows this load would take out of the manifest."""
        row = cur.execute(
            "SELECT count(*) FROM rows r WHERE r.batch = %s AND r.idx IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM incoming i WHERE i.row_id = r.row_id)",
            (batch,),
        ).fetchone()
        return int(row[0]) if row else 0

    def _archive(self, cur: Cursor, batch: str, row_ids: Sequence[str], reason: str) -> None:
        """Keep rows' previous attempt in history; rows never sent leave nothing to keep."""
        cur.execute(
            "INSERT INTO history SELECT batch, row_id, attempt, digest, state, idem_key, run_id, "
            "run_status, charged_cost, error_code, error_message, outputs, created_at, "
            "completed_at, %s, %s FROM rows WHERE batch = %s AND row_id = ANY(%s) "
            "AND idem_key IS NOT NULL",
            (self.clock(), reason, batch, list(row_ids)),
        )

    def retry_failed(self, batch: str) -> int:
        """Failed rows of the manifest start again with the next attempt number (a new key)."""
        return self._next_attempt(batch, State.FAILED, "--retry-failed")

    def resend_in_doubt(self, batch: str) -> int:
        """The user's explicit override: in-doubt rows are sent again under a new key."""
        return self._next_attempt(batch, State.IN_DOUBT, "--resend-in-doubt")

    def _next_attempt(self, batch: str, state: State, reason: str) -> int:
        """Rows in ``state`` go back to pending under attempt + 1; the old one goes to history.
        Durable: the attempt number is part of the key, and must not roll back on a crash."""
        with self._tx(batch, durable=True) as cur:
            ids = [
                r
                for (r,) in cur.execute(
                    "SELECT row_id FROM rows WHERE batch = %s AND state = %s "
                    "AND idx IS NOT NULL ORDER BY row_id FOR UPDATE",
                    (batch, state.value),
                ).fetchall()
            ]
            if ids:
                self._archive(cur, batch, ids, reason)
                cur.execute(
                    f"UPDATE rows SET state = %s, attempt = attempt + 1, retries = 0, {_RUN_FIELDS}, "
                    "updated_at = %s WHERE batch = %s AND row_id = ANY(%s)",
                    (_PENDING, self.clock(), batch, ids),
                )
        return len(ids)


def _rejected(stats: SyncStats, accept_problems: bool) -> bool:
    return stats.fatal or bool(stats.problem_count and not accept_problems)


def _encoded(items: Iterable[Job | RowProblem], stats: SyncStats) -> Iterator[tuple[object, ...]]:
    """Each manifest item as the row it becomes (``_FIELDS``), counting rows and problems."""
    for item in items:
        stats.rows += 1
        cells = canonical_json(list(item.columns))
        if isinstance(item, RowProblem):
            stats.note_problem(item)
            stats.rejected += 1
            yield (
                problem_row_id(item), item.index, item.line, "", "[]",
                "rejected:" + canonical_json(item.reason), cells, _REJECTED, "invalid_row",
                item.reason,
            )  # fmt: skip
        else:
            yield (
                item.row_id, item.index, item.line, item.technique_id, _inputs_json(item.inputs),
                content_digest(item.technique_id, item.inputs), cells, _PENDING, None, None,
            )  # fmt: skip


def _all_new(rows: Iterator[tuple[object, ...]], stats: SyncStats) -> Iterator[tuple[object, ...]]:
    """Rows of a batch with none yet: each is new, in the state it was read in."""
    for r in rows:
        stats.new += 1
        stats.by_state[str(r[7])] += 1
        if r[7] == _PENDING:
            stats.to_send[str(r[3])] += 1
        yield r
