"""``--dry-run``: what a run would do, without sending a run or writing the journal."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..api import FloraClient
from ..errors import ConfigError, TransportError
from ..journal import SyncStats, open_existing_journal
from ..manifest import open_manifest
from ..models import Job, RowProblem, Technique
from .runner import RunOptions, check_options, located, located_journal
from .techniques import column_problems, fetch_techniques, settle_columns
from .uploads import WORKSPACE_ENV


@dataclass
class Plan:
    stats: SyncStats
    to_send: int
    done: int
    by_technique: Counter[str]
    techniques: dict[str, Technique | None] = field(default_factory=dict)
    api_note: str | None = None  # why techniques could not be checked
    column_errors: list[str] = field(default_factory=list)
    estimated_cost: float | None = None
    notices: list[str] = field(default_factory=list)  # columns that go to the report only
    # Local files: to upload as assets (files, bytes), and those already assets here
    files_to_upload: int = 0
    bytes_to_upload: int = 0
    files_uploaded: int = 0


def make_plan(opts: RunOptions) -> Plan:
    api_note = None
    try:
        check_options(opts)
    except ConfigError:
        if not opts.api_key:
            api_note = "no API key: techniques not checked, cost not estimated"
        else:
            raise
    # As `run` would read it: a 404 technique is a ConfigError here too (exit 2).
    settled = asyncio.run(settle_columns(opts, ask=api_note is None, strict=False))
    opts = settled.options
    manifest = open_manifest(opts.manifest_options())
    rows = located(opts.manifest, manifest.rows())
    opts = located_journal(opts)
    journal = open_existing_journal(opts.journal, opts.state_dir)
    uploaded: set[str] = set()
    if journal is None:
        stats = _count_only(rows)
    else:
        with journal:
            stats = journal.plan(opts.batch_name, rows)
            if opts.retry_failed:
                stats.to_send.update(journal.failed_by_technique(opts.batch_name))
            workspace = opts.workspace or os.environ.get(WORKSPACE_ENV)
            if workspace:  # without one, which assets count is unknown: every file is counted
                uploaded = {s for s, a in journal.assets(workspace).items() if a.status == "ready"}
    plan = Plan(stats, sum(stats.to_send.values()), stats.by_state["completed"], stats.to_send)
    files = {f.sha256: f for f in manifest.local_files.files.values()}  # each content once
    plan.files_uploaded = len(files.keys() & uploaded)
    plan.files_to_upload = len(files) - plan.files_uploaded
    plan.bytes_to_upload = sum(f.size for s, f in files.items() if s not in uploaded)
    plan.notices = settled.notices
    if settled.unreachable:
        api_note = (
            f"API not reachable ({settled.unreachable}); techniques not checked, cost not estimated"
        )
    if api_note:
        plan.api_note = api_note
        return plan
    plan.techniques, plan.api_note = asyncio.run(_techniques(opts, sorted(stats.to_send)))
    for tech in plan.techniques.values():
        if tech is not None:
            plan.column_errors += column_problems(tech, set(manifest.input_ids), str(opts.manifest))
    costs = [(n, plan.techniques.get(t)) for t, n in stats.to_send.items() if n]
    if all(t is not None and t.run_cost is not None for _, t in costs):
        plan.estimated_cost = sum(n * (t.run_cost or 0.0) for n, t in costs if t is not None)
    return plan


def _count_only(items: Iterable[Job | RowProblem]) -> SyncStats:
    """No journal yet: every valid row would be sent."""
    stats = SyncStats()
    for item in items:
        stats.rows += 1
        stats.new += 1
        if isinstance(item, RowProblem):
            stats.note_problem(item)
            stats.by_state["rejected"] += 1
        else:
            stats.by_state["pending"] += 1
            stats.to_send[item.technique_id] += 1
    return stats


async def _techniques(
    opts: RunOptions, ids: list[str]
) -> tuple[dict[str, Technique | None], str | None]:
    async with FloraClient(opts.base_url, opts.api_key, transport=opts.transport) as client:
        try:
            found = await fetch_techniques(client, ids)
        except TransportError as exc:
            return {}, f"API not reachable ({exc}); techniques not checked, cost not estimated"
    missing = [t for t, tech in found.items() if tech is None]
    note = f"the API did not describe {', '.join(missing)}; not checked" if missing else None
    return found, note
