"""`--download`: which outputs to fetch and what was fetched."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ...models import Output, State
from ..records import Download
from .reading import PgReading


class PgDownloads(PgReading):
    def outputs_to_download(
        self, batch: str, types: Sequence[str]
    ) -> Iterator[tuple[str, list[Output]]]:
        for row in self._report_query("AND state = %s", [State.COMPLETED.value], batch, 1000):
            outs = [o for o in row.outputs if o.type in types and o.url]
            if outs:
                yield row.row_id, outs

    def downloads(self, batch: str) -> dict[tuple[str, str], Download]:
        return {
            (r[0], r[1]): Download(*r)
            for r in self._all(
                "SELECT row_id, output_id, url, path, bytes, sha256, host FROM downloads "
                "WHERE batch = %s",
                (batch,),
            )
        }

    def record_download(self, batch: str, d: Download) -> None:
        self._no_downloads.pop(batch, None)
        with self._tx(batch) as cur:
            cur.execute(
                "INSERT INTO downloads (batch, row_id, output_id, url, path, bytes, sha256, "
                "downloaded_at, host) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (batch, row_id, output_id) DO UPDATE SET url = excluded.url, "
                "path = excluded.path, bytes = excluded.bytes, sha256 = excluded.sha256, "
                "downloaded_at = excluded.downloaded_at, host = excluded.host",
                (batch, d.row_id, d.output_id, d.url, d.path, d.bytes, d.sha256, self.clock(), d.host),
            )  # fmt: skip
