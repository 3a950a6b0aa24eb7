"""`batchrun run` and `batchrun plan`."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from ..engine.context import Stop
from ..engine.runner import Outcome, RunOptions, run_batch_async
from ..errors import ConfigError
from .common import (
    InputMap,
    api_options,
    batch_option,
    journal_option,
    lease_seconds_option,
    parse_inputs,
    remember_secret,
    scrub,
    state_dir_option,
)
from .progress import BarProgress, LogProgress, Silent
from .signals import stopping_on_signals
from .summary import plan_text, summary_record, summary_text

STATUS_ORDER = ("completed", "failed", "rejected", "in_doubt", "unsubmitted", "pending", "running")


def _parse_input(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[InputMap, bool]:
    try:
        return parse_inputs(values)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def manifest_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path)),
        click.option("--technique", "-t", metavar="ID",
                     help="Technique id or slug for rows without a technique_id column."),
        state_dir_option,
        journal_option,
        batch_option,
        click.option("--id-column", default="id", show_default=True, metavar="COLUMN",
                     help="Column holding each row's unique id."),
        click.option("--sheet", metavar="NAME", help="XLSX sheet to read (default: the first)."),
        click.option("--input", "input_map", multiple=True, metavar="COLUMN[=INPUT_ID[:TYPE]]",
                     callback=_parse_input,
                     help="Send COLUMN as input INPUT_ID (repeatable). A bare COLUMN names an "
                          "input sent under its own name, and makes the named columns the only "
                          "inputs: every other column goes to the report only."),
        click.option("--pass-through", multiple=True, metavar="COLUMN",
                     help="Column copied to the report, not sent as an input (repeatable)."),
        click.option("--ignore", multiple=True, metavar="COLUMN",
                     help="Column neither sent nor reported (repeatable)."),
        click.option("--skip-invalid", is_flag=True,
                     help="Report invalid rows as 'rejected' and send the rest, instead of "
                          "stopping before anything is sent."),
        click.option("--retry-failed", is_flag=True,
                     help="Send failed rows again, each under a new key (next attempt)."),
        click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
                     metavar="N",
                     help="Times a row whose run failed with a transient error tier is sent "
                          "again, each under the next attempt's key (0: never)."),
        click.option("--retry-backoff", type=click.FloatRange(min=0), default=30.0,
                     show_default=True, metavar="SECONDS",
                     help="First wait before re-sending a run that failed because the provider "
                          "was under load (retry_later tier); doubles each time."),
        click.option("--workspace", envvar="FLORA_WORKSPACE_ID", show_envvar=True, metavar="ID",
                     help="FLORA workspace the manifest's local files are uploaded to as assets "
                          "(default: the only workspace the API key sees)."),
        api_options,
    ]  # fmt: skip
    for option in reversed(opts):
        f = option(f)
    return f


def _options(kw: dict[str, Any]) -> RunOptions:
    remember_secret(kw.get("api_key"))
    return RunOptions(
        manifest=kw["manifest"],
        technique=kw["technique"],
        state_dir=kw["state_dir"],
        batch=kw["batch"],
        reports=list(kw.get("report") or ()),
        concurrency=kw.get("concurrency") or 8,
        rate=kw.get("rate"),
        base_url=kw["base_url"],
        api_key=kw["api_key"],
        retry_failed=kw["retry_failed"],
        retries=kw["retries"],
        retry_backoff=kw["retry_backoff"],
        max_cost=kw.get("max_cost"),
        resend_in_doubt=kw.get("resend_in_doubt", False),
        skip_invalid=kw["skip_invalid"],
        callback_url=kw.get("callback_url"),
        download=kw.get("download"),
        workspace=kw.get("workspace"),
        id_column=kw["id_column"],
        sheet=kw["sheet"],
        input_map=kw["input_map"][0],
        named_inputs=kw["input_map"][1],
        pass_through=frozenset(kw["pass_through"]),
        ignore=frozenset(kw["ignore"]),
        journal=kw.get("journal"),
        lease_seconds=kw.get("lease_seconds") or 120.0,
    )


@click.command("run")
@manifest_options
@click.option(
    "--report",
    "report",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="Write the report here; format from the suffix: .parquet, .csv, .jsonl or .html "
    "(a gallery; repeatable). Default: STATE_DIR/reports/BATCH.parquet and .csv.",
)
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Most runs in flight at once.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="R",
    help="Most create requests per second (default: no limit).",
)
@click.option("--max-cost", type=click.FloatRange(min=0), metavar="USD",
              help="Send no run once charged plus in-flight estimated cost would pass USD; the "
                   "rest stays unsubmitted (exit 3) until rerun with a higher budget.")  # fmt: skip
@click.option(
    "--resend-in-doubt",
    is_flag=True,
    help="Send in-doubt rows again under a new key. They may already hold a run: "
    "this can pay twice. Check the run history first.",
)
@click.option(
    "--callback-url",
    metavar="URL",
    help="HTTPS URL FLORA calls when each run ends (passed on every create).",
)
@click.option("--download", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Fetch every output file of completed rows into DIR (resumable; recorded in "
                   "the report).")  # fmt: skip
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check the manifest and the techniques and print the plan; send nothing.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines instead of progress bars (the default when not on a terminal).",
)
@click.option(
    "--log-every",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How often log lines report progress.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final summary line.")
@lease_seconds_option
def run_cmd(**kw: Any) -> int:
    """Run every row of MANIFEST as a technique run and write the report.

    Run the same command again to resume: completed rows are not sent again, and rows that
    were sent are never paid for twice.
    """
    opts = _options(kw)
    if kw["dry_run"]:
        return _plan(opts)
    return run_shown(opts, kw, run_batch_async).exit_code


Runner = Callable[[RunOptions, Any, Stop], Awaitable[Outcome]]


def run_shown(opts: RunOptions, kw: dict[str, Any], runner: Runner) -> Outcome:
    """Run a batch the way the command shows it: bars on a terminal, log lines elsewhere,
    Ctrl-C and SIGTERM stopping it cleanly, and the summary at the end."""
    if kw["quiet"]:
        progress: Any = Silent()
    elif kw["log_format"] or not sys.stderr.isatty():
        progress = LogProgress(opts.batch_name, kw["log_format"] or "text", kw["log_every"])
    else:
        progress = BarProgress(opts.batch_name)

    async def shown() -> Outcome:
        stop = Stop()
        with stopping_on_signals(stop, progress):
            return await runner(opts, progress, stop)

    try:
        outcome = asyncio.run(shown())
    finally:
        progress.close()
    _print_summary(outcome, quiet=kw["quiet"], as_json=kw["log_format"] == "json")
    return outcome


@click.command("plan")
@manifest_options
def plan_cmd(**kw: Any) -> int:
    """Check MANIFEST and print what `run` would do (same as `run --dry-run`)."""
    return _plan(_options(kw))


def _plan(opts: RunOptions) -> int:
    from ..engine.plan import make_plan

    plan = make_plan(opts)
    click.echo(scrub(plan_text(opts, plan)))
    if plan.column_errors:
        raise ConfigError(plan.column_errors[0])
    if plan.stats.problem_count and (plan.stats.fatal or not opts.skip_invalid):
        return 2
    return 0


def _print_summary(outcome: Outcome, quiet: bool, as_json: bool = False) -> None:
    if as_json:  # one JSON line, like the log lines before it
        text = json.dumps(summary_record(outcome), ensure_ascii=False, default=str)
    else:
        text = summary_text(outcome, brief=quiet)
    click.echo(scrub(text))
