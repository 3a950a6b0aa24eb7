"""The PostgreSQL journal (psycopg 3): batches shared by name by every machine that reaches the
database. Imported only when a ``postgresql://`` journal is asked for."""

from __future__ import annotations

from .journal import PgJournal
from .leases import DEFAULT_LEASE_SECONDS

__all__ = ["DEFAULT_LEASE_SECONDS", "PgJournal"]
