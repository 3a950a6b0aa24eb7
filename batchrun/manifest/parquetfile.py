"""Parquet, read a batch of rows at a time. Lines are numbered as if the file had a header on
line 1, so the first data row is line 2, like every other format."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from .cells import cell_text
from .source import Record

_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


class ParquetSource:
    def __init__(self, path: Path, batch_rows: int) -> None:
        self.path, self.batch_rows = path, max(1, batch_rows)

    def _open(self) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for a bad file
            raise ManifestError(f"{self.path}: not a readable Parquet file ({exc})") from None

    def header(self) -> tuple[list[str], int]:
        with self._open() as file:
            return self._names(file), 1

    def _names(self, file: Any) -> list[str]:
        # pandas stores a DataFrame's non-default index as extra columns; they are not data.
        names = [str(n) for n in file.schema_arrow.names if not _PANDAS_INDEX.fullmatch(str(n))]
        if not names:
            raise ManifestError(f"{self.path}: the file has no columns")
        return names

    def records(self) -> Iterator[Record]:
        line = 1
        try:
            with self._open() as file:
                names = self._names(file)
                for batch in file.iter_batches(batch_size=self.batch_rows, columns=names):
                    columns = [column.to_pylist() for column in batch.columns]
                    for values in zip(*columns, strict=True):
                        line += 1
                        cells = [cell_text(v) for v in values]
                        if any(c is not None and not c.isspace() for c in cells):
                            yield line, cells
        except ManifestError:
            raise
        except Exception as exc:
            raise ManifestError(f"{self.path}:{line + 1}: cannot read the row ({exc})") from None
