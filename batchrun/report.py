"""The report: a pure function of the journal, one row per manifest row in manifest order.

Formats by suffix: ``.parquet`` (typed: UTC timestamps, float cost, outputs as a list of structs),
``.csv`` (outputs as JSON text, ISO timestamps) and ``.jsonl``. Written to a temporary file beside
the target and renamed into place, so a reader never sees half a report.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from . import __version__
from .journal import ReportRow
from .models import State

REPORT_COLUMNS = (
    "row_id",
    "technique_id",
    "status",
    "run_id",
    "charged_cost",
    "cost_status",
    "error_code",
    "error_message",
    "outputs",
    "idempotency_key",
    "attempt",
    "created_at",
    "started_at",
    "completed_at",
    "downloads",
)
REPORT_STATUSES = (
    "completed",
    "failed",
    "pending",
    "running",
    "rejected",
    "unsubmitted",
    "in_doubt",
)
SUFFIXES = (".parquet", ".csv", ".jsonl")
# Part of what makes a written report current (with the journal's revision and the file).
FORMAT_TAG = f"batchrun {__version__}, report format 1"
MANIFEST_PREFIX = "manifest_"
TIME_COLUMNS = ("created_at", "started_at", "completed_at")
JSON = json.JSONEncoder(ensure_ascii=False)


class Writer(Protocol):
    def add(self, rec: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


def report_status(row: ReportRow) -> str:
    """Journal state -> the report's status vocabulary."""
    if row.state == State.PENDING:
        return "unsubmitted"
    if row.state == State.SENDING:
        return "in_doubt"  # sent, no answer recorded: the server may hold a run
    if row.state == State.SUBMITTED:
        return row.run_status if row.run_status in ("pending", "running") else "pending"
    return str(row.state)


def cost_status(row: ReportRow) -> str:
    """``final``: the cost the server reported; ``unknown``: a finished run whose cost has not
    arrived yet (rerun or `batchrun report` later); ``none``: no finished run to charge."""
    if row.run_id is None or row.state not in (State.COMPLETED, State.FAILED):
        return "none"
    return "final" if row.cost_final else "unknown"


def output_columns(manifest_columns: Sequence[str]) -> list[str]:
    """Manifest columns keep their names unless they clash with a report column."""
    taken = set(REPORT_COLUMNS)
    names = []
    for name in manifest_columns:
        new = name
        while new in taken:
            new = MANIFEST_PREFIX + new
        taken.add(new)
        names.append(new)
    return names + list(REPORT_COLUMNS)


def _record(row: ReportRow) -> dict[str, Any]:
    return {
        "row_id": row.row_id,
        "technique_id": row.technique_id or None,
        "status": report_status(row),
        "run_id": row.run_id,
        "charged_cost": row.charged_cost,
        "cost_status": cost_status(row),
        "error_code": row.error_code,
        "error_message": row.error_message,
        "outputs": [{"output_id": o.output_id, "type": o.type, "url": o.url} for o in row.outputs],
        "idempotency_key": row.idem_key,
        "attempt": row.attempt,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "completed_at": row.completed_at,
        "downloads": [
            {"output_id": d.output_id, "path": d.path, "bytes": d.bytes, "sha256": d.sha256}
            for d in row.downloads
        ],
    }


def records(rows: Iterable[ReportRow], manifest_columns: Sequence[str]) -> Iterator[dict[str, Any]]:
    names = output_columns(manifest_columns)[: len(manifest_columns)]
    for row in rows:
        rec: dict[str, Any] = dict(zip(names, _cells(row.cells, len(names)), strict=True))
        rec.update(_record(row))
        yield rec


def _cells(cells: Sequence[str | None], n: int) -> list[str | None]:
    return (list(cells) + [None] * n)[:n]


def _iso(ts: float | None) -> str | None:
    """ISO 8601 in UTC to the millisecond, as ``2026-11-28T13:48:42.123Z``."""
    if ts is None:
        return None
    seconds, ms = divmod(int(ts * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"


class _Csv:
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


class _Jsonl:
    def __init__(self, path: Path) -> None:
        self.fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def add(self, rec: dict[str, Any]) -> None:
        self.fh.write(_json_line(rec))

    def close(self) -> None:
        self.fh.close()


def _json_line(rec: dict[str, Any]) -> str:
    out = dict(rec)
    for col in TIME_COLUMNS:
        out[col] = _iso(rec[col])
    return JSON.encode(out) + "\n"


def _flat(rec: dict[str, Any]) -> dict[str, Any]:
    out = dict(rec)
    out["outputs"] = JSON.encode(rec["outputs"])
    out["downloads"] = JSON.encode(rec["downloads"])
    for col in TIME_COLUMNS:
        out[col] = _iso(rec[col])
    return out


def check_report_path(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(
            f"report {path}: unknown format '{path.suffix}'; use one of {', '.join(SUFFIXES)}"
        )


def preload(paths: Sequence[Path]) -> threading.Thread | None:
    """Load the libraries the reports need in a thread, started once only the last runs are in
    flight: pyarrow's import (70 ms of CPU) then overlaps the wait for them instead of
    following it. A write that comes first waits for the import (Python's import lock)."""
    if not any(p.suffix.lower() == ".parquet" for p in paths) or "pyarrow" in sys.modules:
        return None
    # Not a daemon: a process that ends without writing waits for the import rather than
    # tearing the interpreter down under it.
    thread = threading.Thread(
        target=importlib.import_module, args=(f"{__package__}.report_parquet",)
    )
    thread.start()
    return thread


def write_reports(
    paths: Sequence[Path], rows: Iterable[ReportRow], manifest_columns: Sequence[str]
) -> Counter[str]:
    """Write every report in one pass over the journal, each atomically (a temporary file
    beside it, renamed into place). Returns the count of rows per status."""
    names = output_columns(manifest_columns)
    temps: list[tuple[Path, Path]] = []
    outs: list[Writer] = []
    counts: Counter[str] = Counter()
    try:
        for path in paths:
            check_report_path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps.append((Path(tmp_name), path))
            suffix = path.suffix.lower()
            if suffix == ".parquet":
                from .report_parquet import ParquetReport

                outs.append(ParquetReport(Path(tmp_name), names, len(manifest_columns)))
            elif suffix == ".csv":
                outs.append(_Csv(Path(tmp_name), names))
            else:
                outs.append(_Jsonl(Path(tmp_name)))
        for rec in records(rows, manifest_columns):
            counts[rec["status"]] += 1
            for out in outs:
                out.add(rec)
        for out in outs:
            out.close()
        for tmp, path in temps:
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return counts
