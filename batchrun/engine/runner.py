"""One batch, wired together: manifest -> journal -> submitter/poller/recovery -> report.

``run_batch`` is the Python API behind ``batchrun run``. It prints nothing: what happens is told
through events, and what it ends with is returned as an ``Outcome``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
from ..journal import JournalStore, SyncStats, is_journal_url, journal_location, open_journal
from ..keys import canonical_json
from ..manifest import ManifestOptions, open_manifest
from ..models import Job, RowProblem, State, Technique
from ..report import FORMAT_TAG, check_report_path, preload, write_reports
from .budget import Budget
from .context import Batch, Emit, Event, Stop, Tuning
from .leases import DEFAULT_LEASE_SECONDS, LeasedClaims, claims_for
from .limits import InFlightMeter, RateMeter
from .lock import BatchLock
from .poller import Poller
from .recovery import Recovery, elsewhere_advice, elsewhere_rows
from .resend import ResendPolicy
from .submitter import Submitter
from .techniques import fetch_techniques, settle_columns
from .uploads import files_current, open_uploads

if TYPE_CHECKING:
    import httpx

    from .downloads import DownloadStats, SharedDownloader

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
    api_key: str | None = field(default=None, repr=False)  # never shown, wherever printed
    max_cost: float | None = None
    retry_failed: bool = False
    retries: int = 2  # tier re-sends of a row whose run failed (0: none)
    retry_backoff: float = 30.0  # first wait before re-sending a retry_later failure
    resend_in_doubt: bool = False
    skip_invalid: bool = False
    callback_url: str | None = None
    download: Path | None = None
    download_concurrency: int = 4
    workspace: str | None = None  # for local files' assets (default: $FLORA_WORKSPACE_ID, or
    upload_concurrency: int = 4  # the only workspace the key sees); uploads at once
    id_column: str = "id"
    sheet: str | None = None
    input_map: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    named_inputs: bool = False  # a bare --input COLUMN: input_map names the only inputs
    pass_through: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()
    # Set by the engine (settle_columns), not by callers: columns that go to the report only
    # because --input named the inputs or the technique does not take them.
    auto_pass_through: frozenset[str] = frozenset()
    tuning: Tuning = field(default_factory=Tuning)
    transport: httpx.AsyncBaseTransport | None = None  # tests run the real client in-process
    # A postgresql:// URL: the journal several workers share (None: SQLite in state_dir; a
    # path: the SQLite journal's directory, used as the state directory). See journal_location.
    journal: str | None = None
    lease_seconds: float = DEFAULT_LEASE_SECONDS  # a shared journal's leases on rows it claims
    join: bool = False  # `batchrun worker`: the batch is in the journal; no manifest is read

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
            pass_through=self.pass_through | self.auto_pass_through,
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
    sent_elsewhere: int = 0  # in-doubt rows whose keys another journal used (see recovery)
    rejected: list[str] = field(default_factory=list)  # a few "FILE:LINE: reason"
    retried: int = 0  # rows sent again by their error tier
    retried_completed: int = 0  # of those, rows that completed
    downloads: DownloadStats | None = None


def check_options(opts: RunOptions) -> None:
    if opts.concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {opts.concurrency}")
    if opts.retries < 0:
        raise ConfigError(f"--retries must not be negative, got {opts.retries}")
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


def located(path: Path, items: Iterable[Job | RowProblem]) -> Iterator[Job | RowProblem]:
    """Problems say where they are (``FILE:LINE: reason``), in messages and in the report's
    error_message of a rejected row alike."""
    for item in items:
        if isinstance(item, RowProblem):
            item = dataclasses.replace(item, reason=f"{path}:{item.line}: {item.reason}")
        yield item


def problem_lines(path: Path, stats: SyncStats, limit: int = 20) -> list[str]:
    lines = [p.reason for p in stats.problems[:limit]]
    if stats.problem_count > limit:
        lines.append(f"... and {stats.problem_count - limit} more invalid rows")
    return lines


def load_manifest(
    opts: RunOptions, journal: JournalStore, fingerprint: str | None = None
) -> SyncStats:
    """Read the manifest into the journal, or raise ManifestError and change nothing.

    The same bytes read with the same options give the same rows: a manifest loaded before is
    not read again, which is most of the time a finished batch's rerun would take."""
    fingerprint = fingerprint if fingerprint is not None else manifest_fingerprint(opts)
    if loaded_before(opts, journal, fingerprint):
        counts = journal.counts(opts.batch_name)
        rows = sum(counts.values())
        return SyncStats(rows=rows, unchanged=rows, by_state=Counter(counts))
    manifest = open_manifest(opts.manifest_options())
    stats, committed = journal.sync_manifest(
        opts.batch_name,
        str(opts.manifest.resolve()),
        manifest.columns,
        located(opts.manifest, manifest.rows()),
        accept_problems=opts.skip_invalid,
        fingerprint=fingerprint,
    )
    if not committed:
        fatal = [p for p in stats.problems if p.fatal]
        first = fatal[0] if fatal else stats.problems[0]
        hint = "" if fatal else "; fix them, or pass --skip-invalid to send the valid rows"
        raise ManifestError(
            f"{first.reason} ({stats.problem_count} invalid row{'s' * (stats.problem_count != 1)}, nothing sent"
            f"{hint})",
            problem_lines(opts.manifest, stats),
        )
    journal.record_files(opts.batch_name, list(manifest.local_files.files.values()), fingerprint)
    return stats


