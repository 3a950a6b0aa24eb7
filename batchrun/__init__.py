"""batchrun: run FLORA techniques in bulk from a manifest, resumable at any instant.

The public API is small: ``run_batch`` (a DataFrame back), ``report_frame``, and for finer
control ``RunOptions`` with ``run_batch_sync`` / ``run_batch_async`` returning an ``Outcome``.
"""

from .api import report_frame, run_batch
from .errors import BatchrunError, ConfigError, LockedError, ManifestError
from .runner import Outcome, RunOptions, run_batch_async, run_batch_sync

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
