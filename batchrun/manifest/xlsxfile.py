"""XLSX through openpyxl's read-only mode, which streams the sheet's XML instead of building
the whole workbook in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from .cells import spreadsheet_text
from .source import Record


class XlsxSource:
    def __init__(self, path: Path, sheet: str | None) -> None:
        self.path, self.sheet = path, sheet
        self._sheet_name = sheet or ""  # the first sheet's name is known once the book is open

    def header(self) -> tuple[list[str], int]:
        for line, cells in self._scan():
            return [c or "" for c in cells], line
        raise ManifestError(f"{self.path}: sheet '{self._sheet_name}' is empty (no header row)")

    def records(self) -> Iterator[Record]:
        scan = self._scan()
        next(scan, None)
        yield from scan

    def _scan(self) -> Iterator[tuple[int, list[str | None]]]:
        from openpyxl import load_workbook

        try:
            book = load_workbook(self.path, read_only=True, data_only=True)
        except Exception as exc:  # zipfile, XML and openpyxl errors all mean the same here
            raise ManifestError(f"{self.path}: not a readable XLSX workbook ({exc})") from None
        try:
            sheet = self._pick(book)
            # Dimensions written by other tools are often wrong (too small, or the whole grid);
            # without them each row is read as far as its last stored cell.
            sheet.reset_dimensions()
            for number, row in enumerate(sheet.iter_rows(), start=1):
                cells = [_text(cell) for cell in row]
                if any(c is not None and not c.isspace() for c in cells):
                    yield number, cells
        finally:
            book.close()

    def _pick(self, book: Any) -> Any:
        names: list[str] = book.sheetnames
        if self.sheet is None:
            if not names:
                raise ManifestError(f"{self.path}: the workbook has no sheets")
            self._sheet_name = names[0]
            return book[names[0]]
        if self.sheet not in names:
            raise ManifestError(
                f"{self.path}: no sheet '{self.sheet}' (sheets: {', '.join(names)})"
            )
        self._sheet_name = self.sheet
        return book[self.sheet]


def _text(cell: Any) -> str | None:
    value = cell.value
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    return spreadsheet_text(value, getattr(cell, "number_format", None))
