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


def makespan(durations: Sequence[float], concurrency: int) -> float:
    """Wall time of running ``durations`` in their order, ``concurrency`` at a time, each as soon
    as a slot is free (greedy: it takes the slot that frees first). 0.0 for no runs."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive integer, not {concurrency!r}")
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
