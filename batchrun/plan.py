"""``--dry-run``: what a run would do, without sending a run or writing the journal."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from .client import FloraClient
from .errors import ApiError, ConfigError, TransportError
from .journal import Journal, SyncStats
from .manifest import open_manifest
from .models import Job, RowProblem, Technique
from .runner import RunOptions, check_options


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


def _count(items: list[Job | RowProblem], counter: Counter[str]) -> None:
    for it in items:
        if isinstance(it, Job):
            counter[it.technique_id] += 1


def column_problems(technique: Technique, input_ids: set[str], manifest: str) -> list[str]:
    """Columns that are no input of the technique, and required inputs with no column."""
    if not technique.inputs:
        return []
    declared = {i.id for i in technique.inputs}
    names = ", ".join(sorted(declared))
    out = [
        f"{manifest}: column '{c}' is not an input of technique '{technique.technique_id}' "
        f"(its inputs: {names}); map it with --input, or use --pass-through / --ignore"
        for c in sorted(input_ids - declared)
    ]
    out += [
        f"{manifest}: technique '{technique.technique_id}' requires input '{i.id}' and no column "
        "provides it"
        for i in technique.inputs
        if i.required and i.id not in input_ids
    ]
    return out


async def fetch_techniques(
    client: FloraClient, ids: list[str]
) -> tuple[dict[str, Technique | None], str | None]:
    found: dict[str, Technique | None] = {}
    note = None
    for tid in ids[:20]:
        try:
            found[tid] = await client.get_technique(tid)
        except ApiError as exc:
            if exc.status in (401, 403):
                raise ConfigError(f"the API refused the API key: {exc.describe()}") from None
            found[tid] = None
            note = f"technique '{tid}': {exc.describe()}"
        except TransportError as exc:
            return found, f"API not reachable ({exc}); techniques not checked"
    return found, note


def make_plan(opts: RunOptions) -> Plan:
    try:
        check_options(opts)
        api_key_ok = True
    except ConfigError as exc:
        if "API key" not in str(exc):
            raise
        api_key_ok = False
    manifest = open_manifest(opts.manifest_options())
    by_technique: Counter[str] = Counter()

    def counted() -> object:
        chunk: list[Job | RowProblem] = []
        for item in manifest.rows():
            chunk.append(item)
            if len(chunk) >= 1000:
                _count(chunk, by_technique)
                yield from chunk
                chunk = []
        _count(chunk, by_technique)
        yield from chunk

    journal = Journal.open_existing(opts.state_dir)
    if journal is None:
        stats = SyncStats()
        for item in counted():  # type: ignore[attr-defined]
            stats.rows += 1
            stats.new += 1
            if isinstance(item, RowProblem):
                stats.note_problem(item)
                stats.by_state["rejected"] += 1
            else:
                stats.by_state["pending"] += 1
    else:
        with journal:
            stats = journal.plan(opts.batch_name, counted())  # type: ignore[arg-type]
    to_send = stats.by_state["pending"] + stats.by_state["sending"]
    if opts.retry_failed:
        to_send += stats.by_state["failed"]
    plan = Plan(stats, to_send, stats.by_state["completed"], by_technique)
    if not api_key_ok:
        plan.api_note = "no API key: techniques not checked, cost not estimated"
        return plan
    plan.techniques, plan.api_note = asyncio.run(_techniques(opts, sorted(by_technique)))
    input_ids = set(manifest.input_ids) if hasattr(manifest, "input_ids") else set()
    cost = 0.0
    for tid, tech in plan.techniques.items():
        if tech is None:
            continue
        if input_ids:
            plan.column_errors += column_problems(tech, input_ids, str(opts.manifest))
        if tech.run_cost is not None and stats.rows:
            share = by_technique[tid] / max(1, sum(by_technique.values()))
            cost += tech.run_cost * to_send * share
    known = all(t is not None and t.run_cost is not None for t in plan.techniques.values())
    plan.estimated_cost = cost if plan.techniques and known else None
    return plan


async def _techniques(
    opts: RunOptions, ids: list[str]
) -> tuple[dict[str, Technique | None], str | None]:
    async with FloraClient(opts.base_url, opts.api_key, transport=opts.transport) as client:
        return await fetch_techniques(client, ids)
