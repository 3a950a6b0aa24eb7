"""One batch, wired together: manifest -> journal -> submitter/poller/recovery -> report.

``run_batch`` is the Python API behind ``batchrun run``. It prints nothing: what happens is told
through events, and what it ends with is returned as an ``Outcome``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..api import DEFAULT_BASE_URL, FloraClient
from ..errors import (
    EXIT_OK,
    EXIT_RESUMABLE,
    EXIT_ROWS_FAILED,
    ConfigError,
    ManifestError,
    TransportError,
)
from ..journal import Journal, SyncStats
from ..keys import canonical_json
from ..manifest import ManifestOptions, open_manifest
from ..models import State, Technique
from ..report import FORMAT_TAG, check_report_path, preload, write_reports
from .budget import Budget
from .context import Batch, Emit, Event, Stop, Tuning
from .limits import InFlightMeter, RateMeter
from .lock import BatchLock
from .poller import Poller
from .recovery import Recovery
from .submitter import Submitter
from .techniques import fetch_techniques

if TYPE_CHECKING:
    import httpx

    from .downloads import DownloadStats

UNSETTLED = ("unsubmitted", "in_doubt", "pending", "running")


@dataclass
class RunOptions:
    manifest: Path
    technique: str | None = None
    state_dir: Path = Path(".batchrun")
    batch: str | None = None
    reports: Sequence[Path] = ()
    concurrency: int = 8
    rate: float | None = None
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    max_cost: float | None = None
    retry_failed: bool = False
    resend_in_doubt: bool = False
    skip_invalid: bool = False
    callback_url: str | None = None
    download: Path | None = None
    download_concurrency: int = 4
    id_column: str = "id"
    sheet: str | None = None
    input_map: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    pass_through: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()
    tuning: Tuning = field(default_factory=Tuning)
    transport: httpx.AsyncBaseTransport | None = None  # tests run the real client in-process

    @property
    def batch_name(self) -> str:
        return self.batch or self.manifest.stem

    def manifest_options(self) -> ManifestOptions:
        return ManifestOptions(
            path=self.manifest,
            technique=self.technique,
            id_column=self.id_column,
            sheet=self.sheet,
            input_map=dict(self.input_map),
            pass_through=self.pass_through,
            ignore=self.ignore,
        )

    def report_paths(self) -> list[Path]:
        if self.reports:
            return list(self.reports)
        base = self.state_dir / "reports" / self.batch_name
        return [base.with_suffix(".parquet"), base.with_suffix(".csv")]


@dataclass
class Outcome:
    batch: str
    exit_code: int
    counts: Counter[str]
    charged_cost: float
    costs_unknown: int
    wall_seconds: float
    reports: list[Path]
    sync: SyncStats
    sent: int = 0
    recovered: int = 0
    stop_reason: str | None = None
    in_doubt: list[tuple[str, str]] = field(default_factory=list)  # (row id, why), a few
    downloads: DownloadStats | None = None


def check_options(opts: RunOptions) -> None:
    if opts.concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {opts.concurrency}")
    if opts.max_cost is not None and opts.max_cost < 0:
        raise ConfigError(f"--max-cost must not be negative, got {opts.max_cost}")
    if opts.rate is not None and opts.rate <= 0:
        raise ConfigError(f"--rate must be above 0, got {opts.rate}")
    url = urlsplit(opts.base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ConfigError(f"--base-url must be an http(s) URL, got '{opts.base_url}'")
    if opts.callback_url is not None and urlsplit(opts.callback_url).scheme != "https":
        raise ConfigError(f"--callback-url must be an https URL, got '{opts.callback_url}'")
    for path in opts.reports:
        try:
            check_report_path(path)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if path.resolve() == opts.manifest.resolve():
            raise ConfigError(f"--report {path} is the manifest itself; it would be overwritten")
    if not opts.api_key:
        raise ConfigError("no API key: set FLORA_API_KEY or pass --api-key")


def problem_lines(path: Path, stats: SyncStats, limit: int = 20) -> list[str]:
    lines = [f"{path}:{p.line}: {p.reason}" for p in stats.problems[:limit]]
    if stats.problem_count > limit:
        lines.append(f"... and {stats.problem_count - limit} more invalid rows")
    return lines


def load_manifest(opts: RunOptions, journal: Journal) -> SyncStats:
    """Read the manifest into the journal, or raise ManifestError and change nothing.

    The same bytes read with the same options give the same rows: a manifest loaded before is
    not read again, which is most of the time a finished batch's rerun would take."""
    fingerprint = manifest_fingerprint(opts)
    info = journal.batch(opts.batch_name)
    if fingerprint and info is not None and info.fingerprint == fingerprint:
        counts = journal.counts(opts.batch_name)
        rows = sum(counts.values())
        return SyncStats(rows=rows, unchanged=rows, by_state=Counter(counts))
    manifest = open_manifest(opts.manifest_options())
    stats, committed = journal.sync_manifest(
        opts.batch_name,
        str(opts.manifest.resolve()),
        manifest.columns,
        manifest.rows(),
        accept_problems=opts.skip_invalid,
        fingerprint=fingerprint,
    )
    if not committed:
        fatal = [p for p in stats.problems if p.fatal]
        first = fatal[0] if fatal else stats.problems[0]
        hint = "" if fatal else "; fix them, or pass --skip-invalid to send the valid rows"
        raise ManifestError(
            f"{opts.manifest}:{first.line}: {first.reason} "
            f"({stats.problem_count} invalid row{'s' * (stats.problem_count != 1)}, nothing sent"
            f"{hint})",
            problem_lines(opts.manifest, stats),
        )
    return stats


