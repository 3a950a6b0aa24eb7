"""What `status` and the reports read, and which written reports are current."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..keys import canonical_json
from ..models import State
from .base import _BY_STATE
from .reading import Reading
from .records import ReportRow


class Views(Reading):
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

    def stats(self, batch: str) -> dict[str, Any]:
        """Numbers for `status`: cost, in-flight runs and the oldest of them, unknown costs."""
        row = self._db.execute(
            "SELECT coalesce(sum(charged_cost), 0), "
            "sum(state IN ('completed', 'failed') AND run_id IS NOT NULL AND cost_final = 0), "
            "min(CASE WHEN state IN ('sending', 'submitted') THEN first_sent_at END), "
            "sum(state IN ('sending', 'submitted')), sum(retries > 0), "
            "sum(retries > 0 AND state = 'completed') "
            "FROM rows WHERE batch = ? AND idx IS NOT NULL",
            (batch,),
        ).fetchone()
        return {
            "charged_cost": float(row[0] or 0),
            "costs_unknown": int(row[1] or 0),
            "oldest_in_flight_sent_at": row[2],
            "in_flight": int(row[3] or 0),
            "retried": int(row[4] or 0),  # rows sent again by their error tier
            "retried_completed": int(row[5] or 0),
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
