"""``--dry-run``: what a run would do, without sending a run or writing the journal."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..api import FloraClient
from ..errors import ConfigError, TransportError
from ..journal import Journal, SyncStats
from ..manifest import open_manifest
from ..models import Job, RowProblem, Technique
from .runner import RunOptions, check_options
from .techniques import column_problems, fetch_techniques


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


def make_plan(opts: RunOptions) -> Plan:
    api_note = None
    try:
        check_options(opts)
    except ConfigError:
        if not opts.api_key:
            api_note = "no API key: techniques not checked, cost not estimated"
        else:
            raise
    manifest = open_manifest(opts.manifest_options())
    journal = Journal.open_existing(opts.state_dir)
    if journal is None:
        stats = _count_only(manifest.rows())
    else:
        with journal:
            stats = journal.plan(opts.batch_name, manifest.rows())
            if opts.retry_failed:
                stats.to_send.update(journal.failed_by_technique(opts.batch_name))
    plan = Plan(stats, sum(stats.to_send.values()), stats.by_state["completed"], stats.to_send)
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
