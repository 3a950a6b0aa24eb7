"""`batchrun status` and `batchrun report`: read the journal, change nothing."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click

from ..engine.lock import holder
from ..engine.recovery import ELSEWHERE, elsewhere_advice
from ..errors import ConfigError
from ..journal import (
    JournalStore,
    Leasing,
    ReportRow,
    journal_location,
    open_existing_journal,
)
from ..models import State
from ..report import check_report_path, write_reports
from .common import journal_option, state_dir_option


def _journal(target: str | None, state_dir: Path) -> tuple[JournalStore, Path]:
    """The journal ``--journal`` names (default: the state directory's), and the state
    directory (a path given to --journal is one)."""
    url, state_dir = journal_location(target, state_dir)
    journal = open_existing_journal(url, state_dir)
    if journal is None:
        where = "the journal" if url else str(state_dir)
        raise ConfigError(f"no batches in {where} (no journal there yet); run a batch first")
    return journal, state_dir


def _batch_names(journal: JournalStore, batch: str | None, state_dir: Path) -> list[str]:
    names = [b.name for b in journal.batches()]
    if batch is None:
        return names
    if batch not in names:
        known = ", ".join(names) or "none"
        raise ConfigError(f"no batch '{batch}' in {state_dir} (batches: {known})")
    return [batch]


# The report's words, in the summary's order; `sending` only while a live process sends.
WORDS = ("completed", "failed", "rejected", "in_doubt", "sending", "unsubmitted", "pending",
         "running")  # fmt: skip
UNCONFIRMED = "send_unconfirmed"  # put aside by its process: no one is sending it any more


def _running(journal: JournalStore, name: str, state_dir: Path) -> dict[str, Any] | None:
    """Who works on the batch now: the process holding its lock, or with a shared journal the
    workers whose heartbeat is alive (the first of them, and how many)."""
    if not isinstance(journal, Leasing):
        return holder(state_dir, name)
    workers = journal.live_workers()
    if not workers:
        return None
    _, host, pid, _ = workers[0]
    return {"pid": pid, "host": host, "workers": len(workers)}


def batch_status(journal: JournalStore, name: str, state_dir: Path) -> dict[str, Any]:
    """A batch's rows in the report's words. A row being sent is `sending` while a live
    process holds the batch, and `in_doubt` once none does (or its process gave up on it)."""
    live = _running(journal, name, state_dir)
    counts = journal.counts(name)
    extra = journal.stats(name)
    oldest = extra.pop("oldest_in_flight_sent_at")
    words: Counter[str] = Counter()
    for state, n in counts.items():
        if state == State.PENDING:
            words["unsubmitted"] += n
        elif state not in (State.SUBMITTED, State.SENDING):
            words[state] += n
    for row in journal.rows_in(name, [State.SUBMITTED]):
        words["running" if row.run_status == "running" else "pending"] += 1
    doubts = journal.rows_in(name, [State.IN_DOUBT])
    for row in journal.rows_in(name, [State.SENDING]):
        if live is not None and row.error_code != UNCONFIRMED:
            words["sending"] += 1
        else:
            words["in_doubt"] += 1
            doubts.append(row)
    elsewhere = [r for r in doubts if (r.error_message or "").startswith(ELSEWHERE)]
    info = journal.batch(name)
    extra["in_flight"] = words["pending"] + words["running"] + words["sending"]
    return {
        "batch": name,
        "manifest": info.manifest if info else None,
        "rows": sum(counts.values()),
        "states": {w: words[w] for w in WORDS if words[w]},
        "running_now": live,  # {pid, host, since} of the process running the batch, or null
        **extra,
        "oldest_in_flight_seconds": None if oldest is None else round(time.time() - oldest, 1),
        "sent_elsewhere": len(elsewhere),
        "in_doubt": [_doubt(r) for r in doubts],
    }


def _doubt(row: ReportRow) -> dict[str, Any]:
    why = row.error_message or "sent; no answer recorded"
    return {"row_id": row.row_id, "error_code": row.error_code, "why": why}


@click.command("status")
@state_dir_option
@journal_option
@click.option("--batch", metavar="NAME",
              help="Show only this batch (default: every batch in the state directory).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status_cmd(state_dir: Path, journal: str | None, batch: str | None, as_json: bool) -> None:
    """Show each batch in the state directory: rows per status (the report's words), cost,
    runs in flight, rows in doubt and what to do about them."""
    store, state_dir = _journal(journal, state_dir)
    with store:
        statuses = [
            batch_status(store, n, state_dir) for n in _batch_names(store, batch, state_dir)
        ]
    if as_json:
        click.echo(json.dumps({"batches": statuses}, indent=2))
        return
    if not statuses:
        click.echo(f"no batches in {state_dir}")
    for s in statuses:
        for line in _status_lines(s):
            click.echo(line)


def _status_lines(s: dict[str, Any]) -> list[str]:
    states = ", ".join(f"{k} {v}" for k, v in s["states"].items())
    lines = [f"batch '{s['batch']}' ({s['manifest']}): {s['rows']} rows: {states}"]
    live = s["running_now"]
    if live is not None:
        who = f"pid {live.get('pid', '?')} on {live.get('host', '?')}"
        if isinstance(live.get("since"), int | float):
            who += " since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(live["since"]))
        lines.append(f"  running now ({who})")
    lines.append(f"  charged ${s['charged_cost']:.2f}; {s['costs_unknown']} costs not reported yet")
    if s["in_flight"]:
        oldest = s["oldest_in_flight_seconds"]
        lines.append(
            f"  {s['in_flight']} runs in flight"
            + (f", oldest sent {oldest}s ago" if oldest is not None else "")
        )
    if s["sent_elsewhere"]:
        lines += ["  " + line for line in elsewhere_advice(s["sent_elsewhere"])]
    others = [d for d in s["in_doubt"] if not d["why"].startswith(ELSEWHERE)]
    if others:
        lines.append(f"  {len(others)} rows in doubt:")
        lines += [f"    {d['row_id']}: {d['why']}" for d in others[:10]]
        lines.append(
            "  rerun the batch to settle what can be settled; for the rest check the FLORA "
            "run history, then rerun with --resend-in-doubt (this can pay twice)"
        )
    return lines


@click.command("report")
@state_dir_option
@journal_option
@click.option("--batch", metavar="NAME",
              help="The batch to report (needed when the state directory holds several).")  # fmt: skip
@click.option("--out", "outs", multiple=True, required=True, metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Report file; format from the suffix: .parquet, .csv, .jsonl or .html (repeatable).")  # fmt: skip
def report_cmd(
    state_dir: Path, journal: str | None, batch: str | None, outs: tuple[Path, ...]
) -> None:
    """Write a batch's report from the journal, at any time, even while it runs."""
    for out in outs:
        try:
            check_report_path(out)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    store, state_dir = _journal(journal, state_dir)
    with store as journal_:
        names = _batch_names(journal_, batch, state_dir)
        if len(names) != 1:
            raise ConfigError(
                f"{len(names)} batches in {state_dir} ({', '.join(names)}); name one with --batch"
            )
        info = journal_.batch(names[0])
        columns = info.columns if info else ()
        live = _running(journal_, names[0], state_dir) is not None  # sending: not in doubt
        counts = write_reports(list(outs), journal_.report_rows(names[0]), columns,
                               batch=names[0], live=live)  # fmt: skip
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        for out in outs:
            click.echo(f"wrote {out}: {sum(counts.values())} rows ({summary})")
