"""Cell values as the text a person sees in the spreadsheet."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any


def cell_text(value: Any, number_format: str | None = None) -> str | None:
    """None for an empty cell; otherwise the text a person reads in it."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return _percent(value, number_format) or str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return _percent(value, number_format) or number_text(value)
    if isinstance(value, Decimal):
        return number_text(float(value))
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def number_text(value: float) -> str:
    """3.0 -> "3", 0.1 -> "0.1": the shortest text that reads back as the same number."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _percent(value: float, number_format: str | None) -> str | None:
    if not number_format or not number_format.endswith("%"):
        return None
    decimals = number_format.split(".")[1].count("0") if "." in number_format else 0
    return f"{value * 100:.{decimals}f}%"
