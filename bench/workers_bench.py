"""Several workers, one batch: 3 processes share a PostgreSQL journal against the emulator and
must finish within 1.1 x the limit of C runs at a time (``bench.limit``), with the server's
active runs never above C.

    python -m bench.workers_bench            # its own throwaway PostgreSQL
    BENCH_PG_URL=postgresql://... python -m bench.workers_bench     # an existing database

``workers(tmp)`` returns the bench's rows, for ``bench/__main__.py``'s list of scenarios. The
first process is ``batchrun run MANIFEST --journal URL`` (it loads the batch); the other two are
``batchrun worker --journal URL --batch NAME``, started as soon as the batch is in the journal.
Wall time runs from the first start to the last exit. Sizes: BENCH_WORKERS_ROWS (600),
BENCH_WORKERS_CONCURRENCY (30), BENCH_WORKERS (3).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .limit import ledger_durations, makespan

if TYPE_CHECKING:
    from .__main__ import Row

ROWS = int(os.environ.get("BENCH_WORKERS_ROWS", 600))
CONC = int(os.environ.get("BENCH_WORKERS_CONCURRENCY", 30))
WORKERS = int(os.environ.get("BENCH_WORKERS", 3))
TARGET = 1.10
TECHNIQUE = "tech_text2img"
KEY = "bench-key"


def peak_active(ledger: Mapping[str, Any]) -> int:
    """The most runs the server held active at once (an end before a start at one instant)."""
    edges = sorted(
        [(float(r["completed_at"]), -1) for r in ledger["runs"]]
        + [(float(r["created_at"]), 1) for r in ledger["runs"]]
    )
    peak = active = 0
    for _, step in edges:
        active += step
        peak = max(peak, active)
    return peak


@contextlib.contextmanager
def _database() -> Iterator[str]:
    url = os.environ.get("BENCH_PG_URL")
    if url:
        yield url
        return
    from tests.support.postgres import PostgresCluster

    with PostgresCluster() as pg:
        yield pg.create_database()


def _wait_loaded(url: str, batch: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    from batchrun.journal.postgres import PgJournal

    deadline = time.monotonic() + timeout
    with PgJournal.open(url) as j:
        while j.batch(batch) is None or not j.counts(batch):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bench: the batch was never loaded (exit {proc.returncode})")
            time.sleep(0.02)


def workers(tmp: Path) -> list[Row]:
    from tests.support.emulator import EmulatorProcess

    from .__main__ import Row, write_manifest

    batch = f"workers_{uuid.uuid4().hex[:8]}"
    manifest = write_manifest(tmp / f"{batch}.csv", ROWS)
    env = {**os.environ, "FLORA_API_KEY": KEY}
    args = ("--run-seconds", "1.8", "--run-spread", "0.3", "--seed", "11",
            "--max-active", str(CONC))  # fmt: skip
    with _database() as url, EmulatorProcess(*args) as emu:
        common = ["--journal", url, "--base-url", emu.base_url, "-q"]

        def start(*cmd: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen([sys.executable, "-m", "batchrun", *cmd, *common], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

        started = time.perf_counter()
        procs = [start("run", str(manifest), "-t", TECHNIQUE, "-c", str(CONC),
                       "--state-dir", str(tmp / "w0"))]  # fmt: skip
        _wait_loaded(url, batch, procs[0], 60)
        procs += [start("worker", "--batch", batch, "--state-dir", str(tmp / f"w{k}"))
                  for k in range(1, WORKERS)]  # fmt: skip
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode not in (0, 1):
                raise SystemExit(f"bench: a worker exited {proc.returncode}: {err[-500:]!r}")
        wall = time.perf_counter() - started
        ledger, stats = emu.ledger(), emu.stats()
    limit = makespan(ledger_durations(ledger), CONC)
    ratio = wall / limit
    peak = peak_active(ledger)
    twice = sum(1 for n in ledger["creates_by_key"].values() if n > 1)
    refused = int(stats.get("fault:max_active", 0))
    return [
        Row(f"wall / limit, {WORKERS} workers on one PostgreSQL journal ({ROWS} rows, C={CONC})",
            "x", ratio, None, f"< {TARGET:.2f}", ratio < TARGET),
        Row(f"  peak active runs, all workers (cap {CONC}; creates refused: {refused}, keys "
            f"created twice: {twice})", "runs", float(peak), None, f"<= {CONC}",
            peak <= CONC and refused == 0 and twice == 0),
    ]  # fmt: skip


def main() -> int:
    from .__main__ import table

    with tempfile.TemporaryDirectory(prefix="batchrun-workers-") as d:
        rows = workers(Path(d))
    print(table(rows))
    return 0 if all(r.met for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
