"""What a report row holds: the contract's columns and statuses, and one journal row as a record.

Every format writes these records; only their encoding differs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..journal import ReportRow
from ..models import State
from ..tiers import tier_of

REPORT_COLUMNS = (
    "row_id",
    "technique_id",
    "status",
    "run_id",
    "charged_cost",
    "cost_status",
    "error_code",
    "error_tier",
    "error_message",
    "outputs",
    "idempotency_key",
    "attempt",
    "created_at",
    "started_at",
    "completed_at",
    "downloads",
    "assets",
)
REPORT_STATUSES = (
    "completed",
    "failed",
    "pending",
    "running",
    "rejected",
    "unsubmitted",
    "in_doubt",
    "sending",  # only while a live process sends the row (`status`, `report` during a run)
)
SUFFIXES = (".parquet", ".csv", ".jsonl")
MANIFEST_PREFIX = "manifest_"
TIME_COLUMNS = ("created_at", "started_at", "completed_at")
JSON = json.JSONEncoder(ensure_ascii=False)


def report_status(row: ReportRow, live: bool = False) -> str:
    """Journal state -> the report's status vocabulary. ``live``: a process is working on the
    batch now, so a row being sent is ``sending``, not in doubt."""
    if row.state == State.PENDING:
        return "unsubmitted"
    if row.state == State.SENDING:
        if live and row.error_code != "send_unconfirmed":
            return "sending"
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


def _record(row: ReportRow, live: bool) -> dict[str, Any]:
    status = report_status(row, live)
    return {
        "row_id": row.row_id,
        "technique_id": row.technique_id or None,
        "status": status,
        "run_id": row.run_id,
        "charged_cost": row.charged_cost,
        "cost_status": cost_status(row),
        "error_code": row.error_code,
        "error_tier": tier_of(row.error_code, row.error_message) if status == "failed" else None,
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
        "assets": [
            {"input_id": a.input_id, "path": a.path, "asset_id": a.asset_id, "url": a.url}
            for a in row.assets
        ],
    }


def records(
    rows: Iterable[ReportRow], manifest_columns: Sequence[str], live: bool = False
) -> Iterator[dict[str, Any]]:
    names = output_columns(manifest_columns)[: len(manifest_columns)]
    for row in rows:
        rec: dict[str, Any] = dict(zip(names, _cells(row.cells, len(names)), strict=True))
        rec.update(_record(row, live))
        yield rec


def _cells(cells: Sequence[str | None], n: int) -> list[str | None]:
    return (list(cells) + [None] * n)[:n]


def iso(ts: float | None) -> str | None:
    """ISO 8601 in UTC to the millisecond, as ``2026-11-28T13:48:42.123Z``."""
    if ts is None:
        return None
    seconds, ms = divmod(int(ts * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z"
