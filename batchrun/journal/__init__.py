"""The journal: the single source of truth of a batch.

Everything else reads and writes it through state transitions (load, claim, mark sent, record
run, finish...), never through SQL of its own. Writes that announce an action are committed
before the action happens.
"""

from __future__ import annotations

from .base import DB_NAME
from .records import BatchInfo, Doubt, Download, InFlight, ReportRow, RowTask, SyncStats
from .sqlite import Journal

__all__ = [
    "DB_NAME",
    "BatchInfo",
    "Doubt",
    "Download",
    "InFlight",
    "Journal",
    "ReportRow",
    "RowTask",
    "SyncStats",
]
