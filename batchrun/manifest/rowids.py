"""Repeated ids and identical rows, found without holding every id in memory.

A million ids in a Python set would cost more memory than the rest of the run; a throwaway
on-disk SQLite table costs a few MB of cache however long the manifest is.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Sequence

_BATCH = 500


class Registry:
    def __init__(self) -> None:
        fd, self._path = tempfile.mkstemp(prefix="batchrun-ids-", suffix=".sqlite")
        os.close(fd)
        self._db = sqlite3.connect(self._path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-4096",
                       "temp_store=FILE"):  # fmt: skip
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
        self._db.execute("CREATE TABLE seen (key TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID")

    def close(self) -> None:
        self._db.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path + suffix)

    def _lookup(self, table: str, key: str, value: str, keys: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), _BATCH):
            part = unique[i : i + _BATCH]
            marks = ",".join("?" * len(part))
            found.update(
                self._db.execute(
                    f"SELECT {key}, {value} FROM {table} WHERE {key} IN ({marks})", part
                )
            )
        return found

    def first_lines(self, ids: Sequence[tuple[str, int]]) -> list[int | None]:
        """For each (id, line): the line where that id was first seen, if before this one."""
        earlier = self._lookup("ids", "id", "line", [i for i, _ in ids])
        out: list[int | None] = []
        fresh = []
        for row_id, line in ids:
            first = earlier.get(row_id)
            out.append(first)
            if first is None:
                earlier[row_id] = line
                fresh.append((row_id, line))
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO ids VALUES (?, ?)", fresh)
        self._db.execute("COMMIT")
        return out

    def occurrences(self, keys: Sequence[str]) -> list[int]:
        """1 for the first row with this key, 2 for the next identical one, and so on."""
        counts = self._lookup("seen", "key", "n", keys)
        out = []
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
            out.append(counts[key])
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO seen VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET n = excluded.n",
            [(k, counts[k]) for k in dict.fromkeys(keys)],
        )
        self._db.execute("COMMIT")
        return out
