"""The Python API: ``run_batch`` does what ``batchrun run`` does and returns the report as a
pandas DataFrame. Works in a script and in a notebook (where an event loop is already running)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api import DEFAULT_BASE_URL
from .engine.context import Emit
from .engine.runner import Outcome, RunOptions, run_batch_async
from .journal import Journal
from .report import records

if TYPE_CHECKING:
    import pandas as pd


def _in_thread(opts: RunOptions, emit: Emit | None) -> Outcome:
    """Jupyter runs its own loop in this thread; ours gets a thread of its own."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["outcome"] = asyncio.run(run_batch_async(opts, emit))
        except BaseException as exc:  # handed back to the caller's thread below
            result["error"] = exc

    thread = threading.Thread(target=target, name="batchrun")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["outcome"]  # type: ignore[no-any-return]


def report_frame(state_dir: Path, batch: str) -> pd.DataFrame:
    """The report of a batch as a DataFrame, straight from the journal."""
    import pandas as pd  # only the Python API needs it: the CLI starts faster without

    with Journal.open(state_dir) as journal:
        info = journal.batch(batch)
        columns = info.columns if info else ()
        return pd.DataFrame.from_records(list(records(journal.report_rows(batch), columns)))


def run_batch(
    manifest: str | os.PathLike[str],
    technique: str | None = None,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    state_dir: str | os.PathLike[str] | None = None,
    reports: Iterable[str | os.PathLike[str]] = (),
    progress: bool = True,
    **options: Any,
) -> pd.DataFrame:
    """Run every row of ``manifest`` and return the report (one row per manifest row).

    Takes the options of ``batchrun run`` as keyword arguments (``concurrency``, ``rate``,
    ``max_cost``, ``retry_failed``, ``download``...). The API key and base URL default to
    ``FLORA_API_KEY`` and ``FLORA_BASE_URL``. Calling it again resumes the batch. The run's
    outcome (counts, cost, exit code) is in ``df.attrs["outcome"]``.
    """
    extra: dict[str, Any] = {
        k: Path(v) if k == "download" and v is not None else v for k, v in options.items()
    }
    opts = RunOptions(
        manifest=Path(manifest),
        technique=technique,
        api_key=api_key or os.environ.get("FLORA_API_KEY"),
        base_url=base_url or os.environ.get("FLORA_BASE_URL", DEFAULT_BASE_URL),
        state_dir=Path(state_dir or os.environ.get("BATCHRUN_STATE_DIR", ".batchrun")),
        reports=[Path(p) for p in reports],
        **extra,
    )
    bar = None
    if progress:
        from .cli.progress import BarProgress

        bar = BarProgress(opts.batch_name, notebook=True)
    try:
        try:
            asyncio.get_running_loop()
            outcome = _in_thread(opts, bar)
        except RuntimeError:
            outcome = asyncio.run(run_batch_async(opts, bar))
    finally:
        if bar is not None:
            bar.close()
    frame = report_frame(opts.state_dir, opts.batch_name)
    frame.attrs["outcome"] = outcome
    return frame
