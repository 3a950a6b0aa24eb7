"""What `status` and the reports read, and which written reports are current."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ...keys import canonical_json
from ...models import State
from ..records import ReportRow
from .reading import PgReading


class PgViews(PgReading):
    def current_reports(self, batch: str, paths: Sequence[Path], tag: str) -> Counter[str] | None:
        """Counts per status if every report at ``paths`` was written by this journal at its
        present revision and the files are as they were left; None if any must be rewritten."""
        revision, counts = self.revision(), None
        for path in paths:
            row = self._one(
                "SELECT revision, tag, size, mtime_ns, counts FROM reports "
                "WHERE batch = %s AND path = %s",
                (batch, str(path.resolve())),
            )
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
        with self._lock, self._db.transaction():
            self._db.cursor().executemany(
                "INSERT INTO reports VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (batch, path) DO UPDATE SET revision = excluded.revision, "
                "tag = excluded.tag, size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "counts = excluded.counts",
                rows,
            )

    def counts(self, batch: str) -> dict[str, int]:
        return {
            state: int(n)
            for state, n in self._all(
                "SELECT state, count(*) FROM rows WHERE batch = %s AND idx IS NOT NULL "
                "GROUP BY state",
                (batch,),
            )
        }

    def cost(self, batch: str) -> float:
        row = self._one(
            "SELECT coalesce(sum(charged_cost), 0) FROM rows WHERE batch = %s AND idx IS NOT NULL",
            (batch,),
        )
        return float(row[0]) if row else 0.0

    def stats(self, batch: str) -> dict[str, Any]:
        """Numbers for `status`: cost, in-flight runs and the oldest of them, unknown costs."""
        row = self._one(
            "SELECT coalesce(sum(charged_cost), 0), "
            "count(*) FILTER (WHERE state IN ('completed', 'failed') AND run_id IS NOT NULL "
            "AND cost_final = 0), "
            "min(first_sent_at) FILTER (WHERE state IN ('sending', 'submitted')), "
            "count(*) FILTER (WHERE state IN ('sending', 'submitted')), "
            "count(*) FILTER (WHERE retries > 0), "
            "count(*) FILTER (WHERE retries > 0 AND state = 'completed') "
            "FROM rows WHERE batch = %s AND idx IS NOT NULL",
            (batch,),
        )
        assert row is not None  # an aggregate always has its one row
        return {
            "charged_cost": float(row[0] or 0),
            "costs_unknown": int(row[1] or 0),
            "oldest_in_flight_sent_at": row[2],
            "in_flight": int(row[3] or 0),
            "retried": int(row[4] or 0),  # rows sent again by their error tier
            "retried_completed": int(row[5] or 0),
        }

    def rows_in(self, batch: str, states: Sequence[State]) -> list[ReportRow]:
        return list(
            self._report_query(
                "AND state = ANY(%s)", [[s.value for s in states]], batch, chunk=1000
            )
        )

    def report_rows(self, batch: str, chunk: int = 5000) -> Iterator[ReportRow]:
        """Every row of the current manifest, in manifest order."""
        return self._report_query("", [], batch, chunk)

    def failed_by_technique(self, batch: str) -> Counter[str]:
        return Counter(
            {
                t: int(n)
                for t, n in self._all(
                    "SELECT technique_id, count(*) FROM rows WHERE batch = %s AND state = %s "
                    "AND idx IS NOT NULL GROUP BY technique_id",
                    (batch, State.FAILED.value),
                )
            }
        )