def loaded_before(opts: RunOptions, journal: JournalStore, fingerprint: str) -> bool:
    """The journal holds this very manifest (``fingerprint``), read with these options."""
    info = journal.batch(opts.batch_name)
    return (
        bool(fingerprint)
        and info is not None
        and info.fingerprint == fingerprint
        and files_current(journal, opts.batch_name, fingerprint)  # and the files it names
    )


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
    # The options as given: what the engine derives from them (auto_pass_through) follows.
    shape = [o.technique, o.id_column, o.sheet, sorted(o.input_map.items()),
             sorted(opts.pass_through), sorted(o.ignore), opts.skip_invalid,
             opts.manifest.suffix.lower(), *(["named inputs"] if opts.named_inputs else [])]  # fmt: skip
    digest.update(canonical_json(shape).encode())
    return "v1:" + digest.hexdigest()


async def _preflight(
    b: Batch, techniques: Sequence[str], known: Mapping[str, Technique] | None = None
) -> dict[str, Technique | None]:
    """Ask about each technique once: a refused key stops everything before any run is sent.
    Servers without the technique endpoint are fine; the creates will tell. ``known``: those
    asked about already while the columns were settled, not asked again."""
    known = known or {}
    try:
        found = await fetch_techniques(b.client, [t for t in techniques if t not in known])
        return {t: known[t] if t in known else found.get(t) for t in techniques}
    except TransportError as exc:
        raise ConfigError(f"cannot reach the API at {b.client.base_url}: {exc}") from None


def _estimate(techniques: Mapping[str, Technique | None]) -> float | None:
    costs = [t.run_cost for t in techniques.values() if t is not None and t.run_cost is not None]
    return max(costs) if costs and len(costs) == len(techniques) else None


async def _drive(b: Batch, reports: Sequence[Path] = ()) -> tuple[int, int]:
    submitter = Submitter(b)
    recovery = Recovery(b, submitter.finished)
    all_sent = asyncio.Event()
    poller = Poller(b, all_sent)

    async def recover() -> None:
        await recovery.run()
        await submitter.finished.wait()
        all_sent.set()

    async def last_runs() -> None:
        await b.first_drained.wait()
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
        if b.assets is not None:
            await b.assets.aclose()
    return submitter.sent, recovery.recovered


