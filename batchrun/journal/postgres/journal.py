"""The shared journal: one PostgreSQL database, any number of machines and batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .assets import PgAssetStore
from .downloads import PgDownloads
from .leases import PgLeases
from .loading import PgLoading
from .polling import PgPolling
from .views import PgViews


class PgJournal(PgLoading, PgLeases, PgPolling, PgDownloads, PgAssetStore, PgViews):
    """The single source of truth of batches shared by name across hosts, as state
    transitions: everything the SQLite journal does, plus leased claims and batch-wide send
    slots for several workers on one batch. No SQL lives elsewhere."""


if TYPE_CHECKING:
    from ..interface import JournalStore, Leasing

    def _satisfies(j: PgJournal) -> tuple[JournalStore, Leasing]:
        """mypy checks here that this journal is a whole ``JournalStore`` and ``Leasing``."""
        return j, j
