"""The PostgreSQL journal's load: a 1,000,000-row manifest read and loaded in under a minute,
with memory flat (peak RSS at 1,000,000 rows against 100,000), and the same manifest loaded
again (every row compared, none changed).

    python -m bench.pg_bench            # its own throwaway PostgreSQL (tests/support/postgres.py)
    BENCH_PG_URL=postgresql://... python -m bench.pg_bench     # an existing, empty database

``pg_load(tmp)`` returns the bench's rows, for ``bench/__main__.py``'s list of scenarios. Each
load runs in a child process of its own, so its wall time and peak RSS are its alone. Sizes:
BENCH_BIG_ROWS (1,000,000 by default), as the rest of the bench.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .__main__ import Row

BIG = int(os.environ.get("BENCH_BIG_ROWS", 1_000_000))
TECHNIQUE = "tech_text2img"


def _load_child(url: str, manifest: Path, batch: str, out: Path) -> int:
    """In the child: read the manifest and load it, as `batchrun run` would."""
    from batchrun.journal.postgres import PgJournal
    from batchrun.manifest import ManifestOptions, open_manifest

    m = open_manifest(ManifestOptions(manifest, TECHNIQUE))
    started = time.perf_counter()
    with PgJournal.open(url) as j:
        stats, ok = j.sync_manifest(batch, str(manifest), m.columns, m.rows(), False)
    result = {
        "seconds": time.perf_counter() - started,
        "ok": ok,
        "new": stats.new,
        "unchanged": stats.unchanged,
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    out.write_text(json.dumps(result))
    return 0 if ok else 1


def _load(url: str, manifest: Path, batch: str, tmp: Path) -> dict[str, float]:
    from .__main__ import measure

    out = tmp / f"pg-load-{batch}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "bench.pg_bench", "--child", url, str(manifest), batch, str(out)]
    measured = measure(cmd)
    result: dict[str, float] = json.loads(out.read_text())
    result["wall"] = measured.wall
    return result


def pg_load(tmp: Path) -> list[Row]:
    """The bench rows: the big load, its memory against a tenth of it, and the reload."""
    # Not at the top: the child that loads imports nothing of the bench (its RSS is the load's).
    from .__main__ import Row, write_manifest

    url = os.environ.get("BENCH_PG_URL")
    cluster = None
    if not url:
        from tests.support.postgres import PostgresCluster

        cluster = PostgresCluster().start()
        url = cluster.create_database("bench")
    try:
        small = write_manifest(tmp / "pg-small.csv", BIG // 10)
        big = write_manifest(tmp / "pg-big.csv", BIG)
        tenth = _load(url, small, "pg-small", tmp)
        first = _load(url, big, "pg-big", tmp)
        again = _load(url, big, "pg-big", tmp)
    finally:
        if cluster is not None:
            cluster.stop()
    growth = first["max_rss_kb"] / tenth["max_rss_kb"]
    rss = first["max_rss_kb"] / 1024
    return [
        Row(f"PostgreSQL journal: read and load {BIG:,} rows", "s",
            first["wall"], None, "< 60 s", first["wall"] < 60 and first["new"] == BIG),
        Row(f"  its peak RSS (MB; {BIG // 10:,} rows: {tenth['max_rss_kb'] / 1024:.0f} MB, "
            f"x{growth:.2f})", "MB", rss, None,
            "growth <= 1.5x", growth <= 1.5),
        Row(f"  the same {BIG:,} rows again (compared, unchanged)", "s",
            again["wall"], None, "< 60 s", again["wall"] < 60 and again["unchanged"] == BIG),
    ]  # fmt: skip


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        url, manifest, batch, out = argv[1:5]
        return _load_child(url, Path(manifest), batch, Path(out))
    from .__main__ import table

    with tempfile.TemporaryDirectory(prefix="batchrun-pgbench-") as d:
        print(table(pg_load(Path(d))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
