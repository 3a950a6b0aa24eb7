"""Kill -9 at random moments under faults, restart each time: no row is paid for twice, none is
lost, and every row the report calls in doubt really holds a run on the server."""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support.cli import batchrun_cmd, cli_env, prompts, run_cli, write_csv
from tests.support.emulator import EmulatorProcess

pytestmark = pytest.mark.e2e

FAULTS = ("--rate-5xx", "0.05", "--rate-429", "0.05", "--retry-after", "0.2", "--drop", "0.04",
          "--lose-answer", "0.08", "--run-seconds", "0.6", "--jitter", "0.5", "--seed", "7")  # fmt: skip


def test_sigkill_at_random_moments_never_pays_twice(tmp_path: Path) -> None:
    rows = 300
    manifest = write_csv(tmp_path / "crash.csv", prompts(rows, fail_every=37))
    rng = random.Random(2026)
    with EmulatorProcess(*FAULTS) as emu:
        args = [
            "run", str(manifest), "--technique", "tech_text2img", "--base-url", emu.base_url,
            "--state-dir", str(tmp_path / "state"), "--report", str(tmp_path / "report.parquet"),
            "--concurrency", "16",
        ]  # fmt: skip
        kills = 0
        for _ in range(8):
            proc = subprocess.Popen(
                batchrun_cmd(*args), env=cli_env(), stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(rng.uniform(0.8, 3.0))
            if proc.poll() is None:
                proc.kill()  # SIGKILL: no handler runs, nothing is flushed
                kills += 1
            proc.wait()
        assert kills >= 4  # the batch must really have been interrupted

        final = run_cli(*args, timeout=300)
        assert final.returncode in (1, 3), final.stderr + final.stdout

        ledger = emu.ledger()
        assert max(ledger["creates_by_key"].values()) == 1, "a key created two runs"
        assert len(ledger["runs"]) <= rows, "more runs than rows"

        df = pd.read_parquet(tmp_path / "report.parquet")
        assert len(df) == rows and list(df["id"]) == [f"row-{i:05d}" for i in range(rows)]
        assert set(df["status"]) <= {"completed", "failed", "in_doubt"}
        held = set(ledger["creates_by_key"])
        doubtful = df[df["status"] == "in_doubt"]
        assert set(doubtful["idempotency_key"]) <= held, "an in-doubt row holds no run"
        by_run = {r["run_id"]: r for r in ledger["runs"]}
        settled = df[df["status"].isin(["completed", "failed"])]
        for run_id, key in zip(settled["run_id"], settled["idempotency_key"], strict=True):
            assert by_run[run_id]["idempotency_key"] == key  # each row holds its own run
        # Every run the server made belongs to exactly one row of the report.
        assert len(set(settled["run_id"])) == len(settled)
        assert len(settled) + len(doubtful) == len(ledger["runs"])
        assert (
            df[df["status"] == "failed"]["id"].tolist()
            == [f"row-{i:05d}" for i in range(0, rows, 37)]
            or final.returncode == 3
        )
