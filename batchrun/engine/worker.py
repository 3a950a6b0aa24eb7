"""``batchrun worker``: join batches already in the journal, without their manifest.

A batch is loaded once, by ``batchrun run MANIFEST --journal URL``; any number of workers, on
any host that reaches the journal, then send and poll its rows with ``batchrun worker --journal
URL [--batch NAME]``. A worker keeps to the limits the batch's last ``run`` set (its own
``--concurrency``, ``--rate`` or ``--max-cost`` set new ones for every worker), works until
nothing of the batch is left to send or poll, writes the report, and exits with the batch's
exit code.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import ConfigError
from ..journal import JournalStore, Leasing, open_existing_journal
from ..models import State
from .context import Emit, Stop
from .runner import Outcome, RunOptions, located_journal, run_batch_async

_WORK = (State.PENDING, State.SENDING, State.SUBMITTED)


def _where(opts: RunOptions) -> str:
    return "the journal" if opts.journal else f"{opts.state_dir}"


def joinable(opts: RunOptions, batch: str | None) -> list[RunOptions]:
    """The options to work on each batch with: ``batch``, else every batch with rows left to
    send or poll. ``opts.concurrency`` 0 and ``rate``/``max_cost`` None take the batch's own."""
    opts = located_journal(opts)
    journal = open_existing_journal(opts.journal, opts.state_dir)
    if journal is None:
        raise ConfigError(
            f"no journal in {_where(opts)} yet: load the batch first with "
            "`batchrun run MANIFEST` and the same --journal"
        )
    with journal:
        infos = {b.name: b for b in journal.batches()}
        if batch is not None:
            if batch not in infos:
                known = ", ".join(infos) or "none"
                raise ConfigError(f"no batch '{batch}' in {_where(opts)} (batches: {known})")
            names = [batch]
        else:
            names = [n for n in infos if _work_left(journal, n)]
        return [_joining(opts, journal, n, Path(infos[n].manifest)) for n in names]


def _work_left(journal: JournalStore, name: str) -> bool:
    counts = journal.counts(name)
    return any(counts.get(s.value, 0) for s in _WORK)


def _joining(opts: RunOptions, journal: JournalStore, name: str, manifest: Path) -> RunOptions:
    limits = journal.limits(name) if isinstance(journal, Leasing) else None
    concurrency = opts.concurrency or (limits.concurrency if limits else None) or 8
    rate = opts.rate if opts.rate is not None else (limits.rate if limits else None)
    max_cost = opts.max_cost
    if max_cost is None and limits is not None:
        max_cost = limits.max_cost
    return dataclasses.replace(opts, batch=name, manifest=manifest, join=True,
                               concurrency=concurrency, rate=rate, max_cost=max_cost)  # fmt: skip


async def run_worker(
    each: RunOptions, emit: Emit | None = None, stop: Stop | None = None
) -> Outcome:
    """Work on one joined batch (from ``joinable``) until nothing is left to send or poll."""
    return await run_batch_async(each, emit, stop)
