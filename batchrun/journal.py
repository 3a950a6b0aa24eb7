"""The journal: one SQLite database per state directory, the single source of truth of a batch.

Everything else reads and writes it through the state transitions below (load, claim, mark sent,
record run, finish...), never through SQL of its own, so another store can take its place.
Writes that announce an action are committed before the action happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from .keys import canonical_json, content_digest
from .models import Input, Job, Output, RowProblem, Run, State
from .schema import migrate

DB_NAME = "journal.sqlite"
_CHUNK = 2000
# Without statistics SQLite prefers walking the whole batch by primary key to this index for
# queries it does not cover; a batch's few rows in one state are what the index is for.
_BY_STATE = "INDEXED BY rows_by_state"
_RUN_FIELDS = (
    "run_id = NULL, run_status = NULL, charged_cost = NULL, cost_final = 0, error_code = NULL, "
    "error_message = NULL, outputs = NULL, created_at = NULL, started_at = NULL, "
    "completed_at = NULL, idem_key = NULL, body = NULL, first_sent_at = NULL, last_sent_at = NULL"
)


@dataclass(frozen=True, slots=True)
class RowTask:
    """What the submitter needs to send one row."""

    row_id: str
    idx: int
    technique_id: str
    inputs: tuple[Input, ...]
    attempt: int
    idem_key: str | None = None
    body: bytes | None = None
    first_sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class InFlight:
    row_id: str
    run_id: str
    technique_id: str
    created_at: float | None
    run_status: str | None
    sent_at: float | None


@dataclass(frozen=True, slots=True)
class Doubt:
    row_id: str
    technique_id: str
    first_sent_at: float | None
    marked_at: float


@dataclass(frozen=True, slots=True)
class Download:
    row_id: str
    output_id: str
    url: str
    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BatchInfo:
    name: str
    manifest: str
    columns: tuple[str, ...]
    created_at: float
    updated_at: float
    fingerprint: str | None = None


@dataclass
class SyncStats:
    """What loading a manifest found, by what each row needs now."""

    rows: int = 0
    new: int = 0
    unchanged: int = 0
    edited: int = 0
    rejected: int = 0
    removed: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    problem_count: int = 0
    fatal: bool = False
    by_state: Counter[str] = field(default_factory=Counter)  # state each manifest row is in now
    to_send: Counter[str] = field(default_factory=Counter)  # rows a run would send, by technique

    def note_problem(self, problem: RowProblem, keep: int = 200) -> None:
        self.problem_count += 1
        self.fatal = self.fatal or problem.fatal
        if len(self.problems) < keep:
            self.problems.append(problem)


@dataclass(frozen=True, slots=True)
class ReportRow:
    idx: int
    row_id: str
    technique_id: str
    cells: list[str | None]
    state: str
    attempt: int
    idem_key: str | None
    run_id: str | None
    run_status: str | None
    charged_cost: float | None
    cost_final: bool
    error_code: str | None
    error_message: str | None
    outputs: list[Output]
    created_at: float | None
    started_at: float | None
    completed_at: float | None
    downloads: list[Download] = field(default_factory=list)


def _inputs_json(inputs: Iterable[Input]) -> str:
    return canonical_json([[i.id, i.type, i.value] for i in inputs])


def _inputs_from(text: str) -> tuple[Input, ...]:
    return tuple(Input(i, t, v) for i, t, v in json.loads(text))


def _outputs_json(outputs: Sequence[Output]) -> str | None:
    if not outputs:
        return None
    return canonical_json([[o.output_id, o.type, o.url] for o in outputs])


def problem_row_id(problem: RowProblem) -> str:
    """Rows too broken to have an id are keyed by their line."""
    return problem.row_id if problem.row_id else f"<line {problem.line}>"


class Journal:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._no_downloads: dict[str, bool] = {}
        new = not path.exists()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if new:
            os.chmod(path, 0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._sync = "FULL"
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA foreign_keys=ON")
        migrate(self._db)

    @classmethod
    def open(cls, state_dir: Path, clock: Callable[[], float] = time.time) -> Journal:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(state_dir / DB_NAME, clock)

    @classmethod
    def open_existing(cls, state_dir: Path) -> Journal | None:
        path = state_dir / DB_NAME
        return cls(path) if path.exists() else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction. ``durable``: flushed to disk before it returns, so it survives
        power loss too. Others survive a killed process (WAL) and reach the disk with the next
        durable commit; losing one to a power cut only sends a row again under the same key."""
        want = "FULL" if durable else "NORMAL"
        if self._sync != want:
            self._db.execute(f"PRAGMA synchronous={want}")
            self._sync = want
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._bump()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _bump(self) -> None:
        """Every committed change moves the revision, so a report can tell it is current."""
        self._db.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")

    def schema_versions(self) -> list[int]:
        return [v for (v,) in self._db.execute("SELECT version FROM schema_migrations ORDER BY 1")]

    # -- batches ---------------------------------------------------------------------------

    def batch(self, name: str) -> BatchInfo | None:
        row = self._db.execute(
            "SELECT name, manifest, columns, created_at, updated_at, fingerprint FROM batches "
            "WHERE name = ?",
            (name,),
        ).fetchone()
        return (
            None if row is None else BatchInfo(row[0], row[1], tuple(json.loads(row[2])), *row[3:])
        )

    def batches(self) -> list[BatchInfo]:
        names = [
            n for (n,) in self._db.execute("SELECT name FROM batches ORDER BY updated_at DESC")
        ]
        return [b for b in map(self.batch, names) if b is not None]

    # -- loading a manifest ----------------------------------------------------------------

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
                "attempt = attempt + (CASE WHEN idem_key IS NULL THEN 0 ELSE 1 END), "
                + _RUN_FIELDS.replace("error_code = NULL, error_message = NULL, ", "")
                + " WHERE batch = ? AND row_id = ?",
                (*values, batch, row_id),
            )

    def _archive(self, batch: str, row_id: str, reason: str) -> None:
        """Keep a row's previous attempt in history; rows never sent leave nothing to keep."""
        self._db.execute(
            "INSERT INTO history SELECT batch, row_id, attempt, digest, state, idem_key, run_id, "
            "run_status, charged_cost, error_code, error_message, outputs, created_at, "
            "completed_at, ?, ? FROM rows WHERE batch = ? AND row_id = ? AND idem_key IS NOT NULL",
            (self.clock(), reason, batch, row_id),
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
                    f"UPDATE rows SET state = ?, attempt = attempt + 1, {_RUN_FIELDS}, "
                    "updated_at = ? WHERE batch = ? AND row_id = ?",
                    (State.PENDING.value, self.clock(), batch, row_id),
                )
        return len(ids)

    # -- transitions -------------------------------------------------------------------------

    def _tasks(self, sql: str, args: Sequence[Any]) -> list[RowTask]:
        return [
            RowTask(r[0], r[1], r[2], _inputs_from(r[3]), r[4], r[5], r[6], r[7])
            for r in self._db.execute(sql, args)
        ]

    _TASK_COLS = "row_id, idx, technique_id, inputs, attempt, idem_key, body, first_sent_at"

    def pending(self, batch: str, after_idx: int, limit: int) -> list[RowTask]:
        """The next rows never sent, in manifest order."""
        return self._tasks(
            f"SELECT {self._TASK_COLS} FROM rows WHERE batch = ? AND state = ? AND idx > ? "
            "ORDER BY idx LIMIT ?",
            (batch, State.PENDING.value, after_idx, limit),
        )

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
    ) -> float:
        """Write-ahead: record (row_id, key, body) as being sent, committed before any POST.
        ``answered``: runs to record as ``record_runs`` would, riding on the same commit."""
        now = self.clock()
        with self._tx(durable=True) as db:
            self._update_runs(db, batch, answered, now)
            db.executemany(
                "UPDATE rows SET state = ?, idem_key = ?, body = ?, "
                "first_sent_at = coalesce(first_sent_at, ?), last_sent_at = ?, updated_at = ? "
                "WHERE batch = ? AND row_id = ?",
                [(State.SENDING.value, k, b, now, now, now, batch, r) for r, k, b in sends],
            )
        return now

    def record_runs(self, batch: str, updates: Sequence[tuple[str, Run]]) -> None:
        """Record what the API said about runs: a create's answer or a poll."""
        if updates:
            with self._tx() as db:
                self._update_runs(db, batch, updates, self.clock())

    @staticmethod
    def _update_runs(
        db: sqlite3.Connection, batch: str, updates: Sequence[tuple[str, Run]], now: float
    ) -> None:
        rows = []
        for row_id, run in updates:
            state = run.status if run.finished else State.SUBMITTED.value
            # A failed run that reports no cost was not charged; only completed ones wait for it.
            final = int(run.finished and (run.charged_cost is not None or run.status == "failed"))
            rows.append(
                (state, run.run_id, run.status, run.charged_cost, final, run.error_code,
                 run.error_message, _outputs_json(run.outputs), run.created_at, run.started_at,
                 run.completed_at, now, batch, row_id)
            )  # fmt: skip
        db.executemany(
            "UPDATE rows SET state = ?, run_id = ?, run_status = ?, "
            "charged_cost = coalesce(?, charged_cost), cost_final = max(cost_final, ?), "
            "error_code = ?, error_message = ?, outputs = coalesce(?, outputs), "
            "created_at = coalesce(?, created_at), started_at = coalesce(?, started_at), "
            "completed_at = coalesce(?, completed_at), updated_at = ? "
            "WHERE batch = ? AND row_id = ?",
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

    # -- downloads ---------------------------------------------------------------------------

    def outputs_to_download(
        self, batch: str, types: Sequence[str]
    ) -> Iterator[tuple[str, list[Output]]]:
        for row in self._report_query("AND state = ?", [State.COMPLETED.value], batch, 1000):
            outs = [o for o in row.outputs if o.type in types and o.url]
            if outs:
                yield row.row_id, outs

    def downloads(self, batch: str) -> dict[tuple[str, str], Download]:
        return {
            (r[0], r[1]): Download(*r)
            for r in self._db.execute(
                "SELECT row_id, output_id, url, path, bytes, sha256 FROM downloads WHERE batch = ?",
                (batch,),
            )
        }

    def _downloads_for(self, batch: str, row_ids: list[str]) -> dict[str, list[Download]]:
        if self._no_downloads.get(batch, False):
            return {}
        out: dict[str, list[Download]] = {}
        for i in range(0, len(row_ids), 500):
            part = row_ids[i : i + 500]
            for r in self._db.execute(
                "SELECT row_id, output_id, url, path, bytes, sha256 FROM downloads "
                f"WHERE batch = ? AND row_id IN ({','.join('?' * len(part))}) ORDER BY output_id",
                (batch, *part),
            ):
                out.setdefault(r[0], []).append(Download(*r))
        return out

    def record_download(self, batch: str, d: Download) -> None:
        self._no_downloads.pop(batch, None)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO downloads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (batch, d.row_id, d.output_id, d.url, d.path, d.bytes, d.sha256, self.clock()),
            )

    # -- reports ---------------------------------------------------------------------------

    def revision(self) -> int:
        (value,) = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(value)

    def current_reports(self, batch: str, paths: Sequence[Path], tag: str) -> Counter[str] | None:
        """Counts per status if every report at ``paths`` was written by this journal at its
        present revision and the files are as they were left; None if any must be rewritten."""
        revision, counts = self.revision(), None
        for path in paths:
            row = self._db.execute(
                "SELECT revision, tag, size, mtime_ns, counts FROM reports "
                "WHERE batch = ? AND path = ?",
                (batch, str(path.resolve())),
            ).fetchone()
            try:
                st = path.stat()
            except OSError:
                return None
            if row is None or tuple(row[:4]) != (revision, tag, st.st_size, st.st_mtime_ns):
                return None
            counts = Counter(json.loads(row[4]))
        return counts

    def record_reports(
        self, batch: str, paths: Sequence[Path], tag: str, counts: Counter[str]
    ) -> None:
        revision = self.revision()
        rows = []
        for path in paths:
            st = path.stat()
            rows.append((batch, str(path.resolve()), revision, tag, st.st_size, st.st_mtime_ns,
                         canonical_json(dict(counts))))  # fmt: skip
        # Not through _tx: recording a report is no change to what a report shows.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?)", rows
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- queries ---------------------------------------------------------------------------

    def in_flight(self, batch: str) -> list[InFlight]:
        return [
            InFlight(*r)
            for r in self._db.execute(
                "SELECT row_id, run_id, technique_id, created_at, run_status, first_sent_at "
                f"FROM rows {_BY_STATE} WHERE batch = ? AND state = ? AND idx IS NOT NULL",
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

    def techniques(self, batch: str, state: State) -> list[str]:
        return [
            t
            for (t,) in self._db.execute(
                f"SELECT DISTINCT technique_id FROM rows {_BY_STATE} WHERE batch = ? AND state = ? "
                "AND idx IS NOT NULL",
                (batch, state.value),
            )
        ]

    def failed_by_technique(self, batch: str) -> Counter[str]:
        return Counter(
            dict(
                self._db.execute(
                    f"SELECT technique_id, count(*) FROM rows {_BY_STATE} "
                    "WHERE batch = ? AND state = ? "
                    "AND idx IS NOT NULL GROUP BY technique_id",
                    (batch, State.FAILED.value),
                ).fetchall()
            )
        )

    def known_run_ids(self) -> set[str]:
        """Every run id this state directory has ever recorded, history included."""
        ids = {r for (r,) in self._db.execute("SELECT run_id FROM rows WHERE run_id IS NOT NULL")}
        ids.update(
            r for (r,) in self._db.execute("SELECT run_id FROM history WHERE run_id IS NOT NULL")
        )
        return ids

    def counts(self, batch: str) -> dict[str, int]:
        return dict(
            self._db.execute(
                "SELECT state, count(*) FROM rows WHERE batch = ? AND idx IS NOT NULL "
                "GROUP BY state",
                (batch,),
            ).fetchall()
        )

    def cost(self, batch: str) -> float:
        (total,) = self._db.execute(
            "SELECT coalesce(sum(charged_cost), 0) FROM rows WHERE batch = ? AND idx IS NOT NULL",
            (batch,),
        ).fetchone()
        return float(total)

    def max_cost(self, batch: str) -> float | None:
        (top,) = self._db.execute(
            "SELECT max(charged_cost) FROM rows WHERE batch = ? AND idx IS NOT NULL", (batch,)
        ).fetchone()
        return None if top is None else float(top)

    def stats(self, batch: str) -> dict[str, Any]:
        """Numbers for `status`: cost, in-flight runs and the oldest of them, unknown costs."""
        row = self._db.execute(
            "SELECT coalesce(sum(charged_cost), 0), "
            "sum(state IN ('completed', 'failed') AND run_id IS NOT NULL AND cost_final = 0), "
            "min(CASE WHEN state IN ('sending', 'submitted') THEN first_sent_at END), "
            "sum(state IN ('sending', 'submitted')) "
            "FROM rows WHERE batch = ? AND idx IS NOT NULL",
            (batch,),
        ).fetchone()
        return {
            "charged_cost": float(row[0] or 0),
            "costs_unknown": int(row[1] or 0),
            "oldest_in_flight_sent_at": row[2],
            "in_flight": int(row[3] or 0),
        }

    def rows_in(self, batch: str, states: Sequence[State]) -> list[ReportRow]:
        marks = ",".join("?" * len(states))
        return list(
            self._report_query(
                f"AND state IN ({marks})", [s.value for s in states], batch, chunk=1000
            )
        )

    def report_rows(self, batch: str, chunk: int = 5000) -> Iterator[ReportRow]:
        """Every row of the current manifest, in manifest order."""
        return self._report_query("", [], batch, chunk)

    def _report_query(
        self, where: str, args: list[Any], batch: str, chunk: int
    ) -> Iterator[ReportRow]:
        # Keyset paging keeps memory flat and lets writers in between.
        self._no_downloads[batch] = (
            self._db.execute("SELECT 1 FROM downloads WHERE batch = ? LIMIT 1", (batch,)).fetchone()
            is None
        )
        last = -1
        while True:
            page = self._db.execute(
                "SELECT idx, row_id, technique_id, cells, state, attempt, idem_key, run_id, "
                "run_status, charged_cost, cost_final, error_code, error_message, outputs, "
                "created_at, started_at, completed_at FROM rows "
                f"WHERE batch = ? AND idx > ? {where} ORDER BY idx LIMIT ?",
                (batch, last, *args, chunk),
            ).fetchall()
            if not page:
                return
            files = self._downloads_for(batch, [r[1] for r in page])
            for r in page:
                yield ReportRow(
                    r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], r[8], r[9],
                    bool(r[10]), r[11], r[12],
                    [Output(*o) for o in json.loads(r[13])] if r[13] else [],
                    r[14], r[15], r[16], files.get(r[1], []),
                )  # fmt: skip
            last = page[-1][0]


def _chunks(items: Iterable[Job | RowProblem]) -> Iterator[list[Job | RowProblem]]:
    it = iter(items)
    while chunk := list(islice(it, _CHUNK)):
        yield chunk
