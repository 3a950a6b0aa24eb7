"""`--download`: which outputs to fetch and what was fetched."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..models import Output, State
from .reading import Reading
from .records import Download


class Downloads(Reading):
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

    def record_download(self, batch: str, d: Download) -> None:
        self._no_downloads.pop(batch, None)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO downloads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (batch, d.row_id, d.output_id, d.url, d.path, d.bytes, d.sha256, self.clock()),
            )
