"""The text formats: CSV (outputs and downloads as JSON text) and JSON lines."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from .columns import JSON, TIME_COLUMNS, iso


class CsvReport:
    """Outputs and downloads as JSON text, timestamps as ISO 8601."""

    def __init__(self, path: Path, names: list[str]) -> None:
        self.fh = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.writer = csv.writer(self.fh)
        self.writer.writerow(names)
        self.names = names

    def add(self, rec: dict[str, Any]) -> None:
        flat = _flat(rec)
        self.writer.writerow(["" if flat[n] is None else flat[n] for n in self.names])

    def close(self) -> None:
        self.fh.close()


class JsonlReport:
    def __init__(self, path: Path) -> None:
        self.fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add(self, rec: dict[str, Any]) -> None:
        self.fh.write(_json_line(rec))

    def close(self) -> None:
        self.fh.close()


def _json_line(rec: dict[str, Any]) -> str:
    out = dict(rec)
    for col in TIME_COLUMNS:
        out[col] = iso(rec[col])
    return JSON.encode(out) + "\n"


def _flat(rec: dict[str, Any]) -> dict[str, Any]:
    out = dict(rec)
    out["outputs"] = JSON.encode(rec["outputs"])
    out["downloads"] = JSON.encode(rec["downloads"])
    out["assets"] = JSON.encode(rec["assets"])
    for col in TIME_COLUMNS:
        out[col] = iso(rec[col])
    return out
