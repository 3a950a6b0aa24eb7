"""Row ids: the id column's value, checked for repeats, or one derived from the row's content.

Derived id (stable across versions; ``tests/test_manifest.py`` pins one)::

    "auto-" + sha256(canonical JSON of [technique_id, [cell, ...]]).hexdigest()[:16] + "-" + n

with the cells the row's report columns in order (null for an empty cell), technique_id the
row's resolved technique ("" when it has none), canonical JSON compact with non-ASCII kept, and
n the occurrence of that content (1 for the first such row, 2 for the next identical one, ...).

Repeats are found through a throwaway on-disk SQLite database, not a set or dict in memory: a
million ids in a Python set would cost more memory than the rest of the run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

_quote = json.encoder.encode_basestring
_PARAMS = 900  # below SQLite's oldest limit on bound parameters


def derived_key(technique: str, cells: Sequence[str | None]) -> str:
    # Spelled out rather than json.dumps(..., separators=(",", ":"), ensure_ascii=False), which
    # builds an encoder per call; a property test holds the two equal.
    quoted = ",".join("null" if c is None else _quote(c) for c in cells)
    payload = f"[{_quote(technique)},[{quoted}]]"
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def derived_id(key: str, occurrence: int) -> str:
    return f"auto-{key}-{occurrence}"


class Registry:
    """What earlier chunks held: the first line of each id, the count of each content key.

    Each chunk costs one ``executemany`` of INSERT OR IGNORE; only when some rows were already
    known (a repeat, which is rare) does it look their earlier values up. Everything happens in
    one transaction that is never committed: the database is thrown away when closed.
    """

    def __init__(self) -> None:
        # An empty name is a private temporary database on disk, deleted when closed. The page
        # cache is capped at 16 MB: a million random content keys cost ~40% less time with it
        # than with 2 MB, and a manifest of 100,000 rows never fills it.
        self._db = sqlite3.connect("", isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-16384",
                       "temp_store=FILE", "locking_mode=EXCLUSIVE"):  # fmt: skip
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, line INTEGER) WITHOUT ROWID")
        # The content key's 64 bits as the integer row key: half the pages of the hex text.
        self._db.execute("CREATE TABLE content (key INTEGER PRIMARY KEY, n INTEGER, chunk INTEGER)")
        self._db.execute("BEGIN")
        self._chunk = 0

    def close(self) -> None:
        self._db.close()

    def first_lines(self, ids: Sequence[tuple[str, int]]) -> list[int | None]:
        """For each ``(id, line)``: the line of an earlier row with this id, or None."""
        firsts: dict[str, int] = {}
        for row_id, line in ids:
            firsts.setdefault(row_id, line)
        earlier: dict[str, int] = {}
        if self._insert("INSERT OR IGNORE INTO ids VALUES (?, ?)", firsts.items()) < len(firsts):
            for row_id, line in self._select("SELECT id, line FROM ids WHERE id IN", firsts):
                if line != firsts[row_id]:
                    earlier[row_id] = line
        out: list[int | None] = []
        for row_id, line in ids:
            first = earlier.get(row_id, firsts[row_id])
            out.append(first if first != line else None)
        return out

    def occurrences(self, keys: Sequence[str]) -> list[int]:
        """For each content key (16 hex digits): 1 for its first row ever, 2 for the next..."""
        self._chunk += 1
        numbers = [_signed64(k) for k in keys]
        counts: dict[int, int] = {}
        for number in numbers:
            counts[number] = counts.get(number, 0) + 1
        rows = [(k, n, self._chunk) for k, n in counts.items()]
        before: dict[int, int] = {}
        if self._insert("INSERT OR IGNORE INTO content VALUES (?, ?, ?)", rows) < len(rows):
            sql = "SELECT key, n, chunk FROM content WHERE key IN"
            for number, n, chunk in self._select(sql, counts):
                if chunk != self._chunk:
                    before[number] = n
            self._insert(
                "UPDATE content SET n = n + ? WHERE key = ?",
                [(counts[k], k) for k in before],
            )
        out = []
        for number in numbers:
            before[number] = before.get(number, 0) + 1
            out.append(before[number])
        return out

    def _insert(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return self._db.executemany(sql, rows).rowcount

    def _select(self, sql: str, keys: Iterable[Any]) -> list[Any]:
        wanted = list(keys)
        found: list[Any] = []
        for i in range(0, len(wanted), _PARAMS):
            part = wanted[i : i + _PARAMS]
            found += self._db.execute(f"{sql} ({','.join('?' * len(part))})", part).fetchall()
        return found


def _signed64(key: str) -> int:
    value = int(key, 16)
    return value - (1 << 64) if value >= 1 << 63 else value