def _outcome(
    opts: RunOptions, journal: JournalStore, stats: SyncStats, started: float, stop: Stop | None
) -> Outcome:
    name = opts.batch_name
    info = journal.batch(name)
    columns = info.columns if info else ()
    paths = opts.report_paths()
    # A rerun with nothing to do leaves reports alone that already show this very journal.
    counts = journal.current_reports(name, paths, FORMAT_TAG)
    if counts is None:
        counts = write_reports(paths, journal.report_rows(name), columns, batch=name,
                               wall_seconds=time.monotonic() - started)  # fmt: skip
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
        retried=extra["retried"],
        retried_completed=extra["retried_completed"],
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
    opts = located_journal(opts)
    name = opts.batch_name
    asked: dict[str, Technique] = {}  # techniques asked about while settling the columns
    # One client for the whole batch, from the first question about the technique on.
    client = FloraClient(
        opts.base_url,
        opts.api_key,
        # httpx walks every pooled connection on each request: a pool sized for what is sent at
        # once (a create takes milliseconds), not for the runs in flight.
        max_connections=min(opts.concurrency, 16) + opts.tuning.poll_concurrency,
        transport=opts.transport,
    )
    async with client:
        with _holding(opts), open_journal(opts.journal, opts.state_dir) as journal:
            if opts.join:  # `batchrun worker`: loaded by `run`, maybe on another host
                stats = joined(journal, name)
            else:
                fingerprint = manifest_fingerprint(opts)
                if not loaded_before(opts, journal, fingerprint):
                    settled = await settle_columns(opts, client)  # a 404 technique: stop here
                    opts = settled.options
                    if settled.technique is not None:
                        asked[settled.technique.technique_id] = settled.technique
                        asked[opts.technique or ""] = settled.technique
                    for message in settled.notices:
                        emit(Event("notice", {"message": message}))
                stats = load_manifest(opts, journal, fingerprint)
            if opts.retry_failed:
                n = journal.retry_failed(name)
                emit(
                    Event("notice", {"message": f"--retry-failed: {n} failed rows will run again"})
                )
            if opts.resend_in_doubt:
                n = journal.resend_in_doubt(name)
                emit(
                    Event("notice", {"message": f"--resend-in-doubt: {n} rows will be sent again"})
                )
            counts = journal.counts(name)
            emit(Event("loaded", {"rows": stats.rows, "counts": counts, "sync": stats}))
            if counts.get(State.IN_DOUBT.value) and (elsewhere := elsewhere_rows(journal, name)):
                emit(Event("notice", {"message": "\n".join(elsewhere_advice(len(elsewhere)))}))
            stop = stop or Stop()
            downloads = None
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
                resend=ResendPolicy(opts.retries, opts.retry_backoff) if opts.retries > 0 else None,
            )
            b.claims = claims_for(b, journal, opts.concurrency, opts.rate, opts.max_cost,
                                  opts.lease_seconds)  # fmt: skip
            work = any(
                counts.get(s.value, 0)
                for s in (State.PENDING, State.SENDING, State.SUBMITTED, State.IN_DOUBT)
            ) or journal.cost_unsettled(name)
            if work:
                techniques = await _preflight(b, journal.techniques(name, State.PENDING), asked)
                if opts.max_cost is not None:
                    b.budget = Budget(
                        opts.max_cost, _estimate(techniques),
                        journal.stats(name)["charged_cost"], journal.open_costs(name),
                        journal.max_cost(name),
                    )  # fmt: skip
                b.assets = await open_uploads(b, opts.workspace, opts.manifest.resolve().parent,
                                              opts.upload_concurrency, opts.transport)  # fmt: skip
                async with b.claims.working():  # several workers: the lease's heartbeat
                    fetcher = _shared_downloader(opts, b)
                    if fetcher is None:
                        sent, recovered = await _drive(b, opts.report_paths())
                    else:  # files are fetched as their rows complete, claimed like sends
                        (sent, recovered), downloads = await _drive_fetching(b, opts, fetcher)
            else:
                sent = recovered = 0
            if opts.download is not None and not stop.stopping and downloads is None:
                from .downloads import Downloader  # only when asked: it brings httpx's client

                if (fetcher := _shared_downloader(opts, b)) is not None:
                    fetcher.finished = True
                    async with b.claims.working():
                        downloads = await fetcher.run()
                else:
                    downloads = await Downloader(
                        journal, name, opts.download, emit, opts.download_concurrency,
                        transport=opts.transport, give_up=lambda: stop.stopping,
                    ).run()  # fmt: skip
            outcome = _outcome(opts, journal, stats, started, stop)
            outcome.sent, outcome.recovered = sent, recovered
            if outcome.counts["in_doubt"]:
                outcome.sent_elsewhere = len(elsewhere_rows(journal, name))
            if outcome.counts["rejected"]:
                outcome.rejected = [p.reason for p in stats.problems[:5]] or [
                    r.error_message or r.row_id for r in journal.rows_in(name, [State.REJECTED])[:5]
                ]
            outcome.downloads = downloads
            if downloads is not None and downloads.failed:
                outcome.exit_code = EXIT_RESUMABLE  # a rerun fetches what is missing
            if stop.error is not None:
                raise stop.error
            return outcome


