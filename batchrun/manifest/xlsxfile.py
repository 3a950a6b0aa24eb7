"""XLSX through openpyxl's read-only mode, which streams the sheet's XML instead of building
the whole workbook in memory."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from .cells import ErrorValue, spreadsheet_text
from .source import Record

#: Rows read from the sheet at a time, with openpyxl's warnings silenced (see ``_quiet``).
_BATCH = 256


@contextmanager
def _quiet() -> Iterator[None]:
    """openpyxl warns about every part of a workbook it would drop on saving it again:
    extensions ("Unknown extension is not supported and will be removed"), data validation,
    conditional formats, a missing default style. Most files Excel writes have some, none of
    them changes a cell's value, and this reader never saves: the warnings are silenced here,
    only while openpyxl runs, and the process's filters are left as they were."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"openpyxl(\.|$)")
        yield


class XlsxSource:
    def __init__(self, path: Path, sheet: str | None) -> None:
        self.path, self.sheet = path, sheet
        self._sheet_name = sheet or ""  # the first sheet's name is known once the book is open

    def header(self) -> tuple[list[str], int]:
        for line, cells in self._scan():
            for cell in cells:
                if isinstance(cell, ErrorValue):
                    raise ManifestError(
                        f"{self.path}:{line}: header cell {cell.cell} holds the error {cell}, "
                        "not a column name"
                    )
            return [c or "" for c in cells], line
        raise ManifestError(f"{self.path}: sheet '{self._sheet_name}' is empty (no header row)")

    def records(self) -> Iterator[Record]:
        scan = self._scan()
        next(scan, None)
        yield from scan

    def _scan(self) -> Iterator[tuple[int, list[str | None]]]:
        from openpyxl import load_workbook

        try:
            with _quiet():
                book = load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # zipfile, XML and openpyxl errors all mean the same here
            raise ManifestError(f"{self.path}: not a readable XLSX workbook ({exc})") from None
        try:
            sheet = self._pick(book)
            # Dimensions written by other tools are often wrong (too small, or the whole grid);
            # without them each row is read as far as its last stored cell.
            sheet.reset_dimensions()
            rows = sheet.iter_rows()
            number = 0
            while True:
                with _quiet():  # openpyxl parses (and warns) as rows are pulled
                    batch = list(islice(rows, _BATCH))
                if not batch:
                    break
                for row in batch:
                    number += 1
                    cells = [_text(cell) for cell in row]
                    if any(c is not None and not c.isspace() for c in cells):
                        yield number, cells
        finally:
            book.close()

    def _pick(self, book: Any) -> Any:
        """The sheet asked for, or the first worksheet; chart sheets hold no rows."""
        worksheets = book.worksheets
        names = [ws.title for ws in worksheets]
        charts = [cs.title for cs in book.chartsheets]
        if self.sheet is None:
            if not worksheets:
                only = f" (only chart sheets: {', '.join(charts)})" if charts else ""
                raise ManifestError(f"{self.path}: the workbook has no worksheets{only}")
            self._sheet_name = names[0]
            return worksheets[0]
        if self.sheet in charts:
            choice = (
                f"worksheets: {', '.join(names)}" if names else "the workbook has no worksheets"
            )
            raise ManifestError(
                f"{self.path}: sheet '{self.sheet}' is a chart sheet, not a worksheet of rows "
                f"({choice})"
            )
        if self.sheet not in names:
            raise ManifestError(
                f"{self.path}: no sheet '{self.sheet}' (sheets: {', '.join(names)})"
            )
        self._sheet_name = self.sheet
        return worksheets[names.index(self.sheet)]


def _text(cell: Any) -> str | None:
    value = cell.value
    if value is None:
        return None
    if isinstance(value, str):
        if cell.data_type == "e":  # #N/A, #VALUE!, #REF!...: a formula's error, not text
            return ErrorValue(value, cell.coordinate)
        return value or None
    return spreadsheet_text(value, getattr(cell, "number_format", None))