def manifest_fingerprint(opts: RunOptions) -> str:
    """The manifest's bytes and every option that shapes its rows."""
    digest = hashlib.sha256()
    try:
        with open(opts.manifest, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError:
        return ""  # open_manifest will say what is wrong with the file
    o = opts.manifest_options()
    shape = [o.technique, o.id_column, o.sheet, sorted(o.input_map.items()), sorted(o.pass_through),
             sorted(o.ignore), opts.skip_invalid, opts.manifest.suffix.lower()]  # fmt: skip
    digest.update(canonical_json(shape).encode())
    return "v1:" + digest.hexdigest()


async def _preflight(b: Batch, techniques: Sequence[str]) -> dict[str, Technique | None]:
    """Ask about each technique once: a refused key stops everything before any run is sent.
    Servers without the technique endpoint are fine; the creates will tell."""
    try:
        return await fetch_techniques(b.client, techniques)
    except TransportError as exc:
        raise ConfigError(f"cannot reach the API at {b.client.base_url}: {exc}") from None


def _estimate(techniques: Mapping[str, Technique | None]) -> float | None:
    costs = [t.run_cost for t in techniques.values() if t is not None and t.run_cost is not None]
    return max(costs) if costs and len(costs) == len(techniques) else None


async def _drive(
    b: Batch, allowance: Callable[[], int] | None = None, reports: Sequence[Path] = ()
) -> tuple[int, int]:
    submitter = Submitter(b, allowance)
    recovery = Recovery(b, submitter.finished)
    poller = Poller(b, lambda: submitter.done and recovery_done.is_set())
    recovery_done = asyncio.Event()

    async def recover() -> None:
        try:
            await recovery.run()
        finally:
            recovery_done.set()

    async def last_runs() -> None:
        await submitter.finished.wait()
        preload(reports)

    tasks = [
        asyncio.create_task(submitter.run()),
        asyncio.create_task(recover()),
        asyncio.create_task(poller.run()),
    ]
    warm = asyncio.create_task(last_runs())
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in (*tasks, warm):
            t.cancel()
    return submitter.sent, recovery.recovered


def _outcome(
    opts: RunOptions, journal: Journal, stats: SyncStats, started: float, stop: Stop | None
) -> Outcome:
    name = opts.batch_name
    info = journal.batch(name)
    columns = info.columns if info else ()
    paths = opts.report_paths()
    # A rerun with nothing to do leaves reports alone that already show this very journal.
    counts = journal.current_reports(name, paths, FORMAT_TAG)
    if counts is None:
        counts = write_reports(paths, journal.report_rows(name), columns)
        journal.record_reports(name, paths, FORMAT_TAG, counts)
    extra = journal.stats(name)
    doubts = [
        (r.row_id, r.error_message or "no answer recorded")
        for r in journal.rows_in(name, [State.IN_DOUBT, State.SENDING])[:10]
    ]
    stopped = stop is not None and (stop.reason or stop.submit_reason)
    if stopped or any(counts[s] for s in UNSETTLED):
        code = EXIT_RESUMABLE
    elif counts["failed"] or counts["rejected"]:
        code = EXIT_ROWS_FAILED
    else:
        code = EXIT_OK
    return Outcome(
        batch=name,
        exit_code=code,
        counts=counts,
        charged_cost=extra["charged_cost"],
        costs_unknown=extra["costs_unknown"],
        wall_seconds=time.monotonic() - started,
        reports=paths,
        sync=stats,
        stop_reason=(stop.reason or stop.submit_reason) if stop else None,
        in_doubt=doubts,
    )


async def run_batch_async(
    opts: RunOptions, emit: Emit | None = None, stop: Stop | None = None
) -> Outcome:
    """Run the batch. ``stop``: the caller's handle to end it early (the CLI's signals)."""
    started = time.monotonic()
    emit = emit or (lambda e: None)
    check_options(opts)
    name = opts.batch_name
    with BatchLock(opts.state_dir, name), Journal.open(opts.state_dir) as journal:
        stats = load_manifest(opts, journal)
        if opts.retry_failed:
            n = journal.retry_failed(name)
            emit(Event("notice", {"message": f"--retry-failed: {n} failed rows will run again"}))
        if opts.resend_in_doubt:
            n = journal.resend_in_doubt(name)
            emit(Event("notice", {"message": f"--resend-in-doubt: {n} rows will be sent again"}))
        counts = journal.counts(name)
        emit(Event("loaded", {"rows": stats.rows, "counts": counts, "sync": stats}))
        stop = stop or Stop()
        downloads = None
        client = FloraClient(
            opts.base_url,
            opts.api_key,
            max_connections=opts.concurrency + opts.tuning.poll_concurrency + 4,
            transport=opts.transport,
        )
        meter = InFlightMeter(opts.concurrency)
        meter.take(counts.get(State.SUBMITTED.value, 0))
        b = Batch(
            name=name,
            journal=journal,
            client=client,
            meter=meter,
            rate=RateMeter(opts.rate),
            emit=emit,
            stop=stop,
            tuning=opts.tuning,
            callback_url=opts.callback_url,
        )
        async with client:
            work = any(
                counts.get(s.value, 0)
                for s in (State.PENDING, State.SENDING, State.SUBMITTED, State.IN_DOUBT)
            ) or journal.cost_unsettled(name)
            if work:
                techniques = await _preflight(b, journal.techniques(name, State.PENDING))
                budget = None
                if opts.max_cost is not None:
                    budget = Budget(
                        opts.max_cost, journal, name, _estimate(techniques),
                        lambda: meter.in_flight,
                    )  # fmt: skip
                sent, recovered = await _drive(
                    b, budget.allowance if budget else None, opts.report_paths()
                )
            else:
                sent = recovered = 0
        if opts.download is not None and not stop.stopping:
            from .downloads import Downloader  # only when asked: it brings httpx's client

            downloads = await Downloader(
                journal, name, opts.download, emit, opts.download_concurrency,
                transport=opts.transport, give_up=lambda: stop.stopping,
            ).run()  # fmt: skip
        outcome = _outcome(opts, journal, stats, started, stop)
        outcome.sent, outcome.recovered = sent, recovered
        outcome.downloads = downloads
        if downloads is not None and downloads.failed:
            outcome.exit_code = EXIT_RESUMABLE  # a rerun fetches what is missing
        if stop.error is not None:
            raise stop.error
        return outcome


def run_batch_sync(opts: RunOptions, emit: Emit | None = None) -> Outcome:
    return asyncio.run(run_batch_async(opts, emit))
