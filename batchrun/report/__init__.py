"""The report: a pure function of the journal, one row per manifest row in manifest order.

One module per format (``text``: CSV and JSON lines, ``parquet``, ``html``: a gallery page), the
columns they share, and the writer that fills every requested report in one pass over the
journal.
"""

from __future__ import annotations

from .columns import REPORT_COLUMNS, REPORT_STATUSES, output_columns, records
from .writer import FORMAT_TAG, SUFFIXES, check_report_path, preload, write_reports

__all__ = [
    "FORMAT_TAG",
    "REPORT_COLUMNS",
    "REPORT_STATUSES",
    "SUFFIXES",
    "check_report_path",
    "output_columns",
    "preload",
    "records",
    "write_reports",
]
