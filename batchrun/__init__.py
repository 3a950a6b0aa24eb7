"""batchrun: run FLORA techniques in bulk from a manifest, resumable at any instant.

The public API is small: ``run_batch`` (a DataFrame back), ``report_frame``, and for finer
control ``RunOptions`` with ``run_batch_sync`` / ``run_batch_async`` returning an ``Outcome``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import BatchrunError, ConfigError, LockedError, ManifestError

if TYPE_CHECKING:
    from .batch import report_frame, run_batch
    from .engine.runner import Outcome, RunOptions, run_batch_async, run_batch_sync

# Imported on first use, so that `batchrun --help` and `status` start without the HTTP stack.
_LAZY = {
    "report_frame": "batch",
    "run_batch": "batch",
    "Outcome": "engine.runner",
    "RunOptions": "engine.runner",
    "run_batch_async": "engine.runner",
    "run_batch_sync": "engine.runner",
}

__version__ = "0.1.0"

__all__ = [
    "BatchrunError",
    "ConfigError",
    "LockedError",
    "ManifestError",
    "Outcome",
    "RunOptions",
    "__version__",
    "report_frame",
    "run_batch",
    "run_batch_async",
    "run_batch_sync",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchrun' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
