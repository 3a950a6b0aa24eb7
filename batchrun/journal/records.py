"""The plain records the journal hands out, and how inputs and outputs are stored as text."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..keys import canonical_json
from ..models import Input, Output, RowProblem, Run


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
class Resends:
    """Failed runs whose rows are sent again: row id -> not before (epoch seconds), for rows
    that have had fewer than ``limit`` tier re-sends."""

    at: dict[str, float]
    limit: int


@dataclass(frozen=True, slots=True)
class InFlight:
    row_id: str
    run_id: str
    technique_id: str
    created_at: float | None
    run_status: str | None
    sent_at: float | None
    retries: int = 0  # tier re-sends this row has had


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
    host: str | None = None  # the host that fetched it (a shared journal records it)


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
    assets: list[AssetUse] = field(default_factory=list)  # local files the run used as assets


def _inputs_json(inputs: Iterable[Input]) -> str:
    """``[id, type, value]`` each; a local file's input adds its path: ``[..., source]``."""
    return canonical_json(
        [[i.id, i.type, i.value] if i.source is None else [i.id, i.type, i.value, i.source]
         for i in inputs]
    )  # fmt: skip


def _inputs_from(text: str) -> tuple[Input, ...]:
    return tuple(Input(*i) for i in json.loads(text))


def _outputs_json(outputs: Sequence[Output]) -> str | None:
    if not outputs:
        return None
    return canonical_json([[o.output_id, o.type, o.url] for o in outputs])


def problem_row_id(problem: RowProblem) -> str:
    """Rows too broken to have an id are keyed by their line."""
    return problem.row_id if problem.row_id else f"<line {problem.line}>"


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """What the journal knows of one file's asset in one workspace. ``status``: ``creating``
    (the create was announced, no answer recorded), then FLORA's ``pending_upload``, ``ready``
    or ``failed``."""

    workspace_id: str
    sha256: str
    status: str
    size: int
    content_type: str
    file_name: str
    announced_at: float
    asset_id: str | None = None
    url: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AssetUse:
    """One local file a row's run used: the input, the path as the manifest gave it, the asset."""

    input_id: str
    path: str
    sha256: str
    asset_id: str
    url: str


def report_row(
    r: Sequence[Any], files: dict[str, list[Download]], used: dict[str, list[AssetUse]]
) -> ReportRow:
    """A row of the report query (idx, row_id, technique_id, cells, state, attempt, idem_key,
    run_id, run_status, charged_cost, cost_final, error_code, error_message, outputs, created_at,
    started_at, completed_at), whichever back end read it."""
    return ReportRow(
        r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], r[8], r[9],
        bool(r[10]), r[11], r[12],
        [Output(*o) for o in json.loads(r[13])] if r[13] else [],
        r[14], r[15], r[16], files.get(r[1], []), used.get(r[1], []),
    )  # fmt: skip


def run_update(
    row_id: str, run: Run, now: float, batch: str, key: str | None = None
) -> tuple[Any, ...]:
    """What recording a run writes to its row, in the order both back ends' UPDATE takes:
    state, run_id, run_status, cost, quote, cost_final, error_code, error_message, outputs,
    created_at, started_at, completed_at, updated_at, batch, row_id, the run id twice more and
    ``key`` twice (the guards: only news of the row's own run counts, and a create's answer only
    while the row is still under the key it was sent with)."""
    state = run.status if run.finished else "submitted"
    # A failed run that reports no cost was not charged; only completed ones wait for it.
    final = int(run.finished and (run.charged_cost is not None or run.status == "failed"))
    # What an unfinished run shows as charged_cost is a quote: the final cost can differ.
    cost, quote = (run.charged_cost, None) if run.finished else (None, run.charged_cost)
    return (state, run.run_id, run.status, cost, quote, final, run.error_code, run.error_message,
            _outputs_json(run.outputs), run.created_at, run.started_at, run.completed_at, now,
            batch, row_id, run.run_id, run.run_id, key, key)  # fmt: skip
