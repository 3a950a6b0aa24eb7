"""`batchrun emulator`: start the local FLORA-compatible server."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from .config import ENDPOINTS, EmulatorConfig, Faults
from .server import serve


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8787, show_default=True, type=int, help="Port; 0 picks a free one.")
@click.option("--api-key", help="Accept only this key (default: any non-empty bearer token).")
@click.option(
    "--run-seconds", default=2.0, show_default=True, type=float, help="How long a run takes."
)
@click.option(
    "--pending-seconds", type=float, help="How long a run stays pending (default 10%% of a run)."
)
@click.option("--jitter", default=0.0, type=float, help="Run time varies by +- this fraction.")
@click.option("--seed", default=0, type=int, help="Seed for every random choice.")
@click.option(
    "--fail-rate",
    default=0.0,
    type=float,
    help="Share of runs that fail (inputs with FAIL always do).",
)
@click.option(
    "--late-cost-seconds",
    default=0.0,
    type=float,
    help="charged_cost shows up this long after completion.",
)
@click.option(
    "--duplicate-mode",
    type=click.Choice(["conflict409", "replay"]),
    default="conflict409",
    show_default=True,
    help="Answer to a repeated idempotency key.",
)
@click.option(
    "--idempotency-window",
    default=7200.0,
    type=float,
    show_default=True,
    help="Seconds a key is remembered.",
)
@click.option(
    "--create-status", type=click.Choice(["201", "200"]), default="201", show_default=True
)
@click.option(
    "--timestamps",
    type=click.Choice(["s", "ms"]),
    default="s",
    show_default=True,
    help="Epoch seconds or milliseconds.",
)
@click.option(
    "--id-field", type=click.Choice(["run_id", "runId"]), default="run_id", show_default=True
)
@click.option(
    "--open-catalogue", is_flag=True, help="Any technique id works, with any text inputs."
)
@click.option("--media-base", help="Base URL of output files (default: the other loopback name).")
@click.option("--latency", default=0.0, type=float, help="Extra seconds per API request.")
@click.option("--rate-429", default=0.0, type=float, help="Share of requests answered 429.")
@click.option(
    "--retry-after", default=1.0, type=float, help="Retry-After seconds on 429 (negative: none)."
)
@click.option("--rate-5xx", default=0.0, type=float, help="Share of requests answered 5xx.")
@click.option("--drop", default=0.0, type=float, help="Share of requests whose connection is cut.")
@click.option(
    "--lose-answer",
    default=0.0,
    type=float,
    help="Share of creates that make the run and then cut the connection.",
)
@click.option("--max-active", type=int, help="Most runs pending or running at once (429 above).")
@click.option("--credits", type=float, help="Account balance in USD (402 when short).")
@click.option(
    "--fault-endpoints",
    default=",".join(ENDPOINTS),
    show_default=True,
    help="Comma-separated endpoints the request faults apply to.",
)
def emulator(**kw: Any) -> None:
    """Start a local FLORA-compatible API server (for tests, demos and trying things out)."""
    faults = Faults(
        latency=kw["latency"], rate_429=kw["rate_429"],
        retry_after=None if kw["retry_after"] < 0 else kw["retry_after"],
        rate_5xx=kw["rate_5xx"], drop=kw["drop"], lose_answer=kw["lose_answer"],
        fail_rate=kw["fail_rate"], max_active=kw["max_active"], credits=kw["credits"],
        endpoints=tuple(e for e in kw["fault_endpoints"].split(",") if e),
    )  # fmt: skip
    config = EmulatorConfig(
        api_key=kw["api_key"], run_seconds=kw["run_seconds"], pending_seconds=kw["pending_seconds"],
        jitter=kw["jitter"], seed=kw["seed"], late_cost_seconds=kw["late_cost_seconds"],
        duplicate_mode=kw["duplicate_mode"], idempotency_window=kw["idempotency_window"],
        create_status=int(kw["create_status"]), timestamps=kw["timestamps"],
        id_field=kw["id_field"], open_catalogue=kw["open_catalogue"],
        media_base=kw["media_base"], faults=faults,
    )  # fmt: skip
    with contextlib.suppress(KeyboardInterrupt):
        serve(config, kw["host"], kw["port"])
