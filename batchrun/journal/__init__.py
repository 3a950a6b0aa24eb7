"""The journal: the single source of truth of a batch.

Everything else reads and writes it through state transitions (load, claim, mark sent, record
run, finish...), never through SQL of its own. Writes that announce an action are committed
before the action happens.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import DB_NAME
from .interface import BatchLimits, JournalStore, Leasing
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
from .sqlite import Journal

if TYPE_CHECKING:
    from .postgres import PgJournal

__all__ = [
    "DB_NAME",
    "AssetRecord",
    "AssetUse",
    "BatchInfo",
    "BatchLimits",
    "Doubt",
    "Download",
    "InFlight",
    "Journal",
    "JournalStore",
    "Leasing",
    "ReportRow",
    "Resends",
    "RowTask",
    "SyncStats",
    "is_journal_url",
    "journal_location",
    "open_existing_journal",
    "open_journal",
]


def is_journal_url(target: str | Path | None) -> bool:
    """Whether ``target`` names a PostgreSQL journal (``postgresql://`` or ``postgres://``)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def journal_location(target: str | Path | None, state_dir: Path) -> tuple[str | None, Path]:
    """Where ``--journal`` puts the journal: (the URL of a shared journal, or None for SQLite;
    the state directory). A path names the SQLite journal's directory (or the journal file in
    it), which then serves as the state directory; no target keeps ``state_dir``."""
    if target is None or str(target) == "" or is_journal_url(target) or "://" in str(target):
        return (None if target in (None, "") else str(target)), state_dir
    path = Path(target).expanduser()
    return None, path.parent if path.name == DB_NAME else path


def _postgres(target: str | Path | None) -> type[PgJournal] | None:
    """The PostgreSQL journal class if ``target`` asks for it; None for the SQLite journal.
    psycopg is imported only by those who ask for a PostgreSQL journal."""
    if target is None or isinstance(target, Path):
        return None
    if not is_journal_url(target):
        if "://" in target:
            scheme = target.split("://", 1)[0]
            raise ConfigError(
                f"--journal: a '{scheme}://' journal is not supported; give a postgresql:// URL, "
                "or leave it out for the SQLite journal in the state directory"
            )
        return None
    # The CLI keeps numpy out (see cli.entry); psycopg's number dumpers take a placeholder in
    # sys.modules for numpy itself and fail on it, so a PostgreSQL journal lets numpy be.
    if "numpy" in sys.modules and sys.modules["numpy"] is None:
        del sys.modules["numpy"]
    from .postgres import PgJournal

    return PgJournal


@contextlib.contextmanager
def _reaching(target: str | Path | None) -> Iterator[None]:
    """Failures to reach the database as one clear line (psycopg's messages never hold the
    password; the URL is not repeated)."""
    try:
        yield
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "psycopg":
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            f"--journal: cannot use the PostgreSQL journal: {reason}; check the URL, that the "
            "server runs and that this user may create tables in the database"
        ) from None


def open_journal(target: str | Path | None, state_dir: Path) -> JournalStore:
    """The journal ``target`` names: a ``postgresql://`` URL is a database shared by every host
    that reaches it (its schema created or brought up to date); None or a path keeps the SQLite
    journal in ``state_dir``."""
    pg = _postgres(target)
    if pg is None:
        return Journal.open(state_dir)
    with _reaching(target):
        return pg.open(str(target))


def open_existing_journal(target: str | Path | None, state_dir: Path) -> JournalStore | None:
    """As ``open_journal``, but None where no journal exists yet; nothing is created."""
    pg = _postgres(target)
    if pg is None:
        return Journal.open_existing(state_dir)
    with _reaching(target):
        return pg.open_existing(str(target))
