import asyncio
from pathlib import Path

import batchrun
from batchrun.emulator import EmulatorThread
from tests.support.cli import API_KEY, prompts, write_csv
from tests.support.emulator import steady_config


def test_public_api_is_small_and_pinned() -> None:
    assert batchrun.__all__ == [
        "BatchrunError", "ConfigError", "LockedError", "ManifestError", "Outcome", "RunOptions",
        "__version__", "report_frame", "run_batch", "run_batch_async", "run_batch_sync",
    ]  # fmt: skip


def test_run_batch_returns_the_report(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(12, fail_every=5))
    with EmulatorThread(steady_config(run_seconds=0.1)) as emu:
        df = batchrun.run_batch(manifest, "tech_text2img", api_key=API_KEY, base_url=emu.base_url,
                                state_dir=tmp_path / "s", progress=False, concurrency=4)  # fmt: skip
        assert list(df["id"]) == [f"row-{i:05d}" for i in range(12)]
        assert (df["status"] == "failed").sum() == 3
        assert df.attrs["outcome"].exit_code == 1

        async def in_a_notebook() -> int:  # a loop is already running, as in Jupyter
            again = batchrun.run_batch(manifest, "tech_text2img", api_key=API_KEY,
                                       base_url=emu.base_url, state_dir=tmp_path / "s")  # fmt: skip
            return len(again)

        assert asyncio.run(in_a_notebook()) == 12
        assert len(emu.store.ledger()["runs"]) == 12


def test_options_never_show_the_api_key() -> None:
    opts = batchrun.RunOptions(Path("m.csv"), api_key="sk-live-secret")
    assert "sk-live-secret" not in repr(opts) and "sk-live-secret" not in str(opts)
