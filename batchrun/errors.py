"""User-facing exceptions. Each carries one clear line and the exit code it maps to."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ROWS_FAILED = 1
EXIT_USAGE = 2
EXIT_RESUMABLE = 3
EXIT_LOCKED = 4


class BatchrunError(Exception):
    """Base of every error meant for the user: ``str(err)`` is the one line they see."""

    exit_code = EXIT_USAGE


class ConfigError(BatchrunError):
    """Bad option, missing or rejected API key, unknown technique: nothing was sent."""


class ManifestError(BatchrunError):
    """The manifest cannot be read, or holds invalid rows (without --skip-invalid)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class LockedError(BatchrunError):
    """Another live process holds this batch."""

    exit_code = EXIT_LOCKED


class ApiError(Exception):
    """An HTTP answer from the FLORA API that is not a success.

    Not a BatchrunError: the runner decides what each answer means for a row or the batch.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        fields: list[dict[str, str]] | None = None,
        retry_after: float | None = None,
        should_retry: bool | None = None,
        run_id: str | None = None,
    ) -> None:
        self.status = status
        self.run_id = run_id  # a run the answer names, e.g. the one a duplicate key holds
        self.code = code
        self.message = message
        self.request_id = request_id
        self.fields = fields or []
        self.retry_after = retry_after
        self.should_retry = should_retry
        super().__init__(self.describe())

    def describe(self) -> str:
        text = f"HTTP {self.status} {self.code}: {self.message}"
        if self.fields:
            text += (
                " (" + "; ".join(f"{f.get('field')}: {f.get('message')}" for f in self.fields) + ")"
            )
        if self.request_id:
            text += f" [request-id {self.request_id}]"
        return text


class TransportError(Exception):
    """The request may or may not have reached the server (timeout, dropped connection)."""
