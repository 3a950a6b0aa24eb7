"""The plain records the journal hands out, and how inputs and outputs are stored as text."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..keys import canonical_json
from ..models import Input, Output, RowProblem


@dataclass(frozen=True, slots=True)
class RowTask:
    """What the submitter needs to send one row."""

    row_id: str
    idx: int
    technique_id: str
    inputs: tuple[Input, ...]
    attempt: int
    idem_key: str | None = None
    body: bytes | None = None
    first_sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class InFlight:
    row_id: str
    run_id: str
    technique_id: str
    created_at: float | None
    run_status: str | None
    sent_at: float | None


@dataclass(frozen=True, slots=True)
class Doubt:
    row_id: str
    technique_id: str
    first_sent_at: float | None
    marked_at: float


@dataclass(frozen=True, slots=True)
class Download:
    row_id: str
    output_id: str
    url: str
    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class BatchInfo:
    name: str
    manifest: str
    columns: tuple[str, ...]
    created_at: float
    updated_at: float
    fingerprint: str | None = None


@dataclass
class SyncStats:
    """What loading a manifest found, by what each row needs now."""

    rows: int = 0
    new: int = 0
    unchanged: int = 0
    edited: int = 0
    rejected: int = 0
    removed: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    problem_count: int = 0
    fatal: bool = False
    by_state: Counter[str] = field(default_factory=Counter)  # state each manifest row is in now
    to_send: Counter[str] = field(default_factory=Counter)  # rows a run would send, by technique

    def note_problem(self, problem: RowProblem, keep: int = 200) -> None:
        self.problem_count += 1
        self.fatal = self.fatal or problem.fatal
        if len(self.problems) < keep:
            self.problems.append(problem)


@dataclass(frozen=True, slots=True)
class ReportRow:
    idx: int
    row_id: str
    technique_id: str
    cells: list[str | None]
    state: str
    attempt: int
    idem_key: str | None
    run_id: str | None
    run_status: str | None
    charged_cost: float | None
    cost_final: bool
    error_code: str | None
    error_message: str | None
    outputs: list[Output]
    created_at: float | None
    started_at: float | None
    completed_at: float | None
    downloads: list[Download] = field(default_factory=list)


def _inputs_json(inputs: Iterable[Input]) -> str:
    return canonical_json([[i.id, i.type, i.value] for i in inputs])


def _inputs_from(text: str) -> tuple[Input, ...]:
    return tuple(Input(i, t, v) for i, t, v in json.loads(text))


def _outputs_json(outputs: Sequence[Output]) -> str | None:
    if not outputs:
        return None
    return canonical_json([[o.output_id, o.type, o.url] for o in outputs])


def problem_row_id(problem: RowProblem) -> str:
    """Rows too broken to have an id are keyed by their line."""
    return problem.row_id if problem.row_id else f"<line {problem.line}>"
