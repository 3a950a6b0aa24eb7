"""Plain data: jobs read from a manifest, runs read from the API, row states. No I/O here."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

INPUT_TYPES = ("text", "imageUrl", "videoUrl")
OUTPUT_TYPES = ("imageUrl", "videoUrl", "audioUrl", "text", "documentUrl")
RUN_STATUSES = ("pending", "running", "completed", "failed")
TERMINAL_STATUSES = ("completed", "failed")


@dataclass(frozen=True, slots=True)
class Input:
    """One technique input as the API takes it.

    A local file named in the manifest has ``value`` ``sha256:<hex>`` of its content (what its
    key and digest depend on) and ``source``, the path as the manifest gave it; the asset URL
    takes the value's place only in the request body, at send time."""

    id: str
    type: str
    value: str
    source: str | None = None  # a local file's path as the manifest gave it

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "type": self.type, "value": self.value}

    @property
    def file_sha256(self) -> str | None:
        """The content digest of the local file this input names, if it names one."""
        if self.source is not None and self.value.startswith(FILE_PREFIX):
            return self.value[len(FILE_PREFIX) :]
        return None


FILE_PREFIX = "sha256:"


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A local file a manifest names as an imageUrl or videoUrl input, checked and hashed."""

    path: str  # resolved, absolute
    sha256: str
    size: int
    mtime_ns: int
    content_type: str
    first_index: int = 0  # the first manifest row (0-based) that names it


@dataclass(frozen=True, slots=True)
class Job:
    """One manifest row turned into a technique run request.

    ``index`` is the row's 0-based position among data rows (manifest order); ``line`` is where the
    row starts in the file (1-based, header included) so errors can point at it. ``columns`` holds the
    row's own cells, as text, in manifest column order, for the report.
    """

    index: int
    line: int
    row_id: str
    technique_id: str
    inputs: tuple[Input, ...]
    columns: tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A manifest row that cannot be sent, with where it is and why."""

    index: int
    line: int
    row_id: str | None
    reason: str
    columns: tuple[str | None, ...] = ()
    fatal: bool = False  # a problem --skip-invalid cannot skip (a repeated id)


class State(enum.StrEnum):
    """A row's state in the journal. The report maps these onto its statuses."""

    PENDING = "pending"  # read from the manifest, never sent
    SENDING = "sending"  # key and body recorded; a POST may have left
    SUBMITTED = "submitted"  # run id known, run not finished
    COMPLETED = "completed"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"  # the server may hold a run whose id we do not know
    REJECTED = "rejected"  # invalid row, not sent


FINAL_STATES = (State.COMPLETED, State.FAILED, State.REJECTED)
IN_FLIGHT_STATES = (State.SENDING, State.SUBMITTED)


@dataclass(frozen=True, slots=True)
class Output:
    output_id: str
    type: str
    url: str


@dataclass(frozen=True, slots=True)
class Run:
    """A technique run as the API reports it. Timestamps are UTC epoch seconds."""

    run_id: str
    status: str
    progress: float | None = None
    charged_cost: float | None = None
    created_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    outputs: tuple[Output, ...] = ()
    poll_url: str | None = None
    technique_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class TechniqueInput:
    id: str
    type: str
    name: str | None = None
    required: bool | None = None


@dataclass(frozen=True, slots=True)
class Technique:
    technique_id: str
    name: str | None = None
    inputs: tuple[TechniqueInput, ...] = ()
    run_cost: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
