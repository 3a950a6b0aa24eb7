"""CSV and TSV, streamed through the csv module so a quoted newline costs nothing extra and
``line_num`` says where each record starts."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from ..errors import ManifestError
from .source import Record


class CsvSource:
    def __init__(self, path: Path, delimiter: str = ",") -> None:
        self.path, self.delimiter = path, delimiter

    def header(self) -> tuple[list[str], int]:
        for line, cells in self._scan():
            return [c or "" for c in cells], line
        raise ManifestError(f"{self.path}: the file is empty (no header row)")

    def records(self) -> Iterator[Record]:
        scan = self._scan()
        next(scan, None)
        yield from scan

    def _scan(self) -> Iterator[tuple[int, list[str | None]]]:
        end = 0  # the last line of the last record read
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as fh:
                # strict: an unclosed quote must not quietly swallow the rest of the file
                reader = csv.reader(fh, delimiter=self.delimiter, strict=True)
                for row in reader:
                    start, end = end + 1, reader.line_num
                    text = "".join(row)
                    if text and not text.isspace():
                        yield start, [c or None for c in row]
        except UnicodeDecodeError:
            line = _first_bad_line(self.path)
            raise ManifestError(
                f"{self.path}:{line}: not UTF-8 text; save the file as UTF-8 (e.g. 'CSV UTF-8')"
            ) from None
        except csv.Error as exc:
            raise ManifestError(f"{self.path}:{end + 1}: {_explain(exc)}") from None
        except OSError as exc:
            raise ManifestError(f"{self.path}: cannot read: {exc.strerror or exc}") from None


def _explain(exc: csv.Error) -> str:
    text = str(exc)
    if "end of data" in text:
        return "a quoted cell in this row is never closed"
    if "field limit" in text:
        return f"a cell is too long or its quote is never closed ({text})"
    if "expected after" in text:
        return f"text right after a closing quote; quote the whole cell ({text})"
    return text


def _first_bad_line(path: Path) -> int | str:
    """The decoder reads in blocks, so its error says little about the line; find it again.
    UTF-8 never puts a newline byte inside a character, so decoding line by line is exact."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return "?"
