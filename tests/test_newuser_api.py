"""The Python API takes `batchrun run`'s options under the same names and forms (issue 13, item
7), and shows progress as fits where it runs."""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openpyxl import Workbook

import batchrun
from batchrun.batch import progress_display, run_options
from batchrun.cli.progress import BarProgress, LogProgress
from batchrun.emulator import EmulatorThread
from batchrun.engine.runner import RunOptions
from batchrun.errors import ConfigError
from tests.support.cli import API_KEY, prompts, write_csv
from tests.support.emulator import steady_config

Check = Callable[[RunOptions], bool]
OPTIONS: list[tuple[str, Any, Check]] = [
    ("state_dir", "st", lambda o: o.state_dir == Path("st")),
    ("batch", "b1", lambda o: o.batch_name == "b1"),
    ("report", "r.csv", lambda o: list(o.reports) == [Path("r.csv")]),
    ("report", ["r.csv", "r.parquet"], lambda o: o.report_paths() == [Path("r.csv"),
                                                                      Path("r.parquet")]),
    ("reports", ["r.jsonl"], lambda o: list(o.reports) == [Path("r.jsonl")]),
    ("concurrency", 3, lambda o: o.concurrency == 3),
    ("rate", 2.5, lambda o: o.rate == 2.5),
    ("base_url", "http://127.0.0.1:1/api/v1", lambda o: o.base_url == "http://127.0.0.1:1/api/v1"),
    ("api_key", "sk-other", lambda o: o.api_key == "sk-other"),
    ("max_cost", 5, lambda o: o.max_cost == 5),
    ("retry_failed", True, lambda o: o.retry_failed),
    ("retries", 0, lambda o: o.retries == 0),
    ("retry_backoff", 5.0, lambda o: o.retry_backoff == 5.0),
    ("resend_in_doubt", True, lambda o: o.resend_in_doubt),
    ("skip_invalid", True, lambda o: o.skip_invalid),
    ("callback_url", "https://example.com/cb", lambda o: o.callback_url == "https://example.com/cb"),
    ("download", "files", lambda o: o.download == Path("files")),
    ("id_column", "key", lambda o: o.id_column == "key"),
    ("sheet", "Prompts", lambda o: o.sheet == "Prompts"),
    ("input", "Prompt text=prompt",
     lambda o: dict(o.input_map) == {"Prompt text": ("prompt", None)} and not o.named_inputs),
    ("input", ["ref=reference:imageUrl"],
     lambda o: dict(o.input_map) == {"ref": ("reference", "imageUrl")}),
    ("input", ["prompt", "ref:imageUrl"],
     lambda o: dict(o.input_map) == {"prompt": ("prompt", None), "ref:imageUrl": ("ref", None)}
     and o.named_inputs),
    ("pass_through", "seed", lambda o: o.pass_through == {"seed"}),
    ("pass_through", ["seed", "owner"], lambda o: o.pass_through == {"seed", "owner"}),
    ("ignore", ["notes"], lambda o: o.ignore == {"notes"}),
    ("ignore", "notes", lambda o: o.ignore == {"notes"}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "check"), OPTIONS)
def test_each_cli_option_is_a_keyword_of_the_same_name(name: str, value: Any, check: Check) -> None:
    opts = run_options("m.csv", "tech", **{name: value})
    assert check(opts), opts


def test_the_environment_fills_what_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLORA_API_KEY", "sk-env")
    monkeypatch.setenv("FLORA_BASE_URL", "http://127.0.0.1:2/api/v1")
    monkeypatch.setenv("BATCHRUN_STATE_DIR", "elsewhere")
    opts = run_options("m.csv")
    assert (opts.api_key, opts.base_url, opts.state_dir) == (
        "sk-env", "http://127.0.0.1:2/api/v1", Path("elsewhere"))  # fmt: skip


def test_what_the_cli_refuses_the_api_refuses() -> None:
    with pytest.raises(ConfigError, match="type must be text, imageUrl, videoUrl"):
        run_options("m.csv", "t", input=["a=b:pdf"])
    with pytest.raises(ConfigError, match="expected COLUMN or COLUMN=INPUT_ID"):
        run_options("m.csv", "t", input=["=prompt"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'inputs'"):
        run_options("m.csv", "t", inputs=["prompt"])


def sheet(path: Path) -> Path:
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.append(["key", "Prompt text", "seed", "notes"])
    ws.append(["k1", "A fox", 42, "x"])
    ws.append(["k2", "An owl", 7, "y"])
    book.save(path)
    return path


def test_run_batch_with_the_clis_column_options(tmp_path: Path) -> None:
    path = sheet(tmp_path / "m.xlsx")
    with EmulatorThread(steady_config(run_seconds=0.05)) as emu:
        df = batchrun.run_batch(
            path, "text-to-image", api_key=API_KEY, base_url=emu.base_url,
            state_dir=tmp_path / "s", progress=False, id_column="key",
            input=["Prompt text=prompt"], pass_through=["seed"], ignore="notes",
            report=tmp_path / "r.csv",
        )  # fmt: skip
        assert list(df["row_id"]) == ["k1", "k2"] and (df["status"] == "completed").all()
        assert "notes" not in df.columns and list(df["seed"]) == ["42", "7"]
        sent = [r["inputs"] for r in emu.store.ledger()["runs"]]
        assert sorted(i[0]["value"] for i in sent) == ["A fox", "An owl"]
        assert all([x["id"] for x in i] == ["prompt"] for i in sent)
        assert pd.read_csv(tmp_path / "r.csv")["row_id"].tolist() == ["k1", "k2"]
        # A bare column names an input sent under its own name; the technique has no 'seed'.
        with pytest.raises(ConfigError, match="--input seed: technique 'text-to-image' has no"):
            batchrun.run_batch(
                path, "text-to-image", api_key=API_KEY, base_url=emu.base_url,
                state_dir=tmp_path / "s", progress=False, id_column="key", batch="bare",
                input=["seed"],
            )  # fmt: skip
        assert len(emu.store.ledger()["runs"]) == 2


# -- where progress shows ------------------------------------------------------------------


def test_progress_shows_as_fits_where_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress_display("b", progress=False) is None
    assert progress_display("b", quiet=True) is None
    shown = progress_display("b", log_format="json")
    assert isinstance(shown, LogProgress) and shown.fmt == "json"
    with pytest.raises(ConfigError):
        progress_display("b", log_format="xml")
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a script's log file, a CI job
    shown = progress_display("b")
    assert isinstance(shown, LogProgress) and shown.fmt == "text"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    shown = progress_display("b")
    assert isinstance(shown, BarProgress) and not shown.notebook

    class ZMQInteractiveShell:  # what Jupyter's kernel is called
        pass

    fake = types.ModuleType("IPython")
    fake.get_ipython = ZMQInteractiveShell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    shown = progress_display("b")
    assert isinstance(shown, BarProgress) and shown.notebook


def test_run_batch_in_a_script_writes_no_cursor_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(3))
    with EmulatorThread(steady_config(run_seconds=0.05)) as emu:
        df = batchrun.run_batch(manifest, "tech_text2img", api_key=API_KEY,
                                base_url=emu.base_url, state_dir=tmp_path / "s")  # fmt: skip
    assert (df["status"] == "completed").all()
    err = capsys.readouterr().err
    assert "3 rows, 3 to run" in err
    assert "\r" not in err and "\x1b" not in err
