"""Failed runs sent again by their error tier, and budgets that hold, through the real CLI."""

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.support.cli import run_cli, write_csv
from tests.support.emulator import EmulatorProcess

pytestmark = pytest.mark.e2e

ROWS = {
    "now": "FAIL1:GENERATION_PROVIDER_TIMEOUT",  # fails once, then completes
    "later": "FAIL1:GENERATION_QUEUE_TOO_LARGE",  # fails once, sent again after a back-off
    "always": "FAIL:SERVER_ERROR",  # transient every time: retries run out
    "refused": "FAIL:MODERATED",  # GPU_PROVIDER_ERROR with a safety message
    "billing": "FAIL:BILLING_NOT_ENOUGH_CREDITS",
    "unknown": "FAIL",  # provider_error: in no tier
    "fine": "a quiet lake",
}


def _run(emu: EmulatorProcess, tmp: Path, *extra: str) -> tuple[int, str, pd.DataFrame]:
    manifest = write_csv(tmp / "tiers.csv", [{"id": k, "prompt": v} for k, v in ROWS.items()])
    result = run_cli("run", manifest, "-t", "tech_text2img", "--base-url", emu.base_url,
                     "--state-dir", tmp / "state", "--report", tmp / "r.parquet", *extra)  # fmt: skip
    return result.returncode, result.stdout + result.stderr, pd.read_parquet(tmp / "r.parquet")


def test_each_tier_is_retried_or_not_as_flora_advises(tmp_path: Path) -> None:
    with EmulatorProcess("--run-seconds", "0.1") as emu:
        code, out, df = _run(emu, tmp_path, "--retry-backoff", "0.5")
        runs = emu.ledger()["runs"]
    by_row = df.set_index("id")
    assert code == 1, out  # some rows failed for good
    status = by_row["status"].to_dict()
    assert status == {"now": "completed", "later": "completed", "always": "failed",
                      "refused": "failed", "billing": "failed", "unknown": "failed",
                      "fine": "completed"}  # fmt: skip
    tier = by_row["error_tier"].to_dict()
    assert tier["always"] == "retry_now" and tier["refused"] == "change_input"
    assert tier["billing"] == "not_retryable" and tier["unknown"] == "unknown"
    assert pd.isna(tier["now"]) and pd.isna(tier["fine"])
    # Runs per row: one re-send each for the rows that failed once, two for the one that keeps
    # failing (--retries 2), none for the others; every attempt under a key of its own.
    per_prompt = Counter(r["inputs"][0]["value"] for r in runs)
    assert per_prompt == Counter({ROWS["now"]: 2, ROWS["later"]: 2, ROWS["always"]: 3,
                                  ROWS["refused"]: 1, ROWS["billing"]: 1, ROWS["unknown"]: 1,
                                  ROWS["fine"]: 1})  # fmt: skip
    assert len({r["idempotency_key"] for r in runs}) == len(runs)
    assert by_row.loc["now", "attempt"] == by_row.loc["later", "attempt"] == 2
    # The retry_later row waited for its back-off (0.5 s, jittered down to 75 %).
    later = sorted(r["created_at"] for r in runs if r["inputs"][0]["value"] == ROWS["later"])
    first_end = min(r["completed_at"] for r in runs if r["inputs"][0]["value"] == ROWS["later"])
    assert later[1] - first_end >= 0.35
    assert "3 rows sent again after a transient failure (--retries), 2 of them completed" in out


def test_retries_zero_sends_every_row_once(tmp_path: Path) -> None:
    with EmulatorProcess("--run-seconds", "0.1") as emu:
        code, out, df = _run(emu, tmp_path, "--retries", "0")
        runs = emu.ledger()["runs"]
    assert code == 1, out
    assert len(runs) == len(ROWS)
    assert (df.set_index("id").loc[["now", "later"], "status"] == "failed").all()


@pytest.mark.parametrize("seed", ["1", "2", "3"])
def test_the_budget_is_never_passed_at_concurrency_8(tmp_path: Path, seed: str) -> None:
    """Fast runs, quotes on every create, 8 in flight: the ledger never charges past the cap."""
    manifest = write_csv(
        tmp_path / "b.csv", [{"id": f"r{i}", "prompt": f"p {i}"} for i in range(40)]
    )
    with EmulatorProcess("--run-seconds", "0.05", "--seed", seed) as emu:
        result = run_cli("run", manifest, "-t", "tech_text2img", "--base-url", emu.base_url,
                         "--state-dir", tmp_path / "s", "--report", tmp_path / "r.csv",
                         "-c", "8", "--max-cost", "0.30")  # fmt: skip
        ledger = emu.ledger()
    assert result.returncode == 3, result.stdout + result.stderr
    assert "--max-cost reached" in result.stdout
    assert ledger["charges_committed"] <= 0.30 + 1e-9
    assert ledger["charges_committed"] >= 0.30 - 0.04 - 1e-9  # and it spends what it may
