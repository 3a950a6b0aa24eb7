"""One reader per file format, each yielding a header and then raw records, streamed.

A record is ``(line, cells)`` with ``cells`` a list of texts (None for empty), or
``(line, problem)`` when the record cannot even be split into cells.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from .cells import cell_text

Record = tuple[int, list[str | None] | str]

SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".xlsx", ".parquet")
NATIVE = "inputs"


def check_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ManifestError(
            f"{path}: unknown manifest format '{suffix or '(none)'}'; use {', '.join(SUFFIXES)}"
        )
    if not path.is_file():
        raise ManifestError(f"{path}: no such file")
    return suffix


class CsvReader:
    def __init__(self, path: Path, delimiter: str = ",") -> None:
        self.path, self.delimiter = path, delimiter

    def header(self) -> list[str]:
        for _, cells in self._records(header=True):
            return [c or "" for c in cells]
        raise ManifestError(f"{self.path}: the file is empty (no header row)")

    def records(self) -> Iterator[Record]:
        first = True
        for rec in self._records(header=False):
            if first:
                first = False
                continue
            yield rec

    def _records(self, header: bool) -> Iterator[Record]:
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as fh:
                reader = csv.reader(fh, delimiter=self.delimiter)
                last = 0
                for row in reader:
                    start, last = last + 1, reader.line_num
                    if not any(cell.strip() for cell in row):
                        continue
                    yield start, [c if c != "" else None for c in row]
        except UnicodeDecodeError as exc:
            raise ManifestError(
                f"{self.path}: not UTF-8 text (byte {exc.start} of a block near line "
                f"{last + 1}); save it as CSV UTF-8"
            ) from None
        except csv.Error as exc:
            raise ManifestError(f"{self.path}:{last + 1}: {exc}") from None
        except OSError as exc:
            raise ManifestError(f"{self.path}: cannot read: {exc.strerror}") from None


class XlsxReader:
    def __init__(self, path: Path, sheet: str | None) -> None:
        self.path, self.sheet = path, sheet
        self._header_line = 1

    def _rows(self) -> Iterator[tuple[int, list[str | None]]]:
        from openpyxl import load_workbook

        try:
            wb = load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a bad file
            raise ManifestError(f"{self.path}: not a readable XLSX workbook ({exc})") from None
        try:
            if self.sheet is None:
                ws = wb.worksheets[0]
            elif self.sheet in wb.sheetnames:
                ws = wb[self.sheet]
            else:
                raise ManifestError(
                    f"{self.path}: no sheet '{self.sheet}' (sheets: {', '.join(wb.sheetnames)})"
                )
            for number, row in enumerate(ws.iter_rows(), start=1):
                cells = [cell_text(c.value, getattr(c, "number_format", None)) for c in row]
                if any(c is not None and c.strip() for c in cells):
                    yield number, cells
        finally:
            wb.close()

    def header(self) -> list[str]:
        for line, cells in self._rows():
            self._header_line = line
            while cells and cells[-1] is None:
                cells.pop()
            return [c or "" for c in cells]
        raise ManifestError(f"{self.path}: the sheet is empty (no header row)")

    def records(self) -> Iterator[Record]:
        rows = self._rows()
        next(rows, None)
        yield from rows


class ParquetReader:
    def __init__(self, path: Path, chunk: int) -> None:
        self.path, self.chunk = path, chunk

    def _file(self) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except Exception as exc:
            raise ManifestError(f"{self.path}: not a readable Parquet file ({exc})") from None

    def header(self) -> list[str]:
        return list(self._file().schema_arrow.names)

    def records(self) -> Iterator[Record]:
        line = 1
        for batch in self._file().iter_batches(batch_size=self.chunk):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for values in zip(*columns, strict=True):
                line += 1
                cells = [cell_text(v) for v in values]
                if any(c is not None and c.strip() for c in cells):
                    yield line, cells


def json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return cell_text(value)


class JsonlReader:
    """Columns are every key any row uses, in first-seen order (one quick pass to learn them)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _objects(self) -> Iterator[tuple[int, dict[str, Any] | str]]:
        try:
            with open(self.path, encoding="utf-8-sig") as fh:
                for number, text in enumerate(fh, start=1):
                    if not text.strip():
                        continue
                    try:
                        obj = json.loads(text)
                    except json.JSONDecodeError as exc:
                        yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
                        continue
                    yield number, obj if isinstance(obj, dict) else "not a JSON object"
        except UnicodeDecodeError:
            raise ManifestError(f"{self.path}: not UTF-8 text") from None
        except OSError as exc:
            raise ManifestError(f"{self.path}: cannot read: {exc.strerror}") from None

    def header(self) -> list[str]:
        keys: dict[str, None] = {}
        for _, obj in self._objects():
            if isinstance(obj, dict):
                keys.update(dict.fromkeys(obj))
        if not keys:
            raise ManifestError(f"{self.path}: no JSON object rows")
        return list(keys)

    def records(self, header: list[str]) -> Iterator[Record]:
        for number, obj in self._objects():
            if isinstance(obj, str):
                yield number, obj
                continue
            bad = [k for k, v in obj.items() if k != NATIVE and isinstance(v, dict | list)]
            if bad:
                yield number, f"field '{bad[0]}' holds a nested value; give it as text"
                continue
            yield number, [json_text(obj.get(k)) for k in header]
