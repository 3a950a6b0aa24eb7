"""The Python API: ``run_batch`` does what ``batchrun run`` does and returns the report as a
pandas DataFrame. Works in a script and in a notebook (where an event loop is already running)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .api import DEFAULT_BASE_URL
from .engine.context import Emit
from .engine.runner import Outcome, RunOptions, run_batch_async
from .errors import ConfigError
from .journal import journal_location, open_journal
from .report import records

if TYPE_CHECKING:
    import pandas as pd

# ``batchrun run``'s options, as keyword arguments: the option without its dashes, ``-`` as
# ``_``. Repeatable options take a list (or one value).
_PATHS = {"state_dir", "download"}
_LISTS = {"report", "input", "pass_through", "ignore"}
_CLI_ONLY = {"log_format", "log_every", "quiet"}  # how progress shows, not what runs
_RUN_FIELDS = {f.name for f in dataclasses.fields(RunOptions)} - {"manifest", "auto_pass_through",
                                                                   "join"}  # fmt: skip


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


def report_frame(state_dir: Path, batch: str, journal_url: str | None = None) -> pd.DataFrame:
    """The report of a batch as a DataFrame, straight from the journal (``journal_url``: a
    shared journal's, as ``run_batch(journal=...)``)."""
    import pandas as pd  # only the Python API needs it: the CLI starts faster without

    url, state_dir = journal_location(journal_url, state_dir)
    with open_journal(url, state_dir) as journal:
        info = journal.batch(batch)
        columns = info.columns if info else ()
        return pd.DataFrame.from_records(list(records(journal.report_rows(batch), columns)))


def _listed(name: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise ConfigError(f"{name}: expected a value or a list of values, got {value!r}") from None


def run_options(
    manifest: str | os.PathLike[str], technique: str | None = None, **options: Any
) -> RunOptions:
    """``run_batch``'s keyword arguments (``batchrun run``'s options) as ``RunOptions``. Also
    takes ``RunOptions``' own fields (``transport``, ``tuning``...). TypeError for a name that is
    neither; ConfigError for a value the CLI would refuse."""
    from .cli.common import parse_inputs  # the CLI's own reading of --input

    unknown = sorted(set(options) - _RUN_FIELDS - _PATHS - _LISTS - _CLI_ONLY - {"reports"})
    if unknown:
        known = ", ".join(sorted(_PATHS | _LISTS | _RUN_FIELDS - {"reports", "input_map"}))
        raise TypeError(f"run_batch() got an unexpected keyword argument '{unknown[0]}' ({known})")
    kw = {k: v for k, v in options.items() if k not in _CLI_ONLY}
    for name in _PATHS:
        if kw.get(name) is not None:
            kw[name] = Path(kw[name])
    reports = _listed("report", kw.pop("report", None)) + _listed("reports", kw.pop("reports", ()))
    kw["reports"] = [Path(p) for p in reports]
    if "input" in kw:
        if "input_map" in kw:
            raise TypeError("run_batch(): give input or input_map, not both")
        try:
            kw["input_map"], kw["named_inputs"] = parse_inputs(_listed("input", kw.pop("input")))
        except ValueError as exc:
            raise ConfigError(f"input {exc}") from None
    for name in ("pass_through", "ignore"):
        if name in kw:
            kw[name] = frozenset(str(c) for c in _listed(name, kw[name]))
    if kw.get("api_key") is None:
        kw["api_key"] = os.environ.get("FLORA_API_KEY")
    if kw.get("base_url") is None:
        kw["base_url"] = os.environ.get("FLORA_BASE_URL", DEFAULT_BASE_URL)
    if kw.get("state_dir") is None:
        kw["state_dir"] = Path(os.environ.get("BATCHRUN_STATE_DIR", ".batchrun"))
    if kw.get("journal") is None:
        kw["journal"] = os.environ.get("BATCHRUN_JOURNAL") or None
    elif isinstance(kw["journal"], os.PathLike):
        kw["journal"] = os.fspath(kw["journal"])
    return RunOptions(manifest=Path(manifest), technique=technique, **kw)


def progress_display(
    batch: str,
    progress: bool = True,
    log_format: str | None = None,
    log_every: float = 30.0,
    quiet: bool = False,
) -> Any:
    """What shows a batch's progress, chosen by where it runs: a widget in a notebook, bars on a
    terminal, log lines elsewhere (a script under cron, a CI job: no cursor escapes in a log
    file); ``log_format`` asks for log lines ("text" or "json"); nothing when ``progress`` is
    False or ``quiet``. None for nothing."""
    from .cli.progress import BarProgress, LogProgress, in_notebook

    if not progress or quiet:
        return None
    if log_format is not None:
        if log_format not in ("text", "json"):
            raise ConfigError(f"log_format must be 'text' or 'json', got {log_format!r}")
        return LogProgress(batch, log_format, log_every)
    if in_notebook():
        return BarProgress(batch, notebook=True)
    if sys.stderr.isatty():
        return BarProgress(batch)
    return LogProgress(batch, "text", log_every)


def run_batch(
    manifest: str | os.PathLike[str],
    technique: str | None = None,
    *,
    progress: bool = True,
    **options: Any,
) -> pd.DataFrame:
    """Run every row of ``manifest`` and return the report (one row per manifest row).

    Takes ``batchrun run``'s options as keyword arguments, named as on the command line without
    the dashes (``-`` as ``_``) and in the same forms; a repeatable option takes a list:

    - ``technique`` (``-t``): technique id or slug for rows without a technique_id column
    - ``state_dir``: journal directory (default ``$BATCHRUN_STATE_DIR`` or ``.batchrun``)
    - ``journal``: a ``postgresql://`` URL, the journal several hosts share (default
      ``$BATCHRUN_JOURNAL``, else SQLite in ``state_dir``); ``lease_seconds`` as the option
    - ``batch``: batch name (default: the manifest's file stem)
    - ``report``: report path(s), format from the suffix (``.parquet``, ``.csv``, ``.jsonl``,
      ``.html``); ``reports`` is the same
    - ``concurrency``, ``rate``, ``max_cost``: most runs in flight, creates per second, USD
    - ``api_key``, ``base_url``: default ``$FLORA_API_KEY``, ``$FLORA_BASE_URL``
    - ``retry_failed``, ``resend_in_doubt``, ``skip_invalid``: as the flags
    - ``retries``, ``retry_backoff``: tier re-sends of failed runs, as ``--retries``
    - ``callback_url``, ``download`` (a directory), ``id_column``, ``sheet``
    - ``input``: ``["COLUMN=INPUT_ID[:TYPE]", ...]`` sends a column as another input; a bare
      ``"COLUMN"`` names an input under its own name and makes the named columns the only
      inputs (the other columns go to the report only)
    - ``pass_through``, ``ignore``: column names, to the report only / nowhere
    - ``log_format`` ("text", "json"), ``log_every``, ``quiet``: how progress shows

    Progress shows where it runs: a widget in a notebook, bars on a terminal, log lines on
    stderr otherwise; ``progress=False`` shows nothing. ``--dry-run`` has no keyword: the plan is
    ``batchrun plan``'s. Calling it again resumes the batch. The run's outcome (counts, cost,
    exit code) is in ``df.attrs["outcome"]``.
    """
    opts = run_options(manifest, technique, **options)
    shown = {k: options[k] for k in _CLI_ONLY if k in options}
    bar = progress_display(opts.batch_name, progress, **shown)
    try:
        asyncio.get_running_loop()
        in_a_loop = True  # Jupyter's
    except RuntimeError:
        in_a_loop = False
    try:
        outcome = _in_thread(opts, bar) if in_a_loop else asyncio.run(run_batch_async(opts, bar))
    finally:
        if bar is not None:
            bar.close()
    frame = report_frame(opts.state_dir, opts.batch_name, opts.journal)
    frame.attrs["outcome"] = outcome
    return frame
