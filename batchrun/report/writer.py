"""The report: a pure function of the journal, one row per manifest row in manifest order.

Formats by suffix: ``.parquet`` (typed: UTC timestamps, float cost, outputs as a list of structs),
``.csv`` (outputs as JSON text, ISO timestamps), ``.jsonl`` and ``.html`` (a gallery page to look
at in a browser; ``html``). Written to a temporary file beside
the target and renamed into place, so a reader never sees half a report.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from .. import __version__
from ..journal import ReportRow
from .columns import SUFFIXES as TABLE_SUFFIXES
from .columns import output_columns, records
from .text import CsvReport, JsonlReport

# Part of what makes a written report current (with the journal's revision and the file).
FORMAT_TAG = f"batchrun {__version__}, report format 2"  # 2: the assets column
SUFFIXES = (*TABLE_SUFFIXES, ".html")


class Writer(Protocol):
    def add(self, rec: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


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
    thread = threading.Thread(target=importlib.import_module, args=(f"{__package__}.parquet",))
    thread.start()
    return thread


def write_reports(
    paths: Sequence[Path],
    rows: Iterable[ReportRow],
    manifest_columns: Sequence[str],
    *,
    batch: str | None = None,
    wall_seconds: float | None = None,
    made_at: float | None = None,
    live: bool = False,
) -> Counter[str]:
    """Write every report in one pass over the journal, each atomically (a temporary file
    beside it, renamed into place). Returns the count of rows per status.

    Only the HTML gallery reads the keywords, for its header: the batch's name, the wall time
    of the run that writes it (without it, the span from the first run created to the last one
    finished) and when it was made (default: now)."""
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
                from .parquet import ParquetReport

                outs.append(ParquetReport(Path(tmp_name), names, len(manifest_columns)))
            elif suffix == ".csv":
                outs.append(CsvReport(Path(tmp_name), names))
            elif suffix == ".html":
                from .html import HtmlReport

                outs.append(
                    HtmlReport(Path(tmp_name), manifest_columns, batch=batch,
                               wall_seconds=wall_seconds, made_at=made_at)
                )  # fmt: skip
            else:
                outs.append(JsonlReport(Path(tmp_name)))
        for rec in records(rows, manifest_columns, live):
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
