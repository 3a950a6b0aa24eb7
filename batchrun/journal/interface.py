"""The journal as the engine sees it: one interface of state transitions, two back ends.

``JournalStore`` is every method the engine, the CLI and the reports call; the SQLite journal
(one state directory, one machine) and the PostgreSQL journal (one database, many machines) both
satisfy it, which mypy checks where ``open_journal`` returns either. ``Leasing`` is what several
workers on one batch need on top: rows (and output files to download) claimed under a lease,
and send slots taken under a lock that serializes the batch, so a concurrency cap holds across
machines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

from ..models import Job, LocalFile, Output, RowProblem, Run, State
from .records import (
    AssetRecord,
    AssetUse,
    BatchInfo,
    Doubt,
    Download,
    InFlight,
    ReportRow,
    Resends,
    RowTask,
    SyncStats,
)


class JournalStore(Protocol):
    """The single source of truth of a batch, as state transitions. No SQL lives elsewhere."""

    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...

    # -- the database and its batches
    def schema_versions(self) -> list[int]: ...
    def revision(self) -> int: ...
    def batch(self, name: str) -> BatchInfo | None: ...
    def batches(self) -> list[BatchInfo]: ...

    # -- loading a manifest, starting rows again
    def plan(self, batch: str, items: Iterable[Job | RowProblem]) -> SyncStats: ...
    def sync_manifest(
        self,
        batch: str,
        manifest: str,
        columns: Sequence[str],
        items: Iterable[Job | RowProblem],
        accept_problems: bool,
        fingerprint: str | None = None,
    ) -> tuple[SyncStats, bool]: ...
    def retry_failed(self, batch: str) -> int: ...
    def resend_in_doubt(self, batch: str) -> int: ...

    # -- the submitter
    def pending(self, batch: str, after_idx: int, limit: int) -> list[RowTask]: ...
    def resends_due(self, batch: str, now: float, limit: int) -> list[RowTask]: ...
    def next_resend(self, batch: str) -> float | None: ...
    def sending(self, batch: str) -> list[RowTask]: ...
    def mark_sending(
        self,
        batch: str,
        sends: Sequence[tuple[str, str, bytes]],
        answered: Sequence[tuple[str, Run]] = (),
        resends: Resends | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> float: ...
    def record_runs(
        self,
        batch: str,
        updates: Sequence[tuple[str, Run]],
        resends: Resends | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> None: ...
    def set_state(
        self,
        batch: str,
        row_ids: Sequence[str],
        state: State,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None: ...
    def unsend(self, batch: str, row_ids: Sequence[str]) -> None: ...

    # -- the poller, recovery and the budget
    def in_flight(self, batch: str) -> list[InFlight]: ...
    def cost_unsettled(self, batch: str) -> list[InFlight]: ...
    def doubtful(self, batch: str, code: str) -> list[Doubt]: ...
    def known_run_ids(self) -> set[str]: ...
    def techniques(self, batch: str, state: State) -> list[str]: ...
    def max_cost(self, batch: str) -> float | None: ...
    def open_costs(self, batch: str) -> dict[str, float | None]: ...

    # -- downloads
    def outputs_to_download(
        self, batch: str, types: Sequence[str]
    ) -> Iterator[tuple[str, list[Output]]]: ...
    def downloads(self, batch: str) -> dict[tuple[str, str], Download]: ...
    def record_download(self, batch: str, d: Download) -> None: ...

    # -- local files uploaded as assets
    def record_files(self, batch: str, files: Sequence[LocalFile], fingerprint: str) -> None: ...
    def files_fingerprint(self, batch: str) -> str | None: ...
    def batch_files(self, batch: str) -> list[LocalFile]: ...
    def assets(self, workspace_id: str) -> dict[str, AssetRecord]: ...
    def announce_asset(self, rec: AssetRecord) -> AssetRecord: ...
    def record_asset(
        self,
        workspace_id: str,
        sha256: str,
        status: str,
        asset_id: str | None,
        url: str | None = None,
        error: str | None = None,
    ) -> None: ...
    def record_row_assets(
        self, batch: str, row_id: str, idem_key: str, uses: Sequence[AssetUse]
    ) -> None: ...

    # -- status and reports
    def current_reports(
        self, batch: str, paths: Sequence[Path], tag: str
    ) -> Counter[str] | None: ...
    def record_reports(
        self, batch: str, paths: Sequence[Path], tag: str, counts: Counter[str]
    ) -> None: ...
    def counts(self, batch: str) -> dict[str, int]: ...
    def cost(self, batch: str) -> float: ...
    def stats(self, batch: str) -> dict[str, Any]: ...
    def rows_in(self, batch: str, states: Sequence[State]) -> list[ReportRow]: ...
    def report_rows(self, batch: str, chunk: int = 5000) -> Iterator[ReportRow]: ...
    def failed_by_technique(self, batch: str) -> Counter[str]: ...


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """Limits that hold for a batch across all its workers."""

    concurrency: int | None
    rate: float | None
    max_cost: float | None
    throttled_for: float = 0.0  # seconds a 429's lower cap still holds
    throttle_limit: int | None = None


@runtime_checkable
class Leasing(Protocol):
    """Several workers on one batch: leased claims, heartbeats and batch-wide send slots.

    A lease is held until ``lease_seconds`` after it was taken or last renewed, on the database's
    clock (so hosts whose clocks differ agree on it). A row is sent only by its lease holder; a
    row whose holder died is claimed again once the lease ran out."""

    def claim_pending(
        self, batch: str, worker_id: str, limit: int, lease_seconds: float
    ) -> list[RowTask]: ...
    def renew_leases(self, worker_id: str, lease_seconds: float) -> int: ...
    def release_leases(self, worker_id: str) -> int: ...
    def take_send_slots(
        self,
        batch: str,
        worker_id: str,
        want: int,
        concurrency: int,
        lease_seconds: float = ...,
        rate: float | None = None,
    ) -> int: ...
    def release_send_slots(self, batch: str, worker_id: str, n: int) -> int: ...
    def slots_held_by_others(self, batch: str, worker_id: str) -> int: ...
    def mark_sending_leased(
        self,
        batch: str,
        worker_id: str,
        sends: Sequence[tuple[str, str, bytes]],
        answered: Sequence[tuple[str, Run]] = (),
        resends: Resends | None = None,
        keys: Mapping[str, str] | None = None,
    ) -> list[str]: ...
    def in_flight_count(self, batch: str) -> int: ...
    def claim_downloads(
        self,
        batch: str,
        worker_id: str,
        files: Sequence[tuple[str, str]],
        limit: int,
        lease_seconds: float,
    ) -> list[tuple[str, str]]: ...
    def live_workers(self) -> list[tuple[str, str, int, float]]: ...
    def set_limits(
        self,
        batch: str,
        concurrency: int | None,
        rate: float | None = None,
        max_cost: float | None = None,
    ) -> None: ...
    def limits(self, batch: str) -> BatchLimits | None: ...
    def throttle(self, batch: str, seconds: float, limit: int) -> None: ...
