"""The embedded journal: one SQLite database per state directory.

Each consumer's transitions live in a module of their own (loading, sending, polling, downloads,
views); this class is all of them over one connection.
"""

from __future__ import annotations

from .assets import AssetStore
from .downloads import Downloads
from .loading import Loading
from .polling import Polling
from .sending import Sending
from .views import Views


class Journal(Loading, Sending, Polling, Downloads, AssetStore, Views):
    """The single source of truth of a batch, as state transitions. No SQL lives elsewhere."""
