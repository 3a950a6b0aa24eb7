"""Every answer a server may give to a resent key, through the real runner and client against
the emulator in-process (a real HTTP server on loopback, in a thread)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from batchrun.emulator import EmulatorThread
from batchrun.engine.context import Tuning
from batchrun.engine.runner import RunOptions, run_batch_async
from batchrun.journal import Journal
from batchrun.keys import idempotency_key, request_body
from batchrun.manifest import ManifestOptions, open_manifest
from batchrun.models import Job
from tests.support.cli import API_KEY, prompts, write_csv
from tests.support.emulator import steady_config


def options(tmp: Path, emu: EmulatorThread, manifest: Path, **kw: object) -> RunOptions:
    return RunOptions(
        manifest=manifest, technique="tech_text2img", state_dir=tmp / "state",
        reports=[tmp / "r.parquet"], base_url=emu.base_url, api_key=API_KEY, concurrency=4,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def lose_answers(tmp: Path, emu: EmulatorThread, manifest: Path, rows: list[int],
                 clock: float | None = None, altered: frozenset[int] = frozenset()) -> list[str]:  # fmt: skip
    """Leave rows as a killed process would: announced as sent, the server holding their runs,
    no answer recorded."""
    jobs = [j for j in open_manifest(ManifestOptions(manifest, "tech_text2img")).rows()]
    journal = Journal.open(
        tmp / "state", clock=(lambda: clock) if clock else __import__("time").time
    )
    journal.sync_manifest(manifest.stem, str(manifest), ["id", "prompt"], jobs, False)
    keys = []
    with httpx.Client() as http:
        for i in rows:
            job = jobs[i]
            assert isinstance(job, Job)
            key = idempotency_key(manifest.stem, job.row_id, job.technique_id, job.inputs, 1)
            body = request_body(job.inputs, key)
            journal.mark_sending(manifest.stem, [(job.row_id, key, body)])
            # An altered row's key was used by another request (another tool, an old journal).
            sent = (
                request_body(job.inputs, key, "https://elsewhere.example/hook")
                if i in altered
                else body
            )
            r = http.post(f"{emu.base_url}/techniques/tech_text2img/runs", content=sent,
                          headers={"Authorization": "Bearer x", "Idempotency-Key": key})  # fmt: skip
            assert r.status_code == 201
            keys.append(key)
    journal.close()
    return keys


@pytest.mark.parametrize("mode", ["replay", "conflict409"])
async def test_a_lost_answer_is_adopted_not_paid_twice(tmp_path: Path, mode: str) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(5))
    with EmulatorThread(steady_config(run_seconds=0.1, duplicate_mode=mode)) as emu:
        lose_answers(tmp_path, emu, manifest, [2])
        outcome = await run_batch_async(options(tmp_path, emu, manifest))
        ledger = emu.store.ledger()
    assert outcome.exit_code == 0 and outcome.counts["completed"] == 5
    assert len(ledger["runs"]) == 5 and max(ledger["creates_by_key"].values()) == 1
    assert outcome.recovered == (1 if mode == "conflict409" else 0)


async def test_ambiguous_duplicates_stay_in_doubt(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(4))
    with EmulatorThread(steady_config(run_seconds=0.1)) as emu:
        keys = lose_answers(tmp_path, emu, manifest, [0, 1])
        outcome = await run_batch_async(options(tmp_path, emu, manifest))
        ledger = emu.store.ledger()
    assert outcome.exit_code == 3
    assert outcome.counts == {"completed": 2, "in_doubt": 2}
    assert len(ledger["runs"]) == 4  # nothing was sent twice
    assert set(keys) <= set(ledger["creates_by_key"])  # and both in-doubt rows hold a run
    assert all("did not say which" in why for _, why in outcome.in_doubt)


async def test_changed_body_under_a_key_is_reported_as_a_bug(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(2))
    with EmulatorThread(steady_config(run_seconds=0.1)) as emu:
        lose_answers(tmp_path, emu, manifest, [0], altered=frozenset({0}))
        outcome = await run_batch_async(options(tmp_path, emu, manifest))
        assert len(emu.store.ledger()["runs"]) == 2
    assert outcome.counts == {"completed": 1, "in_doubt": 1}
    assert "idempotency_conflict" in outcome.in_doubt[0][1] and "bug" in outcome.in_doubt[0][1]


async def test_keys_past_the_window_are_never_resent_blindly(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(3))
    import time

    with EmulatorThread(steady_config(run_seconds=0.1)) as emu:
        lose_answers(tmp_path, emu, manifest, [1], clock=time.time() - 3 * 3600)
        outcome = await run_batch_async(options(tmp_path, emu, manifest))
        assert outcome.exit_code == 3 and outcome.counts == {"completed": 2, "in_doubt": 1}
        assert "two hours" in outcome.in_doubt[0][1]
        assert len(emu.store.ledger()["runs"]) == 3
        # The documented override sends it again, under the next attempt's key.
        outcome = await run_batch_async(options(tmp_path, emu, manifest, resend_in_doubt=True))
        ledger = emu.store.ledger()
    assert outcome.exit_code == 0 and len(ledger["runs"]) == 4
    assert max(ledger["creates_by_key"].values()) == 1


async def test_late_costs_are_waited_for(tmp_path: Path) -> None:
    manifest = write_csv(tmp_path / "b.csv", prompts(6))
    with EmulatorThread(steady_config(run_seconds=0.1, late_cost_seconds=1.0)) as emu:
        outcome = await run_batch_async(options(tmp_path, emu, manifest))
        ledger = emu.store.ledger()
    assert outcome.costs_unknown == 0
    assert outcome.charged_cost == pytest.approx(ledger["charges_total"]) == pytest.approx(0.24)


async def test_late_costs_are_bounded_and_reported_unknown(tmp_path: Path) -> None:
    import pandas as pd

    manifest = write_csv(tmp_path / "b.csv", prompts(3))
    with EmulatorThread(steady_config(run_seconds=0.1, late_cost_seconds=3600)) as emu:
        outcome = await run_batch_async(
            options(tmp_path, emu, manifest, tuning=Tuning(cost_wait=1.0))
        )
    assert outcome.exit_code == 0 and outcome.costs_unknown == 3
    df = pd.read_parquet(tmp_path / "r.parquet")
    assert set(df["cost_status"]) == {"unknown"} and df["charged_cost"].isna().all()


async def test_timestamps_in_ms_and_camel_case_ids(tmp_path: Path) -> None:
    import pandas as pd

    manifest = write_csv(tmp_path / "b.csv", prompts(4))
    config = steady_config(run_seconds=0.1, timestamps="ms", id_field="runId", create_status=200)
    with EmulatorThread(config) as emu:
        outcome = await run_batch_async(options(tmp_path, emu, manifest))
    assert outcome.exit_code == 0
    df = pd.read_parquet(tmp_path / "r.parquet")
    assert (df["created_at"].dt.year >= 2025).all() and df["run_id"].str.startswith("run_").all()


async def test_a_refused_key_mid_batch_stops_at_once(tmp_path: Path) -> None:
    """A key the technique endpoint accepts but creates refuse: the first 401 ends the batch."""
    import json as _json

    from batchrun.errors import ConfigError

    creates = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal creates
        if request.method == "POST":
            creates += 1
            body = {"error": {"code": "invalid_api_key", "message": "The API key is not valid."}}
            return httpx.Response(401, headers={"request-id": "req_1"}, content=_json.dumps(body))
        if request.url.path.endswith("/techniques/t"):
            return httpx.Response(200, json={"technique_id": "t"})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    manifest = write_csv(tmp_path / "b.csv", prompts(20))
    opts = RunOptions(
        manifest=manifest, technique="t", state_dir=tmp_path / "state", api_key=API_KEY,
        base_url="https://api.example.com/api/v1", concurrency=1,
        reports=[tmp_path / "r.parquet"], transport=httpx.MockTransport(handler),
    )  # fmt: skip
    with pytest.raises(ConfigError) as info:
        await run_batch_async(opts)
    assert "refused the API key" in str(info.value) and API_KEY not in str(info.value)
    assert creates == 1
    with Journal.open(tmp_path / "state") as journal:
        assert journal.counts("b") == {"pending": 20}  # nothing was sent, all resumable


async def test_a_duplicate_answer_that_names_its_run_is_adopted(tmp_path: Path) -> None:
    import json as _json

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            body = {
                "error": {"code": "idempotency_duplicate", "message": "seen", "details": {}},
                "run_id": "run_named",
            }
            return httpx.Response(409, content=_json.dumps(body))
        if request.url.path.endswith("/runs/run_named"):
            done = {"run_id": "run_named", "status": "completed", "charged_cost": 0.5}
            return httpx.Response(200, content=_json.dumps(done))
        if request.url.path.endswith("/techniques/t"):
            return httpx.Response(200, json={"technique_id": "t"})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    manifest = write_csv(tmp_path / "b.csv", prompts(1))
    opts = RunOptions(
        manifest=manifest, technique="t", state_dir=tmp_path / "state", api_key=API_KEY,
        base_url="https://api.example.com/api/v1", reports=[tmp_path / "r.parquet"],
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    outcome = await run_batch_async(opts)
    assert outcome.exit_code == 0 and outcome.counts == {"completed": 1}
    assert outcome.charged_cost == 0.5
