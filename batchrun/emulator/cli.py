"""`batchrun emulator`: start the local FLORA-compatible server in the foreground."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import click
from click.core import ParameterSource

from .config import EmulatorConfig
from .failures import format_mix, parse_mix
from .faults import ENDPOINTS, Faults, parse_endpoints, parse_latency
from .server import serve

_PROBABILITY = click.FloatRange(0.0, 1.0)
_SECONDS = click.FloatRange(min=0.0)
_DEFAULT = EmulatorConfig()  # the CLI's defaults are the config's, so the two never drift apart


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8787,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the line printed on start tells which).",
)
@click.option("--api-key", help="Accept only this bearer key (default: any non-empty key).")
@click.option(
    "--run-seconds",
    default=_DEFAULT.run_seconds,
    show_default=True,
    type=_SECONDS,
    help="Mean seconds a run runs (status running), after its pending phase.",
)
@click.option(
    "--run-spread",
    default=_DEFAULT.run_spread,
    show_default=True,
    type=click.FloatRange(0.0, 3.0),
    metavar="SIGMA",
    help="Run and queue times are lognormal with this sigma around their means (0.5: 80% "
    "of runs take 0.5-1.7x the mean, a long tail); 0: every run takes exactly the means.",
)
@click.option(
    "--pending-seconds",
    type=_SECONDS,
    help="Mean seconds a run is queued (status pending) before it runs "
    "[default: --pending-fraction of --run-seconds].",
)
@click.option(
    "--pending-fraction",
    default=_DEFAULT.pending_fraction,
    show_default=True,
    type=click.FloatRange(0.0, 100.0),
    help="Mean queue time as a fraction of --run-seconds, unless --pending-seconds is given.",
)
@click.option(
    "--progress",
    "progress",
    default=_DEFAULT.progress,
    show_default=True,
    type=click.Choice(["even", "uneven", "none"]),
    help="How a running run's progress rises: evenly in whole percents; unevenly (0 for the "
    "first fifth of the run, as a model loads, 99 for the last tenth, as outputs are stored); "
    "or not at all (0 until it ends).",
)
@click.option(
    "--jitter",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Deprecated: sets --run-spread to F/sqrt(3), the spread of a uniform +-F; "
    "ignored when --run-spread is given.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of every random choice: the same seed and requests replay the same faults.",
)
@click.option(
    "--fail-rate",
    default=_DEFAULT.faults.fail_rate,
    show_default=True,
    type=_PROBABILITY,
    help="Chance that a run fails, with a FLORA error_code of a tier drawn by --fail-mix "
    "(0: only FAIL triggers fail; see below).",
)
@click.option(
    "--fail-mix",
    default=format_mix(_DEFAULT.faults.fail_mix),
    show_default=True,
    metavar="TIER=SHARE,...",
    help="How failures split by tier: retry_now, retry_later, change_input, not_retryable, and "
    "moderated (GPU_PROVIDER_ERROR carrying a safety refusal). Shares are weights; a tier's "
    "rate is --fail-rate times its share; the code is drawn from the tier's list.",
)
@click.option(
    "--quote-on-create/--no-quote-on-create",
    default=_DEFAULT.quote_on_create,
    show_default=True,
    help="The create answer carries charged_cost: the technique's run_cost, a quote.",
)
@click.option(
    "--cost-drift-rate",
    default=_DEFAULT.cost_drift_rate,
    show_default=True,
    type=_PROBABILITY,
    help="Chance a completed run's final charged_cost differs from its quote.",
)
@click.option(
    "--cost-drift",
    default=_DEFAULT.cost_drift,
    show_default=True,
    type=click.FloatRange(0.0, 100.0),
    metavar="F",
    help="How far a drifting cost goes: quote x (1+F)^u, u uniform in [-1, 1].",
)
@click.option(
    "--late-cost-seconds",
    default=0.0,
    show_default=True,
    type=_SECONDS,
    help="A completed run shows no charged_cost until this long after it completed.",
)
@click.option(
    "--duplicate-mode",
    type=click.Choice(["conflict409", "replay"]),
    default="conflict409",
    show_default=True,
    help="Answer to a repeated idempotency key with the same body: 409, or a 200 replay.",
)
@click.option(
    "--idempotency-window",
    default=7200.0,
    show_default=True,
    type=_SECONDS,
    help="Seconds an idempotency key is remembered.",
)
@click.option(
    "--create-status",
    type=click.Choice(["201", "200"]),
    default="201",
    show_default=True,
    help="HTTP status of a successful create.",
)
@click.option(
    "--timestamps",
    type=click.Choice(["s", "ms"]),
    default="s",
    show_default=True,
    help="Timestamps as float epoch seconds or integer epoch milliseconds.",
)
@click.option(
    "--id-field",
    type=click.Choice(["run_id", "runId"]),
    default="run_id",
    show_default=True,
    help="Name of the run id field in create and get answers.",
)
@click.option(
    "--absent-fields",
    type=click.Choice(["omit", "null"]),
    default="omit",
    show_default=True,
    help="Optional run fields without a value: left out, or sent as null.",
)
@click.option(
    "--open-catalogue",
    is_flag=True,
    help="Unknown technique ids act as a generic technique taking any inputs ($0.05 a run).",
)
@click.option(
    "--media-base",
    help="Base URL of output files [default: the other loopback name, i.e. another origin].",
)
@click.option(
    "--latency",
    default="0",
    help="Extra seconds per API request: fixed (0.05) or uniform in a range (0.01..0.2).",
)
@click.option(
    "--rate-429",
    default=0.0,
    show_default=True,
    type=_PROBABILITY,
    help="Chance an API request is answered 429 rate_limited.",
)
@click.option(
    "--retry-after",
    default=1.0,
    show_default=True,
    type=_SECONDS,
    help="Seconds announced by a 429's Retry-After (or retry-after-ms) header.",
)
@click.option(
    "--retry-after-prob",
    default=1.0,
    show_default=True,
    type=_PROBABILITY,
    help="Chance a 429 carries a retry header at all.",
)
@click.option(
    "--retry-after-ms-prob",
    default=0.0,
    show_default=True,
    type=_PROBABILITY,
    help="Chance a 429's retry header is retry-after-ms instead of Retry-After.",
)
@click.option(
    "--rate-5xx",
    default=0.0,
    show_default=True,
    type=_PROBABILITY,
    help="Chance an API request is answered 500, 502 or 503 before anything happens.",
)
@click.option(
    "--drop",
    default=0.0,
    show_default=True,
    type=_PROBABILITY,
    help="Chance an API request's connection is cut before it is handled.",
)
@click.option(
    "--lose-answer",
    default=0.0,
    show_default=True,
    type=_PROBABILITY,
    help="Chance a create makes the run, then cuts the connection before answering.",
)
@click.option(
    "--max-active",
    type=click.IntRange(min=0),
    help="Most runs pending or running at once; a create above it gets 429.",
)
@click.option(
    "--credits",
    type=click.FloatRange(min=0.0),
    help="Account balance in USD; a create it cannot pay for gets 402.",
)
@click.option(
    "--fault-endpoints",
    default="all",
    show_default=True,
    help=f"Comma-separated endpoints the request faults hit: {', '.join(ENDPOINTS)} or all.",
)
def emulator(**kw: Any) -> None:
    """Start a local FLORA-compatible API server, for tests, demos and trying things out.

    It prints one line, "FLORA emulator listening on URL", then serves until interrupted.
    Runs, keys and charges can be inspected under /_emulator/ on the same port; the ledger
    (/_emulator/ledger) shows each run's drawn pending_seconds, run_seconds and
    duration_seconds, its created/started/completed_at, quoted and final cost, error code
    and tier. Every random choice follows --seed.

    The defaults behave like FLORA: runs queue, then take varying times; a few percent fail
    with FLORA's error codes; a fifth of the final costs differ from the create's quote. Tests
    that need exact timing pass --run-spread 0; --fail-rate 0 and --cost-drift-rate 0 make
    every run complete at its quote.

    A text input value can force a run's fate (the first trigger found wins):

    \b
      FAIL           fails with provider_error (the reference's example code)
      FAIL:CODE      fails with CODE, e.g. FAIL:GENERATION_QUEUE_TOO_LARGE;
                     FAIL:MODERATED gives GPU_PROVIDER_ERROR with a safety message
      FAIL<n>:CODE   the first n runs created with this exact input text fail with
                     CODE (FAIL<n>: provider_error), later ones complete
    """
    try:
        ctx = click.get_current_context()
        run_spread = kw["run_spread"]
        if kw["jitter"] is not None and ctx.get_parameter_source("run_spread") in (
            ParameterSource.DEFAULT,
            ParameterSource.DEFAULT_MAP,
        ):
            run_spread = kw["jitter"] / math.sqrt(3)
        fail_mix = parse_mix(kw["fail_mix"])
        faults = Faults(
            latency=parse_latency(kw["latency"]), rate_429=kw["rate_429"], retry_after=kw["retry_after"],
            retry_after_prob=kw["retry_after_prob"],
            retry_after_ms_prob=kw["retry_after_ms_prob"], rate_5xx=kw["rate_5xx"],
            drop=kw["drop"], lose_answer=kw["lose_answer"], fail_rate=kw["fail_rate"],
            fail_mix=fail_mix, max_active=kw["max_active"], credits=kw["credits"], endpoints=parse_endpoints(kw["fault_endpoints"]),
        )  # fmt: skip
        config = EmulatorConfig(
            api_key=kw["api_key"], run_seconds=kw["run_seconds"], run_spread=run_spread,
            pending_seconds=kw["pending_seconds"], pending_fraction=kw["pending_fraction"],
            progress=kw["progress"], seed=kw["seed"], quote_on_create=kw["quote_on_create"],
            cost_drift_rate=kw["cost_drift_rate"], cost_drift=kw["cost_drift"],
            late_cost_seconds=kw["late_cost_seconds"], duplicate_mode=kw["duplicate_mode"],
            idempotency_window=kw["idempotency_window"],
            create_status=int(kw["create_status"]), timestamps=kw["timestamps"],
            id_field=kw["id_field"], absent_fields=kw["absent_fields"],
            open_catalogue=kw["open_catalogue"], media_base=kw["media_base"], faults=faults,
        )  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with contextlib.suppress(KeyboardInterrupt):
        serve(config, kw["host"], kw["port"])