def _shared_downloader(opts: RunOptions, b: Batch) -> SharedDownloader | None:
    """``--download`` with a journal several workers share: each file fetched by one of them."""
    if opts.download is None or not isinstance(b.claims, LeasedClaims):
        return None
    from .downloads import SharedDownloader

    c = b.claims
    return SharedDownloader(
        b.journal, c.journal, b.name, opts.download, b.emit, c.worker_id, c.lease_seconds,
        opts.download_concurrency, transport=opts.transport, give_up=lambda: b.stop.stopping,
    )  # fmt: skip


async def _drive_fetching(
    b: Batch, opts: RunOptions, fetcher: SharedDownloader
) -> tuple[tuple[int, int], DownloadStats]:
    """The batch worked on and its files fetched at once; the fetching ends once the batch
    has nothing left to send or poll and no file is left to fetch."""
    fetching = asyncio.create_task(fetcher.run())
    try:
        result = await _drive(b, opts.report_paths())
    except BaseException:
        fetching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetching
        raise
    fetcher.finished = True
    return result, await fetching


def located_journal(opts: RunOptions) -> RunOptions:
    """``--journal``: a URL stays; a path is the SQLite journal's directory, which becomes the
    state directory (its locks and default reports go with it)."""
    target, state_dir = journal_location(opts.journal, opts.state_dir)
    if (target, state_dir) == (opts.journal, opts.state_dir):
        return opts
    return dataclasses.replace(opts, journal=target, state_dir=state_dir)


def _holding(opts: RunOptions) -> contextlib.AbstractContextManager[object]:
    """One process per batch on a journal of its own (exit 4 for a second one); a journal
    shared by several workers lets them all in, to cooperate through leases."""
    if is_journal_url(opts.journal):
        return contextlib.nullcontext()
    return BatchLock(opts.state_dir, opts.batch_name)


def joined(journal: JournalStore, name: str) -> SyncStats:
    """A batch joined as it is in the journal (``batchrun worker``)."""
    if journal.batch(name) is None:
        known = ", ".join(b.name for b in journal.batches()) or "none"
        raise ConfigError(f"no batch '{name}' in the journal (batches: {known})")
    counts = journal.counts(name)
    rows = sum(counts.values())
    return SyncStats(rows=rows, unchanged=rows, by_state=Counter(counts))


def run_batch_sync(opts: RunOptions, emit: Emit | None = None) -> Outcome:
    return asyncio.run(run_batch_async(opts, emit))
