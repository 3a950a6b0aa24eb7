"""The SQLite journal's connection: transactions, the revision every change moves, batches.

Commits that announce an action (a create about to leave) are durable before it happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

from .records import BatchInfo
from .schema import migrate


def _write_ahead_log(db: sqlite3.Connection) -> None:
    """WAL mode (the file keeps it). On a new file that another connection is setting up at the
    same moment, SQLite answers 'locked' at once, without waiting: try again for a while."""
    try:
        db.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        # Imported only here: tenacity costs every command 10 ms to import, and this is rare.
        from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random

        retrying = Retrying(retry=retry_if_exception_type(sqlite3.OperationalError),
                            stop=stop_after_delay(10), wait=wait_random(0.005, 0.05),
                            reraise=True)  # fmt: skip
        for attempt in retrying:
            with attempt:
                db.execute("PRAGMA journal_mode=WAL")


DB_NAME = "journal.sqlite"
_CHUNK = 2000
# Without statistics SQLite prefers walking the whole batch by primary key to this index for
# queries it does not cover; a batch's few rows in one state are what the index is for.
_BY_STATE = "INDEXED BY rows_by_state"
_RUN_FIELDS = (
    "run_id = NULL, run_status = NULL, charged_cost = NULL, cost_final = 0, error_code = NULL, "
    "error_message = NULL, outputs = NULL, created_at = NULL, started_at = NULL, "
    "completed_at = NULL, idem_key = NULL, body = NULL, first_sent_at = NULL, last_sent_at = NULL, "
    "resend_after = NULL, quote = NULL"
)


class Store:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._no_downloads: dict[str, bool] = {}
        new = not path.exists()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if new:
            os.chmod(path, 0o600)
        # First: the other settings and the migrations may wait for another connection.
        self._db.execute("PRAGMA busy_timeout=10000")
        _write_ahead_log(self._db)
        self._db.execute("PRAGMA synchronous=FULL")
        self._sync = "FULL"
        self._db.execute("PRAGMA foreign_keys=ON")
        migrate(self._db)

    @classmethod
    def open(cls, state_dir: Path, clock: Callable[[], float] = time.time) -> Self:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(state_dir / DB_NAME, clock)

    @classmethod
    def open_existing(cls, state_dir: Path) -> Self | None:
        path = state_dir / DB_NAME
        return cls(path) if path.exists() else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
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

    def revision(self) -> int:
        (value,) = self._db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(value)

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

    def _archive(self, batch: str, row_id: str, reason: str) -> None:
        """Keep a row's previous attempt in history; rows never sent leave nothing to keep."""
        self._db.execute(
            "INSERT INTO history SELECT batch, row_id, attempt, digest, state, idem_key, run_id, "
            "run_status, charged_cost, error_code, error_message, outputs, created_at, "
            "completed_at, ?, ? FROM rows WHERE batch = ? AND row_id = ? AND idem_key IS NOT NULL",
            (self.clock(), reason, batch, row_id),
        )
