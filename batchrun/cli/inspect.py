"""`batchrun status` and `batchrun report`: read the journal, change nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..journal import Journal
from ..models import State
from ..report import check_report_path, write_reports
from .common import batch_option, state_dir_option


def _journal(state_dir: Path) -> Journal:
    journal = Journal.open_existing(state_dir)
    if journal is None:
        raise ConfigError(f"no batches in {state_dir} (no journal there yet); run a batch first")
    return journal


def _batch_names(journal: Journal, batch: str | None, state_dir: Path) -> list[str]:
    names = [b.name for b in journal.batches()]
    if batch is None:
        return names
    if batch not in names:
        known = ", ".join(names) or "none"
        raise ConfigError(f"no batch '{batch}' in {state_dir} (batches: {known})")
    return [batch]


def batch_status(journal: Journal, name: str) -> dict[str, Any]:
    counts = journal.counts(name)
    extra = journal.stats(name)
    oldest = extra.pop("oldest_in_flight_sent_at")
    doubts = journal.rows_in(name, [State.IN_DOUBT, State.SENDING])
    info = journal.batch(name)
    return {
        "batch": name,
        "manifest": info.manifest if info else None,
        "rows": sum(counts.values()),
        "states": counts,
        **extra,
        "oldest_in_flight_seconds": None if oldest is None else round(time.time() - oldest, 1),
        "in_doubt": [
            {"row_id": r.row_id, "error_code": r.error_code, "why": r.error_message} for r in doubts
        ],
    }


@click.command("status")
@state_dir_option
@batch_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status_cmd(state_dir: Path, batch: str | None, as_json: bool) -> None:
    """Show each batch in the state directory: rows per state, cost, runs in flight, rows in
    doubt and what to do about them."""
    with _journal(state_dir) as journal:
        statuses = [batch_status(journal, n) for n in _batch_names(journal, batch, state_dir)]
    if as_json:
        click.echo(json.dumps({"batches": statuses}, indent=2))
        return
    if not statuses:
        click.echo(f"no batches in {state_dir}")
    for s in statuses:
        states = ", ".join(f"{k} {v}" for k, v in sorted(s["states"].items()))
        click.echo(f"batch '{s['batch']}' ({s['manifest']}): {s['rows']} rows: {states}")
        click.echo(
            f"  charged ${s['charged_cost']:.2f}; {s['costs_unknown']} costs not reported yet"
        )
        if s["in_flight"]:
            click.echo(
                f"  {s['in_flight']} runs in flight, oldest sent {s['oldest_in_flight_seconds']}s ago"
            )
        if s["in_doubt"]:
            click.echo(f"  {len(s['in_doubt'])} rows in doubt:")
            for d in s["in_doubt"][:10]:
                click.echo(f"    {d['row_id']}: {d['why']}")
            click.echo(
                "  rerun the batch to settle what can be settled; for the rest check the FLORA "
                "run history, then rerun with --resend-in-doubt (this can pay twice)"
            )


@click.command("report")
@state_dir_option
@batch_option
@click.option("--out", "outs", multiple=True, required=True, metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Report file; format from the suffix: .parquet, .csv or .jsonl (repeatable).")  # fmt: skip
def report_cmd(state_dir: Path, batch: str | None, outs: tuple[Path, ...]) -> None:
    """Write a batch's report from the journal, at any time, even while it runs."""
    for out in outs:
        try:
            check_report_path(out)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    with _journal(state_dir) as journal:
        names = _batch_names(journal, batch, state_dir)
        if len(names) != 1:
            raise ConfigError(
                f"{len(names)} batches in {state_dir} ({', '.join(names)}); name one with --batch"
            )
        info = journal.batch(names[0])
        columns = info.columns if info else ()
        counts = write_reports(list(outs), journal.report_rows(names[0]), columns)
        summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        for out in outs:
            click.echo(f"wrote {out}: {sum(counts.values())} rows ({summary})")
