"""What a new user meets (issue 13): the demo run twice, a batch started from another state
directory, typos in --technique and --base-url, status while a batch runs, wide sheets, the
summary in JSON and with rejected rows. Through the real CLI against the emulator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import Workbook

from tests.support.cli import batchrun_cmd, cli_env, prompts, run_cli, write_csv
from tests.support.emulator import EmulatorProcess

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def run_args(emu: EmulatorProcess, manifest: Path, state: Path, *extra: str) -> list[str]:
    return ["run", str(manifest), "-t", "tech_text2img", "--base-url", emu.base_url,
            "--state-dir", str(state), *extra]  # fmt: skip


def last_json(text: str) -> dict[str, object]:
    return json.loads(text.strip().splitlines()[-1])  # type: ignore[no-any-return]


# -- 1. `make demo` twice ---------------------------------------------------------------------


def test_the_demo_run_twice_resumes_sending_and_fetching_nothing(tmp_path: Path) -> None:
    demo = [sys.executable, "-m", "batchrun.demo"]
    env = cli_env()
    first = subprocess.run(demo, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "run `make demo` again" in first.stdout
    second = subprocess.run(demo, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    out = second.stdout
    assert out.count(", 0 sent now") == 3, out  # prompts.csv, prompts.jsonl, photos.csv
    assert "downloads: 0 fetched (0 bytes), 6 already there" in out
    assert "downloads: 0 fetched (0 bytes), 4 already there" in out
    assert "downloads: 0 fetched (0 bytes), 5 already there" in out
    assert "failed" not in out
    assert out.count("demo: gallery: ") == 3
    assert (tmp_path / "demo-output" / "photos-csv.html").is_file()


def test_a_relative_download_directory_is_not_fetched_again(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(3))
    with EmulatorProcess("--run-seconds", "0.1") as emu:
        args = run_args(emu, manifest, Path("state"), "--download", "files")
        first = run_cli(*args, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert "3 fetched" in first.stdout
        media = emu.stats()["media_requests"]
        again = run_cli(*args, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "0 fetched (0 bytes), 3 already there" in again.stdout
        assert emu.stats()["media_requests"] == media
    report = pd.read_parquet(tmp_path / "state" / "reports" / "b.parquet")
    paths = [d["path"] for ds in report["downloads"] for d in ds]
    assert len(paths) == 3 and all((tmp_path / p).is_file() for p in paths)


# -- 2. the same batch from another state directory -------------------------------------------


def test_a_batch_sent_from_another_journal_says_so_and_what_each_choice_costs(
    tmp_path: Path,
) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(300))
    with EmulatorProcess("--run-seconds", "0.2", "--latency", "0.01") as emu:
        first = run_cli(*run_args(emu, manifest, tmp_path / "A", "-c", "50"))
        assert first.returncode == 0, first.stderr
        runs = len(emu.ledger()["runs"])
        assert runs == 300
        # A lost state directory: the same command elsewhere (a notebook in another folder, CI).
        args = run_args(emu, manifest, tmp_path / "B", "-c", "4")
        second = run_cli(*args)
        assert second.returncode == 3, second.stdout + second.stderr
        out = second.stdout
        assert "sent before under the same keys from another journal" in out
        assert "use that journal: rerun with its --state-dir" in out and "nothing is paid" in out
        assert "--resend-in-doubt: new runs, paid again" in out
        assert "--batch NEW_NAME): new runs, paid again" in out
        assert "exit 3: not settled" in out
        # Sending stopped soon after the 409s said so: not every row was tried.
        assert "unsubmitted" in out
        assert len(emu.ledger()["runs"]) == runs  # nothing was created, nothing paid twice
        status = run_cli("status", "--state-dir", str(tmp_path / "B"))
        assert "sent before under the same keys from another journal" in status.stdout
        assert "nothing is paid again" in status.stdout
        data = json.loads(run_cli("status", "--state-dir", str(tmp_path / "B"), "--json").stdout)
        batch = data["batches"][0]
        assert batch["sent_elsewhere"] == batch["states"]["in_doubt"] > 0
        report = pd.read_parquet(tmp_path / "B" / "reports" / "b.parquet")
        doubt = report[report["status"] == "in_doubt"]
        assert doubt["error_message"].str.startswith("sent before under this key").all()
        assert doubt["error_message"].str.contains("request-id").all()
        # The rerun says it at the start, before sending anything more.
        again = run_cli(*args, "--log-format", "text")
        assert again.returncode == 3
        assert "sent before under the same keys from another journal" in again.stderr
        assert len(emu.ledger()["runs"]) == runs
        # The choice that pays nothing again: the journal that sent them.
        back = run_cli(*run_args(emu, manifest, tmp_path / "A"))
        assert back.returncode == 0 and ", 0 sent now" in back.stdout


def test_a_lost_answer_or_two_is_not_taken_for_another_journal() -> None:
    from batchrun.engine.recovery import sent_elsewhere

    assert sent_elsewhere(3, 0, done=False) is True
    assert sent_elsewhere(40, 5, done=False) is True
    assert sent_elsewhere(1, 0, done=False) is None  # too early to tell
    assert sent_elsewhere(2, 38, done=False) is False
    assert sent_elsewhere(1, 0, done=True) is False
    assert sent_elsewhere(2, 0, done=True) is True
    assert sent_elsewhere(2, 100, done=True) is False


# -- 3. a typo in --technique or --base-url --------------------------------------------------


def test_an_unknown_technique_or_a_base_url_without_api_v1_stops_before_any_run(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(5))
    state = ["--state-dir", str(tmp_path / "s")]
    for verb in ("run", "plan"):
        result = run_cli(verb, manifest, "-t", "text-to-imag", "--base-url", emulator.base_url,
                         *state)  # fmt: skip
        assert result.returncode == 2, result.stdout + result.stderr
        line = result.stderr.strip()
        assert "technique 'text-to-imag' not found" in line and "\n" not in line
        assert f"GET {emulator.base_url}/techniques/text-to-imag answered 404" in line
        assert "--technique" in line
        root = emulator.root_url
        result = run_cli(verb, manifest, "-t", "text-to-image", "--base-url", root, *state)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"GET {root}/techniques/text-to-image answered 404" in result.stderr
        assert f"lacks /api/v1; try --base-url {root}/api/v1" in result.stderr
    # A technique_id column naming an unknown technique stops too, before any run.
    bad = write_csv(tmp_path / "c.csv", [{"id": "a", "technique_id": "nope", "prompt": "x"}])
    result = run_cli("run", bad, "--base-url", emulator.base_url, *state)
    assert result.returncode == 2 and "technique 'nope' not found" in result.stderr
    assert emulator.ledger()["runs"] == []


# -- 4. and 9. status while a batch runs, in the report's words --------------------------------


def status_json(state: Path) -> dict[str, object]:
    result = run_cli("status", "--state-dir", str(state), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["batches"][0]  # type: ignore[no-any-return]


def test_status_calls_rows_being_sent_sending_while_their_process_lives(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(6))
    state = tmp_path / "state"
    with EmulatorProcess("--run-seconds", "0.1", "--latency", "4",
                         "--fault-endpoints", "create") as emu:  # fmt: skip
        proc = subprocess.Popen(
            batchrun_cmd(*run_args(emu, manifest, state, "-c", "3", "--log-format", "text")),
            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, "the batch never started sending"
                if (state / "journal.sqlite").exists():
                    s = status_json(state)
                    if s["states"].get("sending"):  # type: ignore[attr-defined]
                        break
                time.sleep(0.1)
            assert s["states"] == {"sending": 3, "unsubmitted": 3}, s
            assert s["running_now"]["pid"] == proc.pid  # type: ignore[index]
            assert s["in_doubt"] == [] and s["in_flight"] == 3
            text = run_cli("status", "--state-dir", str(state)).stdout
            assert "sending 3, unsubmitted 3" in text and f"running now (pid {proc.pid}" in text
            assert "in doubt" not in text
            # `report` says the same of those rows while their process lives.
            live = run_cli("report", "--state-dir", str(state), "--out", str(tmp_path / "l.csv"))
            assert live.returncode == 0, live.stderr
            statuses = pd.read_csv(tmp_path / "l.csv")["status"].value_counts().to_dict()
            assert statuses == {"sending": 3, "unsubmitted": 3}, statuses
            # The process dies mid-send: nobody sends those rows any more.
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    s = status_json(state)
    assert s["states"] == {"in_doubt": 3, "unsubmitted": 3}, s
    assert s["running_now"] is None and len(s["in_doubt"]) == 3  # type: ignore[arg-type]
    assert "3 rows in doubt" in run_cli("status", "--state-dir", str(state)).stdout
    dead = run_cli("report", "--state-dir", str(state), "--out", str(tmp_path / "d.csv"))
    assert dead.returncode == 0, dead.stderr
    statuses = pd.read_csv(tmp_path / "d.csv")["status"].value_counts().to_dict()
    assert statuses == {"in_doubt": 3, "unsubmitted": 3}, statuses


def test_status_speaks_the_reports_words(emulator: EmulatorProcess, tmp_path: Path) -> None:
    rows = prompts(6, fail_every=3)
    rows[1]["prompt"] = ""
    manifest = write_csv(tmp_path / "b.csv", rows)
    state = tmp_path / "state"
    result = run_cli(*run_args(emulator, manifest, state, "--skip-invalid"))
    assert result.returncode == 1
    s = status_json(state)
    assert s["states"] == {"completed": 3, "failed": 2, "rejected": 1}
    report = pd.read_parquet(state / "reports" / "b.parquet")
    assert report["status"].value_counts().to_dict() == s["states"]
    text = run_cli("status", "--state-dir", str(state)).stdout
    assert "6 rows: completed 3, failed 2, rejected 1" in text
    for verb in ("status", "report"):
        help_text = run_cli(verb, "--help").stdout
        assert "manifest" not in help_text.split("--batch", 1)[1].split("--", 1)[0]


# -- 8. a wide sheet -----------------------------------------------------------------------


def wide_sheet(path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    header = ["id", "prompt", "style"] + [f"field {k}" for k in range(46)]
    sheet.append(header)
    for i in range(3):
        sheet.append([f"r{i}", f"A fox {i}", "ink"] + [f"v{i}.{k}" for k in range(46)])
    book.save(path)
    return path


def test_a_wide_sheet_names_its_inputs_and_the_rest_passes_through(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    path = wide_sheet(tmp_path / "wide.xlsx")
    result = run_cli(*run_args(emulator, path, tmp_path / "s", "--input", "prompt",
                               "--input", "style", "--log-format", "text"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--input names the inputs: 46 columns ('field 0', 'field 1'," in result.stderr
    sent = [sorted(i["id"] for i in r["inputs"]) for r in emulator.ledger()["runs"]]
    assert sent == [["prompt", "style"]] * 3
    report = pd.read_parquet(tmp_path / "s" / "reports" / "wide.parquet")
    assert list(report["field 45"]) == ["v0.45", "v1.45", "v2.45"]


def test_columns_the_technique_does_not_take_pass_through_with_one_notice(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    path = wide_sheet(tmp_path / "wide.xlsx")
    result = run_cli(*run_args(emulator, path, tmp_path / "s", "--log-format", "text"))
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "go to the report only" in line]
    assert len(notices) == 1
    assert "technique 'tech_text2img' takes prompt, reference, style: 46 columns" in notices[0]
    sent = [sorted(i["id"] for i in r["inputs"]) for r in emulator.ledger()["runs"]]
    assert sent == [["prompt", "style"]] * 3
    plan = run_cli("plan", path, "-t", "tech_text2img", "--base-url", emulator.base_url,
                   "--state-dir", str(tmp_path / "s"))  # fmt: skip
    assert plan.returncode == 0 and "46 columns ('field 0'" in plan.stdout
    assert "already done            3" in plan.stdout


# -- 11. and 14. the summary: JSON, rejected rows --------------------------------------------


def test_log_format_json_writes_the_summary_as_json_too(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(4, fail_every=2))
    result = run_cli(*run_args(emulator, manifest, tmp_path / "s", "--log-format", "json"))
    assert result.returncode == 1
    for line in result.stderr.splitlines():
        json.loads(line)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["event"] == "summary" and summary["batch"] == "b"
    assert summary["exit_code"] == 1 and summary["rows"] == 4
    assert summary["counts"] == {"completed": 2, "failed": 2}
    assert summary["reports"] and summary["charged_cost"] > 0
    assert "--retry-failed" in summary["next_step"]
    assert summary["message"].startswith("batch 'b': 4 rows: completed 2, failed 2")


def test_skip_invalid_lists_the_rejected_rows_where_they_are(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    rows = prompts(5)
    rows[1]["prompt"] = ""
    rows[3]["prompt"] = " "
    manifest = write_csv(tmp_path / "b.csv", rows)
    result = run_cli(*run_args(emulator, manifest, tmp_path / "s", "--skip-invalid"))
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "2 rows rejected (invalid, not sent):" in out
    assert f"  {manifest}:3: row has no input values" in out
    assert f"  {manifest}:5: row has no input values" in out
    exit_line = out.strip().splitlines()[-1]
    assert "--retry-failed" not in exit_line and "fix the rejected rows" in exit_line
    report = pd.read_parquet(tmp_path / "s" / "reports" / "b.parquet").set_index("id")
    assert report.loc["row-00001", "error_message"] == f"{manifest}:3: row has no input values"
    # A rerun with nothing new to read still lists them.
    again = run_cli(*run_args(emulator, manifest, tmp_path / "s", "--skip-invalid"))
    assert f"  {manifest}:5: row has no input values" in again.stdout
    # Fixed, they run: no --retry-failed needed.
    rows[1]["prompt"] = rows[3]["prompt"] = "fixed"
    write_csv(manifest, rows)
    fixed = run_cli(*run_args(emulator, manifest, tmp_path / "s", "--skip-invalid"))
    assert fixed.returncode == 0, fixed.stdout
