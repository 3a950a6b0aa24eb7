"""The PostgreSQL journal's connection: transactions, the revision every change moves, batches.

One connection in autocommit mode; each transition is one explicit transaction. Commits are
asynchronous (``synchronous_commit = off``: they survive a killed client, and reach the disk
within a fraction of a second) except those that announce an action (a create about to leave),
which wait for the disk as the server is configured to.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Self

import psycopg
from psycopg.rows import TupleRow

from ..records import BatchInfo
from .schema import is_migrated, migrate

Cursor = psycopg.Cursor[TupleRow]

# What a row's run fields are reset to when it starts again, as in the SQLite journal; the
# lease goes with them (a row starting again is nobody's).
_RUN_FIELDS = (
    "run_id = NULL, run_status = NULL, charged_cost = NULL, cost_final = 0, error_code = NULL, "
    "error_message = NULL, outputs = NULL, created_at = NULL, started_at = NULL, "
    "completed_at = NULL, idem_key = NULL, body = NULL, first_sent_at = NULL, last_sent_at = NULL, "
    "resend_after = NULL, quote = NULL, lease_owner = NULL, lease_expires = NULL"
)


def lock_key(kind: str, batch: str) -> int:
    """A stable signed 64-bit advisory lock key for one kind of lock on one batch."""
    digest = hashlib.blake2b(f"batchrun:{kind}:{batch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def is_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


class PgStore:
    def __init__(
        self, url: str, clock: Callable[[], float] = time.time, *, create: bool = True
    ) -> None:
        self.clock = clock
        self._no_downloads: dict[str, bool] = {}
        self._lock = threading.RLock()
        self._db: psycopg.Connection[TupleRow] = psycopg.connect(url, autocommit=True)
        try:
            self._db.execute("SET synchronous_commit = off")
            self._exists = create or is_migrated(self._db)
            if self._exists:
                migrate(self._db)
        except BaseException:
            self._db.close()
            raise

    @classmethod
    def open(cls, url: str, clock: Callable[[], float] = time.time) -> Self:
        """The journal in the database at ``url``, its schema created or brought up to date."""
        return cls(url, clock)

    @classmethod
    def open_existing(cls, url: str) -> Self | None:
        """The journal at ``url`` if the database holds one; nothing is created."""
        store = cls(url, create=False)
        if not store._exists:
            store.close()
            return None
        return store

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self, batch: str | None, durable: bool = False) -> Iterator[Cursor]:
        """A write transaction that moves ``batch``'s revision when it commits. ``durable``:
        committed to disk before it returns (the server's own setting for commits)."""
        with self._lock, self._db.transaction():
            cur = self._db.cursor()
            if durable:
                cur.execute("SET LOCAL synchronous_commit TO DEFAULT")
            yield cur
            if batch is not None:
                self._bump(cur, batch)

    @staticmethod
    def _bump(cur: Cursor, batch: str) -> None:
        """Every committed change moves the revision, so a report can tell it is current. Last
        in its transaction: the batch's row stays locked only for the commit itself."""
        cur.execute("UPDATE batches SET revision = revision + 1 WHERE name = %s", (batch,))

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[TupleRow]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _one(self, sql: str, args: Sequence[Any] = ()) -> TupleRow | None:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def schema_versions(self) -> list[int]:
        return [v for (v,) in self._all("SELECT version FROM schema_migrations ORDER BY 1")]

    def revision(self) -> int:
        """The journal's revision: the sum of its batches' own, so a change to one batch moves
        it as the SQLite journal's single counter moves, and batches never wait on each other."""
        row = self._one("SELECT coalesce(sum(revision), 0)::bigint FROM batches")
        return int(row[0]) if row else 0

    _BATCH_COLS = "name, manifest, columns, created_at, updated_at, fingerprint"

    @staticmethod
    def _info(r: TupleRow) -> BatchInfo:
        return BatchInfo(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5])

    def batch(self, name: str) -> BatchInfo | None:
        r = self._one(f"SELECT {self._BATCH_COLS} FROM batches WHERE name = %s", (name,))
        return None if r is None else self._info(r)

    def batches(self) -> list[BatchInfo]:
        return [
            self._info(r)
            for r in self._all(f"SELECT {self._BATCH_COLS} FROM batches ORDER BY updated_at DESC")
        ]
