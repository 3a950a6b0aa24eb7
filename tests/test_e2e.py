"""End to end: the real CLI, as a separate process, against the emulator as another process."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd
import pyarrow.parquet as pq
import pytest

from batchrun.journal import open_existing_journal
from tests.support.cli import (
    API_KEY,
    batchrun_cmd,
    cli_env,
    prompts,
    run_cli,
    write_csv,
    write_jsonl,
)
from tests.support.emulator import EmulatorProcess

pytestmark = pytest.mark.e2e


def run_args(emu: EmulatorProcess, manifest: Path, tmp: Path, *extra: str) -> list[str]:
    return [
        "run", str(manifest), "--technique", "tech_text2img", "--base-url", emu.base_url,
        "--state-dir", str(tmp / "state"), "--report", str(tmp / "report.parquet"),
        "--report", str(tmp / "report.csv"), "--concurrency", "20", *extra,
    ]  # fmt: skip


def test_200_rows_complete_and_a_rerun_sends_nothing(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    manifest = write_csv(tmp_path / "batch.csv", prompts(200))
    args = run_args(emulator, manifest, tmp_path)
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr + first.stdout
    assert "completed" in first.stdout and "report:" in first.stdout

    table = pq.read_table(tmp_path / "report.parquet")
    df = table.to_pandas()
    assert len(df) == 200
    assert list(df["id"]) == [f"row-{i:05d}" for i in range(200)]  # manifest order
    assert set(df["status"]) == {"completed"}
    assert str(table.schema.field("created_at").type) == "timestamp[ms, tz=UTC]"
    assert str(table.schema.field("charged_cost").type) == "double"
    assert df["outputs"].iloc[0][0]["type"] == "imageUrl"
    ledger = emulator.ledger()
    assert len(ledger["runs"]) == 200
    assert df["charged_cost"].sum() == pytest.approx(ledger["charges_total"])
    assert max(ledger["creates_by_key"].values()) == 1
    assert set(df["idempotency_key"]) == set(ledger["creates_by_key"])

    csv_df = pd.read_csv(tmp_path / "report.csv")
    assert len(csv_df) == 200 and json.loads(csv_df["outputs"][0])[0]["output_id"] == "image"

    creates = emulator.stats()["endpoint:create"]
    before = (tmp_path / "report.csv").read_text()
    second = run_cli(*args)
    assert second.returncode == 0, second.stderr
    assert emulator.stats()["endpoint:create"] == creates
    assert len(emulator.ledger()["runs"]) == 200
    assert (tmp_path / "report.csv").read_text() == before


def test_failing_rows_exit_1_with_their_errors(emulator: EmulatorProcess, tmp_path: Path) -> None:
    manifest = write_jsonl(tmp_path / "batch.jsonl", prompts(30, fail_every=7))
    result = run_cli(*run_args(emulator, manifest, tmp_path))
    assert result.returncode == 1, result.stderr
    df = pd.read_parquet(tmp_path / "report.parquet")
    failed = df[df["status"] == "failed"]
    assert sorted(failed["id"]) == [f"row-{i:05d}" for i in range(0, 30, 7)]
    assert set(failed["error_code"]) == {"provider_error"}
    assert failed["error_message"].str.contains("provider failed").all()
    assert (df[df["status"] == "completed"]["error_code"].isna()).all()


def test_invalid_manifest_sends_nothing(emulator: EmulatorProcess, tmp_path: Path) -> None:
    rows = prompts(5)
    rows[3]["prompt"] = ""
    manifest = write_csv(tmp_path / "batch.csv", rows)
    result = run_cli(*run_args(emulator, manifest, tmp_path))
    assert result.returncode == 2
    assert f"{manifest}:5: row has no input values" in result.stderr
    assert "Traceback" not in result.stderr
    assert emulator.ledger()["runs"] == []

    result = run_cli(*run_args(emulator, manifest, tmp_path, "--skip-invalid"))
    assert result.returncode == 1, result.stderr
    df = pd.read_csv(tmp_path / "report.csv")
    assert list(df["status"]) == ["completed"] * 3 + ["rejected", "completed"]
    assert len(emulator.ledger()["runs"]) == 4


def test_duplicate_ids_name_both_lines(emulator: EmulatorProcess, tmp_path: Path) -> None:
    rows = prompts(4)
    rows[2]["id"] = rows[0]["id"]
    manifest = write_csv(tmp_path / "batch.csv", rows)
    result = run_cli(*run_args(emulator, manifest, tmp_path, "--skip-invalid"))
    assert result.returncode == 2
    assert f"{manifest}:4: duplicate id 'row-00000' (first on line 2)" in result.stderr
    assert emulator.ledger()["runs"] == []


def test_missing_or_refused_key_is_a_configuration_error(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "batch.csv", prompts(3))
    with EmulatorProcess("--api-key", "the-right-key") as emu:
        result = run_cli(*run_args(emu, manifest, tmp_path), env={"FLORA_API_KEY": ""})
        assert result.returncode == 2 and "no API key" in result.stderr
        result = run_cli(*run_args(emu, manifest, tmp_path))
        assert result.returncode == 2, result.stderr
        assert "refused the API key" in result.stderr
        assert API_KEY not in result.stderr + result.stdout
        assert emu.ledger()["runs"] == []


def test_report_command_rebuilds_the_report(emulator: EmulatorProcess, tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "batch.csv", prompts(10))
    assert run_cli(*run_args(emulator, manifest, tmp_path)).returncode == 0
    out = tmp_path / "again.jsonl"
    result = run_cli("report", "--state-dir", str(tmp_path / "state"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row_id"] for r in lines] == [f"row-{i:05d}" for i in range(10)]
    status = run_cli("status", "--state-dir", str(tmp_path / "state"), "--json")
    data = json.loads(status.stdout)
    assert data["batches"][0]["states"] == {"completed": 10}


def submitted(state_dir: Path) -> int:
    """Rows whose runs a (running) batch has recorded as created, from its journal."""
    store = open_existing_journal(None, state_dir)
    if store is None:
        return 0
    with store as journal:
        return journal.counts("batch").get("submitted", 0)


def test_sweeps_that_fail_whole_are_waited_out(tmp_path: Path) -> None:
    # A batch killed with runs out, resumed while every run-list read answers 5xx: its first
    # sweeps fail after their retries; the poller backs off, and once the faults are lifted the
    # batch completes, every run created once.
    manifest = write_csv(tmp_path / "batch.csv", prompts(10))
    with EmulatorProcess("--run-seconds", "4", "--run-spread", "0", "--rate-5xx", "1",
                         "--fault-endpoints", "list", "--rate-429", "0") as emu:  # fmt: skip
        cmd, env = batchrun_cmd(*run_args(emu, manifest, tmp_path)), cli_env()
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while submitted(tmp_path / "state") < 10 and time.monotonic() < deadline:
            time.sleep(0.05)  # every run created and its answer recorded, none ended yet
        first.kill()
        first.wait()
        again = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)  # fmt: skip
        time.sleep(2.0)
        failed = emu.stats()["fault:rate_5xx"]
        httpx.post(f"{emu.root_url}/_emulator/faults", json={"rate_5xx": 0.0}).raise_for_status()
        out, err = again.communicate(timeout=60)
        ledger = emu.ledger()
    assert failed >= 3  # a whole sweep, retries and all, failed
    assert again.returncode == 0, err + out
    assert max(ledger["creates_by_key"].values()) == 1
    assert set(pd.read_csv(tmp_path / "report.csv")["status"]) == {"completed"}
