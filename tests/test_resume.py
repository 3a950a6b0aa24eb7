"""Stopping and starting again, through the real CLI as a separate process."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support.cli import API_KEY, batchrun_cmd, cli_env, prompts, run_cli, write_csv
from tests.support.emulator import EmulatorProcess

pytestmark = pytest.mark.e2e


def args(emu: EmulatorProcess, manifest: Path, tmp: Path, *extra: str) -> list[str]:
    return ["run", str(manifest), "-t", "tech_text2img", "--base-url", emu.base_url,
            "--state-dir", str(tmp / "state"), "--report", str(tmp / "r.parquet"), *extra]  # fmt: skip


def start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(batchrun_cmd(*cmd), env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for_creates(emu: EmulatorProcess, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(emu.ledger()["runs"]) < n:
        assert time.monotonic() < deadline, "the batch never started sending"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_cleanly_and_the_rerun_finishes(tmp_path: Path, sig: signal.Signals) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(40))
    with EmulatorProcess("--run-seconds", "1.0") as emu:
        proc = start(args(emu, manifest, tmp_path, "-c", "4"))
        wait_for_creates(emu, 2)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 3, err
        assert "rerun the same command" in out + err
        assert "Traceback" not in err
        df = pd.read_parquet(tmp_path / "r.parquet")
        assert "unsubmitted" in set(df["status"])
        again = run_cli(*args(emu, manifest, tmp_path, "-c", "8"))
        assert again.returncode == 0, again.stderr
        ledger = emu.ledger()
        assert len(ledger["runs"]) == 40 and max(ledger["creates_by_key"].values()) == 1


def test_second_sigint_leaves_at_once(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(20))
    with EmulatorProcess("--run-seconds", "5", "--latency", "2") as emu:
        proc = start(args(emu, manifest, tmp_path, "-c", "2"))
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=5)
        assert proc.returncode == 3
        again = run_cli(*args(emu, manifest, tmp_path, "-c", "10"), timeout=120)
        assert again.returncode == 0, again.stderr
        assert max(emu.ledger()["creates_by_key"].values()) == 1


def test_one_process_per_batch(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(10))
    with EmulatorProcess("--run-seconds", "3") as emu:
        first = start(args(emu, manifest, tmp_path, "-c", "2"))
        wait_for_creates(emu, 1)
        second = run_cli(*args(emu, manifest, tmp_path), timeout=20)
        assert second.returncode == 4
        assert f"pid {first.pid}" in second.stderr and "already running" in second.stderr
        first.kill()  # a dead holder's lock is free at once: the kernel drops it
        first.wait()
        third = run_cli(*args(emu, manifest, tmp_path, "-c", "10"), timeout=120)
        assert third.returncode == 0, third.stderr
        assert max(emu.ledger()["creates_by_key"].values()) == 1


def test_insufficient_credits_stop_sending_and_resume_later(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(10))
    with EmulatorProcess("--run-seconds", "0.2", "--credits", "0.2") as emu:
        result = run_cli(*args(emu, manifest, tmp_path, "-c", "2"))
        assert result.returncode == 3, result.stderr
        assert "insufficient credits" in result.stdout
        df = pd.read_parquet(tmp_path / "r.parquet")
        assert (df["status"] == "completed").sum() == 5
        assert (df["status"] == "unsubmitted").sum() == 5
        emu.set_faults(credits=100)
        result = run_cli(*args(emu, manifest, tmp_path, "-c", "2"))
        assert result.returncode == 0, result.stderr
        assert len(emu.ledger()["runs"]) == 10


def test_retry_failed_and_edited_rows(tmp_path: Path) -> None:
    rows = prompts(6, fail_every=4)  # rows 0 and 4 fail
    manifest = write_csv(tmp_path / "b.csv", rows)
    with EmulatorProcess("--run-seconds", "0.2") as emu:
        assert run_cli(*args(emu, manifest, tmp_path)).returncode == 1
        first = pd.read_parquet(tmp_path / "r.parquet").set_index("id")
        written = (tmp_path / "r.parquet").stat().st_mtime_ns
        # Nothing changed: nothing is sent, and the report, which shows exactly this journal
        # already, is left as it is; the summary says the same.
        again = run_cli(*args(emu, manifest, tmp_path))
        assert again.returncode == 1 and "failed" in again.stdout + again.stderr
        assert len(emu.ledger()["runs"]) == 6
        assert (tmp_path / "r.parquet").stat().st_mtime_ns == written
        (tmp_path / "r.parquet").unlink()  # a report that went missing is written again
        assert run_cli(*args(emu, manifest, tmp_path)).returncode == 1
        assert pd.read_parquet(tmp_path / "r.parquet").set_index("id").equals(first)
        # --retry-failed: only the failed rows, each under a new key.
        assert run_cli(*args(emu, manifest, tmp_path, "--retry-failed")).returncode == 1
        second = pd.read_parquet(tmp_path / "r.parquet").set_index("id")
        assert len(emu.ledger()["runs"]) == 8
        for rid in ("row-00000", "row-00004"):
            assert second.loc[rid, "attempt"] == 2
            assert second.loc[rid, "idempotency_key"] != first.loc[rid, "idempotency_key"]
        assert (second.loc["row-00001", "run_id"]) == first.loc["row-00001", "run_id"]
        # An edited row runs again; unchanged completed rows do not.
        rows[1]["prompt"] = "a brand new prompt"
        write_csv(manifest, rows)
        assert run_cli(*args(emu, manifest, tmp_path)).returncode == 1
        third = pd.read_parquet(tmp_path / "r.parquet").set_index("id")
        assert len(emu.ledger()["runs"]) == 9
        assert third.loc["row-00001", "run_id"] != first.loc["row-00001", "run_id"]
        assert third.loc["row-00001", "prompt"] == "a brand new prompt"
        assert third.loc["row-00002", "run_id"] == first.loc["row-00002", "run_id"]


def test_the_api_key_goes_nowhere_else(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(8, fail_every=3))
    with EmulatorProcess("--run-seconds", "0.2", "--rate-5xx", "0.1", "--seed", "3") as emu:
        result = run_cli(*args(emu, manifest, tmp_path, "--download", str(tmp_path / "files"),
                               "--report", str(tmp_path / "r.csv"), "--log-format", "json"))  # fmt: skip
        assert result.returncode == 1, result.stderr
        stats = emu.stats()
        assert stats["media_requests"] >= 5 and stats.get("media_auth_leaks", 0) == 0
        status = run_cli("status", "--state-dir", str(tmp_path / "state"))
    assert API_KEY not in result.stdout + result.stderr + status.stdout
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
    state = tmp_path / "state"
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert oct((state / "journal.sqlite").stat().st_mode & 0o777) == "0o600"
