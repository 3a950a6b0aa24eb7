"""The physical limit of a batch: how long the very runs the server drew would take, C at a time,
with no client at all (no request latency, no polling delay, no gaps between runs).

    from bench.limit import ledger_durations, makespan
    limit = makespan(ledger_durations(emu.ledger()), concurrency)
    ratio = wall / limit

A run's duration here is its whole life on the server, pending and running: created_at to
completed_at, the ledger's ``duration_seconds``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from typing import Any


def _check(concurrency: int) -> None:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, not {concurrency!r}")


def makespan(durations: Sequence[float], concurrency: int) -> float:
    """Wall time of running ``durations`` in their order, ``concurrency`` at a time, each as soon
    as a slot is free (greedy: it takes the slot that frees first). 0.0 for no runs."""
    _check(concurrency)
    slots = [0.0] * min(concurrency, len(durations))  # the time each slot becomes free
    end = 0.0
    for duration in durations:
        if not math.isfinite(duration) or duration < 0:
            raise ValueError(f"durations must be finite and non-negative, not {duration!r}")
        finish = slots[0] + duration
        heapq.heapreplace(slots, finish)
        end = max(end, finish)
    return end


def ledger_durations(ledger: Mapping[str, Any]) -> list[float]:
    """Each run's created_at-to-completed_at from an emulator ledger, in creation order."""
    return [float(run["duration_seconds"]) for run in ledger["runs"]]


def retried_makespan(runs: Sequence[Mapping[str, Any]], concurrency: int, backoff: float) -> float:
    """The limit when failed runs are sent again as ``--retries`` does: the ledger's ``runs`` of
    one row (the same inputs) follow each other in the order they were created; after a run that
    failed ``retry_later`` the next waits ``backoff`` seconds, doubling with each re-send of the
    row, at the shortest the jitter allows (3/4), after any other failure none. Re-sends due go
    ahead of rows not yet started; a slot with nothing due waits for the first that will be.
    (The ledger does not name rows: two rows with the same inputs would count as one.)"""
    _check(concurrency)
    chains: dict[str, list[Mapping[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: float(r["created_at"])):
        chains.setdefault(repr(run["inputs"]), []).append(run)
    rows = list(chains.values())  # in the order first sent
    started = 0  # rows whose first run has a slot
    due: list[tuple[float, int, int]] = []  # (ready at, row, attempt) of re-sends
    slots = [0.0] * min(concurrency, len(runs))
    end = 0.0
    while started < len(rows) or due:
        free = heapq.heappop(slots)
        if due and (due[0][0] <= free or started == len(rows)):
            ready, row, attempt = heapq.heappop(due)
            start = max(free, ready)
        else:
            row, attempt, start = started, 0, free
            started += 1
        run = rows[row][attempt]
        finish = start + float(run["duration_seconds"])
        end = max(end, finish)
        heapq.heappush(slots, finish)
        if attempt + 1 < len(rows[row]):
            later = run.get("error_tier") == "retry_later"
            wait = 0.75 * min(600.0, backoff * 2.0**attempt) if later else 0.0
            heapq.heappush(due, (finish + wait, row, attempt + 1))
    return end
