"""Cell values as text: what a person sees in the cell, and nothing lossy beyond that.

Rules (every format): missing, null, NaN and the empty string are ``None``; integers as written;
floats in the shortest form that reads back as the same number, without a trailing ``.0``
(3.0 -> "3", 0.1 -> "0.1"); dates ``YYYY-MM-DD``; times ``HH:MM:SS``; datetimes
``YYYY-MM-DD HH:MM:SS`` (fractional seconds and a UTC offset only when the value has them).
Booleans are ``true``/``false`` except in spreadsheets, where a person sees ``TRUE``/``FALSE``
and numbers follow the cell's number format (see ``numfmt``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from functools import lru_cache
from typing import Any

from .numfmt import format_number


def number_text(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def cell_text(value: Any) -> str | None:
    """Text of a value from a typed source (Parquet, JSON)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return None if math.isnan(value) else number_text(value)
    if isinstance(value, Decimal):
        return None if value.is_nan() else format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace") or None
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def spreadsheet_text(value: Any, number_format: str | None) -> str | None:
    """Text of an XLSX cell as the cell shows it: numbers through the cell's number format
    (``0.00`` shows 1.12345 as ``1.12``, General shows at most 15 significant digits, so no
    binary noise), dates and times in ISO form as the format's date or time part."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return format_number(value, number_format) or None
    if isinstance(value, dt.datetime):
        kind = _date_kind(number_format)
        if kind == "date" or (kind is None and value.time() == dt.time(0)):
            return value.date().isoformat()
        if kind == "time":
            return value.time().isoformat(timespec="seconds")
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.timedelta):
        return _elapsed(value, number_format)
    return cell_text(value)


def _elapsed(value: dt.timedelta, number_format: str | None) -> str:
    """A duration under ``[h]:mm:ss`` (the formats openpyxl reads as durations): hours in
    total, then minutes and seconds; ``[h]:mm`` leaves the seconds out."""
    seconds = round(value.total_seconds())
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if number_format and "s" not in number_format.lower().replace("[h]", "").replace("[hh]", ""):
        return f"{sign}{hours}:{minutes:02d}"
    return f"{sign}{hours}:{minutes:02d}:{secs:02d}"


@lru_cache(maxsize=256)
def _date_kind(number_format: str | None) -> str | None:
    """'date', 'time', 'datetime', or None when the format says nothing about dates."""
    if not number_format or number_format == "General":
        return None
    from openpyxl.styles.numbers import is_datetime

    kind: str | None = is_datetime(number_format)
    return kind


class ErrorValue(str):
    """A spreadsheet error a cell holds (``#N/A``, ``#VALUE!``, ``#REF!``...): the text the
    cell shows, and where it is (``C7``), so a row that needs it can say why it cannot run."""

    cell: str

    def __new__(cls, text: str, cell: str) -> ErrorValue:
        obj = super().__new__(cls, text)
        obj.cell = cell
        return obj

    def __reduce__(self) -> tuple[type[ErrorValue], tuple[str, str]]:
        return ErrorValue, (str(self), self.cell)
