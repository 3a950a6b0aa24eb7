"""Journal-only measurements: the state machine at full speed, and a finished batch to resume."""

from __future__ import annotations

import time
from pathlib import Path

from batchrun.engine.runner import RunOptions, manifest_fingerprint
from batchrun.journal import Journal
from batchrun.manifest import ManifestOptions, open_manifest
from batchrun.models import Job, Run

GROUP = 50  # rows per commit, as the submitter and poller group them


def _jobs(n: int) -> list[Job]:
    from batchrun.models import Input

    return [Job(i, i + 2, f"row-{i:07d}", "tech", (Input("prompt", "text", f"p {i}"),),
                (f"row-{i:07d}", f"p {i}")) for i in range(n)]  # fmt: skip


def journal_changes_per_second(state: Path, n: int) -> float:
    """Load n rows, then take each through sending -> submitted -> running -> completed."""
    jobs = _jobs(n)
    with Journal.open(state) as j:
        started = time.perf_counter()
        j.sync_manifest("b", "m.csv", ["id", "prompt"], jobs, accept_problems=False)
        changes = n
        for i in range(0, n, GROUP):
            part = jobs[i : i + GROUP]
            j.mark_sending("b", [(x.row_id, f"k{x.index}", b"{}") for x in part])
            for status in ("pending", "running", "completed"):
                j.record_runs("b", [(x.row_id, Run(f"run_{x.index}", status, charged_cost=0.04
                                                   if status == "completed" else None))
                                    for x in part])  # fmt: skip
            changes += 4 * len(part)
        return changes / (time.perf_counter() - started)


def seed_finished_batch(state: Path, manifest: Path, technique: str) -> None:
    """A batch whose every row completed, as a real run of the same command would have left it
    (fingerprint of the loaded manifest included)."""
    m = open_manifest(ManifestOptions(manifest, technique))
    fingerprint = manifest_fingerprint(RunOptions(manifest=manifest, technique=technique))
    with Journal.open(state) as j:
        j.sync_manifest(manifest.stem, str(manifest.resolve()), m.columns, m.rows(), False,
                        fingerprint=fingerprint)  # fmt: skip
        rows = [r.row_id for r in j.report_rows(manifest.stem)]
        for i in range(0, len(rows), 5000):
            part = rows[i : i + 5000]
            j.mark_sending(manifest.stem, [(r, f"k-{r}", b"{}") for r in part])
            j.record_runs(manifest.stem, [(r, Run(f"run-{r}", "completed", charged_cost=0.04,
                                               created_at=time.time())) for r in part])  # fmt: skip
