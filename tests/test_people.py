"""What a person around the pipeline relies on: spreadsheets, plans, budgets, progress, downloads,
callbacks and docs, through the real CLI against the emulator."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from batchrun.cli import cli
from tests.support.cli import batchrun_cmd, cli_env, prompts, run_cli, write_csv
from tests.support.emulator import EmulatorProcess

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def base(emu: EmulatorProcess, manifest: Path, tmp: Path, *extra: str) -> list[str]:
    return ["run", str(manifest), "--base-url", emu.base_url, "--state-dir", str(tmp / "state"),
            "--report", str(tmp / "r.parquet"), *extra]  # fmt: skip


def test_xlsx_as_it_comes(emulator: EmulatorProcess, tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Ignore me"
    sheet = wb.create_sheet("Prompts")
    sheet.append(["id", "Prompt text", "style", "seed", "launch", "owner", "notes"])
    sheet.append(["a1", "A fox", "ink", 42.0, dt.date(2026, 12, 1), "ana", "x"])
    sheet.append(["a2", "An owl", None, 7, dt.datetime(2026, 12, 2, 9, 30), "bo", "y"])
    sheet.append([None] * 7)  # empty trailing rows are ignored
    sheet.append([None] * 7)
    path = tmp_path / "campaign.xlsx"
    wb.save(path)
    result = run_cli(*base(emulator, path, tmp_path, "-t", "text-to-image", "--sheet", "Prompts",
                           "--input", "Prompt text=prompt", "--pass-through", "seed",
                           "--pass-through", "launch", "--pass-through", "owner",
                           "--ignore", "notes"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    df = pd.read_parquet(tmp_path / "r.parquet")
    assert list(df["seed"]) == ["42", "7"]
    assert list(df["launch"]) == ["2026-12-01", "2026-12-02 09:30:00"]
    assert "notes" not in df.columns
    # Runs are created concurrently: order the ledger by what was sent.
    sent = sorted((r["inputs"] for r in emulator.ledger()["runs"]), key=lambda i: i[0]["value"])
    assert {"id": "prompt", "type": "text", "value": "A fox"} in sent[0]
    assert [i["id"] for i in sent[1]] == ["prompt"]  # the empty style cell is omitted


def test_parquet_manifest_from_pandas(emulator: EmulatorProcess, tmp_path: Path) -> None:
    # The command runs pyarrow without numpy (see cli.entry): reading a manifest pandas wrote,
    # typed columns and index included, and writing the Parquet report must both still work.
    df = pd.DataFrame(
        {"prompt": ["A fox", "An owl"], "seed": [42, 7],
         "launch": pd.to_datetime(["2026-12-01 00:00", "2026-12-02 09:30"])},
        index=pd.Index(["a1", "a2"], name="id"),
    )  # fmt: skip
    path = tmp_path / "campaign.parquet"
    df.to_parquet(path)
    result = run_cli(*base(emulator, path, tmp_path, "-t", "tech_text2img",
                           "--pass-through", "seed", "--pass-through", "launch"),
                     env={"PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    assert "pyarrow.parquet" in imported and "numpy" not in imported
    report = pd.read_parquet(tmp_path / "r.parquet")
    assert list(report["id"]) == ["a1", "a2"] and list(report["seed"]) == ["42", "7"]
    assert list(report["status"]) == ["completed", "completed"]
    assert list(report["launch"]) == ["2026-12-01 00:00:00", "2026-12-02 09:30:00"]
    assert report["charged_cost"].sum() > 0


def test_dry_run_plans_without_sending(emulator: EmulatorProcess, tmp_path: Path) -> None:
    rows = prompts(10)
    rows[4]["prompt"] = " "
    manifest = write_csv(tmp_path / "b.csv", rows)
    result = run_cli(*base(emulator, manifest, tmp_path, "-t", "tech_text2img", "--dry-run"))
    assert result.returncode == 2
    assert "to send                 9" in result.stdout
    assert f"{manifest}:6: row has no input values" in result.stdout
    assert "estimated cost   $0.36" in result.stdout
    assert emulator.ledger()["runs"] == [] and not (tmp_path / "state").exists()

    assert run_cli(*base(emulator, manifest, tmp_path, "-t", "tech_text2img",
                         "--skip-invalid")).returncode == 1  # fmt: skip
    result = run_cli("plan", str(manifest), "-t", "tech_text2img", "--skip-invalid",
                     "--base-url", emulator.base_url, "--state-dir", str(tmp_path / "state"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "already done            9" in result.stdout
        and "to send                 0" in result.stdout
    )

    # A column the technique does not take goes to the report only, with a note; one that
    # --input sends as an input the technique does not have stops the plan.
    other = write_csv(tmp_path / "c.csv", [{"id": "x", "prompt": "p", "colour": "red"}])
    result = run_cli(*base(emulator, other, tmp_path, "-t", "tech_text2img", "--dry-run"))
    assert result.returncode == 0, result.stderr
    assert "1 column ('colour') goes to the report only (not sent)" in result.stdout
    result = run_cli(*base(emulator, other, tmp_path, "-t", "tech_text2img", "--dry-run",
                           "--input", "colour=hue"))  # fmt: skip
    assert result.returncode == 2
    assert "--input colour: technique 'tech_text2img' has no input 'hue'" in result.stderr


def test_budget_stops_and_continues(emulator: EmulatorProcess, tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(12))
    result = run_cli(*base(emulator, manifest, tmp_path, "-t", "tech_text2img", "--max-cost",
                           "0.2", "-c", "3"))  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert "--max-cost reached" in result.stdout
    df = pd.read_parquet(tmp_path / "r.parquet")
    assert df["charged_cost"].sum() <= 0.2 + 1e-9
    assert (df["status"] == "completed").sum() == 5 and (df["status"] == "unsubmitted").sum() == 7
    result = run_cli(*base(emulator, manifest, tmp_path, "-t", "tech_text2img", "--max-cost", "1"))
    assert result.returncode == 0, result.stderr
    assert len(emulator.ledger()["runs"]) == 12


def test_progress_for_cron_and_log_collectors(emulator: EmulatorProcess, tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(30))
    result = run_cli(*base(emulator, manifest, tmp_path, "-t", "tech_text2img", "-c", "5"))
    lines = result.stderr.splitlines()
    assert "30 rows, 30 to run" in lines[0]
    assert any("30/30 done (completed 30, failed 0, in flight 0)" in line for line in lines)
    assert "\r" not in result.stderr  # no bars in a log file
    assert "exit 0: all rows completed" in result.stdout

    manifest = write_csv(tmp_path / "c.csv", prompts(5))
    result = run_cli(*base(emulator, manifest, tmp_path, "-t", "tech_text2img", "--log-format",
                           "json"))  # fmt: skip
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert events[0]["event"] == "start" and events[-1]["done"] == 5
    quiet = run_cli(*base(emulator, manifest, tmp_path, "-t", "tech_text2img", "-q"))
    assert quiet.stderr == "" and quiet.stdout.count("\n") == 1


def test_downloads_resume_after_a_kill(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(40))
    files = tmp_path / "files"
    with EmulatorProcess("--run-seconds", "0.1") as emu:
        args = base(emu, manifest, tmp_path, "-t", "multi", "--download", str(files), "-c", "20")
        proc = subprocess.Popen(batchrun_cmd(*args), env=cli_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while not (files.exists() and len(list(files.iterdir())) >= 10):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        (files / ".stale.part").write_bytes(b"half a file")
        result = run_cli(*args)
        assert result.returncode == 0, result.stderr
        fetched_total = emu.stats()["media_requests"]
        again = run_cli(*args)
        assert again.returncode == 0 and "0 fetched" in again.stdout
        assert emu.stats()["media_requests"] == fetched_total
    df = pd.read_parquet(tmp_path / "r.parquet")
    done = [d for ds in df["downloads"] for d in ds]
    assert len(done) == 40 * 3  # image, audio, document; the text output stays in the report
    for d in done:
        assert hashlib.sha256(Path(d["path"]).read_bytes()).hexdigest() == d["sha256"]
    assert sorted(p.name for p in files.iterdir() if p.name.endswith(".part")) == [".stale.part"]
    assert fetched_total < 40 * 3 + 40  # the files from before the kill were not all fetched again


def test_callback_url_must_be_https(emulator: EmulatorProcess, tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(2))
    result = run_cli(*base(emulator, manifest, tmp_path, "-t", "tech_text2img", "--callback-url",
                           "http://example.com/hook"))  # fmt: skip
    assert result.returncode == 2 and "https" in result.stderr
    assert emulator.ledger()["runs"] == []
    result = run_cli(*base(emulator, manifest, tmp_path, "-t", "tech_text2img", "--callback-url",
                           "https://example.com/hook"))  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_readme_documents_every_run_option() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### `batchrun run` options", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(--[a-z-]+)", section))
    command = cli.commands["run"]
    actual = {opt for p in command.params for opt in getattr(p, "opts", []) if opt.startswith("--")}
    actual.discard("--help")
    assert documented == actual
    for code in range(5):
        assert re.search(rf"^\| {code} \|", readme, re.M), f"exit code {code} undocumented"
    for name in ("make install", "make demo", "make test", "cron", "in_doubt"):
        assert name in readme
