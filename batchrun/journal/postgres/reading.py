"""Rows read in manifest order, with their downloaded files: what reports and downloads share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..records import Download, ReportRow, report_row
from .assets import pg_row_assets
from .base import PgStore


class PgReading(PgStore):
    def _report_query(
        self, where: str, args: list[Any], batch: str, chunk: int
    ) -> Iterator[ReportRow]:
        # Keyset paging keeps memory flat and lets writers in between.
        self._no_downloads[batch] = (
            self._one("SELECT 1 FROM downloads WHERE batch = %s LIMIT 1", (batch,)) is None
        )
        last = -1
        while True:
            page = self._all(
                "SELECT idx, row_id, technique_id, cells, state, attempt, idem_key, run_id, "
                "run_status, charged_cost, cost_final, error_code, error_message, outputs, "
                "created_at, started_at, completed_at FROM rows "
                f"WHERE batch = %s AND idx > %s {where} ORDER BY idx LIMIT %s",
                (batch, last, *args, chunk),
            )
            if not page:
                return
            files = self._downloads_for(batch, [r[1] for r in page])
            used = pg_row_assets(self._all, batch, [(r[1], r[6]) for r in page])
            for r in page:
                yield report_row(r, files, used)
            last = page[-1][0]

    def _downloads_for(self, batch: str, row_ids: list[str]) -> dict[str, list[Download]]:
        if self._no_downloads.get(batch, False):
            return {}
        out: dict[str, list[Download]] = {}
        for r in self._all(
            "SELECT row_id, output_id, url, path, bytes, sha256 FROM downloads "
            "WHERE batch = %s AND row_id = ANY(%s) ORDER BY row_id, output_id",
            (batch, row_ids),
        ):
            out.setdefault(r[0], []).append(Download(*r))
        return out
