"""`batchrun worker`: join batches already in the journal; several workers share one batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..engine.runner import Outcome, RunOptions
from ..engine.worker import joinable, run_worker
from ..errors import ConfigError
from .common import (
    api_options,
    journal_option,
    lease_seconds_option,
    remember_secret,
    state_dir_option,
)
from .run import run_shown


@click.command("worker")
@state_dir_option
@journal_option
@click.option("--batch", metavar="NAME",
              help="The batch to work on (default: every batch in the journal with rows left "
                   "to send or poll, one after another).")  # fmt: skip
@click.option("--report", "report", multiple=True, metavar="PATH",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report here once the batch is done; format from the suffix "
                   "(repeatable). Default: STATE_DIR/reports/BATCH.parquet and .csv.")  # fmt: skip
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Most runs in flight at once, for all workers of the batch together "
                   "(default: as the batch's last `run` or `worker` set it).")  # fmt: skip
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), metavar="R",
              help="Most create requests per second, for all workers together (default: as "
                   "set for the batch).")  # fmt: skip
@click.option("--max-cost", type=click.FloatRange(min=0), metavar="USD",
              help="Budget for the whole batch (default: as set for the batch).")  # fmt: skip
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True, metavar="N",
              help="Times a row whose run failed with a transient error tier is sent again.")  # fmt: skip
@click.option("--retry-backoff", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="First wait before re-sending a retry_later failure.")  # fmt: skip
@click.option("--callback-url", metavar="URL",
              help="HTTPS URL FLORA calls when each run ends (passed on every create).")  # fmt: skip
@click.option("--download", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Once the batch is done, fetch every output file of completed rows into "
                   "DIR (resumable).")  # fmt: skip
@click.option("--workspace", envvar="FLORA_WORKSPACE_ID", show_envvar=True, metavar="ID",
              help="FLORA workspace of the batch's local files' assets.")  # fmt: skip
@api_options
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Log lines instead of progress bars (the default when not on a terminal).")  # fmt: skip
@click.option("--log-every", type=click.FloatRange(min=1), default=30.0, show_default=True,
              metavar="SECONDS", help="How often log lines report progress.")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final summary line.")
@lease_seconds_option
def worker_cmd(**kw: Any) -> int:
    """Join a batch already in the journal and work on it with every other worker: send its
    rows, poll its runs, write its report. No manifest needed: `batchrun run MANIFEST
    --journal URL` loaded it.

    Exits with the batch's exit code once nothing is left to send or poll. With a shared
    (postgresql://) journal any number of workers, on any hosts, cooperate on one batch; a
    worker that dies leaves its rows to the others once its lease runs out.
    """
    remember_secret(kw.get("api_key"))
    base = RunOptions(
        manifest=Path("-"),
        state_dir=kw["state_dir"],
        reports=list(kw["report"]),
        concurrency=kw["concurrency"] or 0,  # 0: the batch's own (see engine.worker)
        rate=kw["rate"],
        max_cost=kw["max_cost"],
        base_url=kw["base_url"],
        api_key=kw["api_key"],
        retries=kw["retries"],
        retry_backoff=kw["retry_backoff"],
        callback_url=kw["callback_url"],
        download=kw["download"],
        workspace=kw["workspace"],
        journal=kw["journal"],
        lease_seconds=kw["lease_seconds"],
    )
    batches = joinable(base, kw["batch"])
    if not batches:
        click.echo("no batch in the journal has rows left to send or poll")
        return 0
    if len(batches) > 1 and base.reports:
        names = ", ".join(b.batch_name for b in batches)
        raise ConfigError(f"--report with {len(batches)} batches to join ({names}); name one "
                          "with --batch")  # fmt: skip
    code = 0
    for opts in batches:
        outcome = _work(opts, kw)
        code = max(code, outcome.exit_code)
    return code


def _work(opts: RunOptions, kw: dict[str, Any]) -> Outcome:
    return run_shown(opts, kw, run_worker)
