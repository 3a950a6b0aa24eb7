"""The Parquet report: typed columns, built without pyarrow importing pandas.

Kept apart from ``report`` so that pyarrow (and numpy under it, together a third of the start-up
time) is imported only when a Parquet report is written: not by `--help`, `status`, `plan`, or
a rerun whose reports are current.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

from .columns import JSON, TIME_COLUMNS

_OUTPUT_TYPE = pa.list_(
    pa.struct([("output_id", pa.string()), ("type", pa.string()), ("url", pa.string())])
)
_TS = pa.timestamp("ms", tz="UTC")
_DOWNLOAD_TYPE = pa.list_(
    pa.struct(
        [("output_id", pa.string()), ("path", pa.string()), ("bytes", pa.int64()),
         ("sha256", pa.string())]
    )
)  # fmt: skip


_ASSET_TYPE = pa.list_(
    pa.struct([("input_id", pa.string()), ("path", pa.string()), ("asset_id", pa.string()),
               ("url", pa.string())])
)  # fmt: skip


def _schema(names: Sequence[str], n_manifest: int) -> pa.Schema:
    types: dict[str, pa.DataType] = {
        "charged_cost": pa.float64(),
        "outputs": _OUTPUT_TYPE,
        "downloads": _DOWNLOAD_TYPE,
        "assets": _ASSET_TYPE,
        "attempt": pa.int32(),
        "created_at": _TS,
        "started_at": _TS,
        "completed_at": _TS,
    }
    fields = [pa.field(n, pa.string()) for n in names[:n_manifest]]
    fields += [pa.field(n, types.get(n, pa.string())) for n in names[n_manifest:]]
    return pa.schema(fields)


class ParquetReport:
    """Buffers rows as JSON lines and writes a row group every 10,000 rows.

    Arrow's JSON reader builds the typed columns: converting Python objects instead makes
    pyarrow import pandas, which costs the command a quarter of a second to start. Timestamps
    travel as integer milliseconds and are relabelled as UTC timestamps (no copy, no parsing)."""

    def __init__(self, path: Path, names: list[str], n_manifest: int) -> None:
        self.names = names
        self.schema = _schema(names, n_manifest)
        self.writer = pq.ParquetWriter(path, self.schema)
        read_schema = pa.schema(
            [pa.field(f.name, pa.int64()) if f.type == _TS else f for f in self.schema]
        )
        self.parse = pj.ParseOptions(explicit_schema=read_schema, unexpected_field_behavior="error")
        self.buffer: list[str] = []

    def add(self, rec: dict[str, Any]) -> None:
        out = dict(rec)
        for col in TIME_COLUMNS:
            v = rec[col]
            out[col] = None if v is None else int(v * 1000)
        self.buffer.append(JSON.encode(out) + "\n")
        if len(self.buffer) >= 10_000:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        data = "".join(self.buffer).encode()
        self.buffer = []
        # One block for the whole buffer: a block must hold whole lines, however long a row is.
        read = pj.ReadOptions(block_size=len(data) + 1, use_threads=False)
        table = pj.read_json(io.BytesIO(data), read_options=read, parse_options=self.parse)
        for col in TIME_COLUMNS:
            i = table.schema.get_field_index(col)
            chunks = [c.view(_TS) for c in table.column(i).chunks]
            table = table.set_column(i, pa.field(col, _TS), pa.chunked_array(chunks, type=_TS))
        self.writer.write_table(table.select(self.names))

    def close(self) -> None:
        self.flush()
        self.writer.close()
