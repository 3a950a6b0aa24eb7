"""Rows read in manifest order, with their downloaded files: what reports and downloads share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .assets import row_assets
from .base import Store
from .records import Download, ReportRow, report_row


class Reading(Store):
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
            used = row_assets(self._db, batch, [(r[1], r[6]) for r in page])
            for r in page:
                yield report_row(r, files, used)
            last = page[-1][0]

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
