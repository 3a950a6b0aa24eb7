"""The FLORA emulator over real HTTP: endpoints, lifecycle, idempotency, paging, faults, control."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from batchrun.emulator import EmulatorConfig, EmulatorThread, Faults
from tests.support.emulator import ROOT, EmulatorProcess

AUTH = {"Authorization": "Bearer sk-emulator-test"}
PROMPT = [{"id": "prompt", "type": "text", "value": "a lighthouse at dusk"}]
IMAGE = "https://example.com/cat.png"
TLS = ssl.create_default_context()  # shared: building one per client costs ~50 ms


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Emu:
    thread: EmulatorThread
    http: httpx.Client
    clock: FakeClock

    def create(
        self,
        inputs: list[dict[str, str]] | None = None,
        technique: str = "tech_text2img",
        key: str | None = None,
        **body: Any,
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        payload = {"inputs": PROMPT if inputs is None else inputs, **body}
        return self.http.post(f"/techniques/{technique}/runs", json=payload, headers=headers)

    def get(self, run_id: str, technique: str = "tech_text2img") -> dict[str, Any]:
        response = self.http.get(f"/techniques/{technique}/runs/{run_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


Start = Callable[..., Emu]


@pytest.fixture(scope="module")
def plain() -> Iterator[httpx.Client]:
    """One client for requests without the API's base URL (building a client costs ~30 ms)."""
    with httpx.Client(timeout=5, verify=TLS) as client:
        yield client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start(clock: FakeClock) -> Iterator[Start]:
    running: list[Emu] = []

    def _start(faults: dict[str, Any] | None = None, **settings: Any) -> Emu:
        # Exact by default, so timings can be asserted: no spread, no random failures, no cost
        # drift. A test passes its own values to see the realistic behaviour.
        settings = {"run_spread": 0.0, "cost_drift_rate": 0.0, **settings}
        config = EmulatorConfig(faults=Faults(**{"fail_rate": 0.0, **(faults or {})}), **settings)
        thread = EmulatorThread(config, clock=clock).start()
        http = httpx.Client(base_url=thread.base_url, headers=AUTH, timeout=5, verify=TLS)
        running.append(Emu(thread, http, clock))
        return running[-1]

    yield _start
    for emu in running:
        emu.http.close()
        emu.thread.stop()


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# -- runs -------------------------------------------------------------------------------------


def test_create_then_poll_through_the_lifecycle(start: Start, plain: httpx.Client) -> None:
    emu = start()
    created = emu.create(technique="text-to-image")
    assert created.status_code == 201
    run = created.json()
    assert re.fullmatch(r"run_[0-9a-f]+", run["run_id"])
    assert run["status"] == "pending" and run["progress"] == 0
    assert run["created_at"] == emu.clock.now
    poll = f"{emu.thread.base_url}/techniques/tech_text2img/runs/{run['run_id']}"
    assert run["poll_url"] == poll
    assert "outputs" not in run and "started_at" not in run
    assert run["charged_cost"] == 0.04  # the quote

    emu.clock.advance(0.1)  # default: pending for 10 % of --run-seconds, then 2 s running
    pending = emu.get(run["run_id"], technique="text-to-image")
    assert pending["status"] == "pending" and pending["progress"] == 0
    assert "charged_cost" not in pending
    emu.clock.advance(1.0)
    running = emu.get(run["run_id"], technique="text-to-image")
    assert running["status"] == "running" and 0 < running["progress"] < 100
    assert running["started_at"] == pytest.approx(run["created_at"] + 0.2)

    emu.clock.advance(1.2)
    done = plain.get(poll, headers=AUTH).json()
    assert done["status"] == "completed" and done["progress"] == 100
    assert done["charged_cost"] == 0.04
    assert done["completed_at"] == pytest.approx(run["created_at"] + 2.2)
    assert [(o["output_id"], o["type"]) for o in done["outputs"]] == [("image", "imageUrl")]
    assert "error_code" not in done


def test_every_output_type_and_text_outputs(start: Start) -> None:
    emu = start(run_seconds=0.0)
    multi = emu.create(technique="multi").json()
    caption = emu.create([{"id": "image", "type": "imageUrl", "value": IMAGE}], "caption").json()
    emu.clock.advance(0.01)
    outputs = emu.get(multi["run_id"], "tech_multi")["outputs"]
    assert [o["type"] for o in outputs] == ["imageUrl", "audioUrl", "documentUrl", "text"]
    assert outputs[-1]["url"].endswith(PROMPT[0]["value"])
    text = emu.get(caption["run_id"], "caption")["outputs"][0]
    assert text["type"] == "text" and IMAGE in text["url"]
    assert multi["status"] == "pending"  # even a run that ends at once is created pending


def test_fail_marker_and_fail_rate(start: Start) -> None:
    emu = start(run_seconds=0.5)
    run_id = emu.create([{"id": "prompt", "type": "text", "value": "please FAIL"}]).json()["run_id"]
    emu.clock.advance(1)
    failed = emu.get(run_id)
    assert failed["status"] == "failed" and failed["progress"] == 100
    assert failed["error_code"] == "provider_error"
    assert failed["error_message"] == "The provider failed to complete the generation."
    assert failed["charged_cost"] == 0 and "completed_at" in failed and "outputs" not in failed

    def fates(seed: int) -> list[str]:
        emu = start(run_seconds=0.0, seed=seed, faults={"fail_rate": 0.5})
        ids = [emu.create().json()["run_id"] for _ in range(20)]
        emu.clock.advance(0.01)
        return [emu.get(run_id)["status"] for run_id in ids]

    first = fates(3)
    assert first == fates(3) and {"completed", "failed"} == set(first)


def test_run_spread_and_pending_seconds(start: Start) -> None:
    emu = start(run_seconds=1.0, pending_seconds=0.05)
    ids = [emu.create().json()["run_id"] for _ in range(3)]
    emu.clock.advance(0.06)
    assert {emu.get(run_id)["status"] for run_id in ids} == {"running"}

    def durations(seed: int) -> list[float]:
        emu = start(seed=seed, run_seconds=1.0, run_spread=0.5, pending_seconds=0.05)
        ids = [emu.create().json()["run_id"] for _ in range(10)]
        emu.clock.advance(60)
        runs = [emu.get(run_id) for run_id in ids]
        return [run["completed_at"] - run["created_at"] for run in runs]

    first = durations(1)
    assert first == pytest.approx(durations(1), abs=1e-5)
    assert len({round(d, 3) for d in first}) == 10 and first != durations(2)


def test_get_unknown_run_or_other_technique_is_404(start: Start) -> None:
    emu = start()
    run_id = emu.create().json()["run_id"]
    for path in ("/techniques/tech_text2img/runs/run_nope", f"/techniques/caption/runs/{run_id}"):
        response = emu.http.get(path)
        assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    assert (
        emu.http.post("/techniques/tech_unknown/runs", json={"inputs": PROMPT}).status_code == 404
    )


def test_readings_ms_timestamps_runid_status_200_and_nulls(start: Start) -> None:
    emu = start(timestamps="ms", id_field="runId", create_status=200, absent_fields="null")
    created = emu.create()
    assert created.status_code == 200
    run = created.json()
    assert "run_id" not in run and run["runId"].startswith("run_")
    assert run["created_at"] == int(emu.clock.now * 1000) and isinstance(run["created_at"], int)
    assert run["started_at"] is None and run["outputs"] is None
    emu.clock.advance(3)
    done = emu.get(run["runId"])
    assert isinstance(done["completed_at"], int) and done["error_code"] is None
    listed = emu.http.get("/technique-runs").json()["technique_runs"][0]
    assert listed["run_id"] == listed["technique_run_id"] == run["runId"]


def test_late_cost_appears_after_the_delay(start: Start) -> None:
    emu = start(run_seconds=1.0, late_cost_seconds=5.0)
    run_id = emu.create().json()["run_id"]
    emu.clock.advance(1.5)
    done = emu.get(run_id)
    assert done["status"] == "completed" and "charged_cost" not in done
    emu.clock.advance(5)
    assert emu.get(run_id)["charged_cost"] == 0.04


# -- validation and auth ----------------------------------------------------------------------

VALIDATION_CASES: list[tuple[dict[str, Any], str]] = [
    ({}, "inputs"),
    ({"inputs": "a cat"}, "inputs"),
    ({"inputs": [{"id": "prompt", "type": "text"}]}, "inputs[0]"),
    ({"inputs": [{"id": "prompt", "type": "audio", "value": "x"}]}, "inputs[0].type"),
    ({"inputs": [{"id": "prompt", "type": "imageUrl", "value": IMAGE}]}, "inputs[0].type"),
    ({"inputs": [*PROMPT, {"id": "colour", "type": "text", "value": "red"}]}, "inputs[1].id"),
    ({"inputs": [{"id": "style", "type": "text", "value": "noir"}]}, "inputs"),
    ({"inputs": [*PROMPT, *PROMPT]}, "inputs[1].id"),
    ({"inputs": [*PROMPT, {"id": "style", "type": "text", "value": "  "}]}, "inputs[1].value"),
    ({"inputs": [{"id": "prompt", "type": "text", "value": ""}]}, "inputs[0].value"),
    ({"inputs": [*PROMPT, {"id": "reference", "type": "imageUrl", "value": "cat.png"}]},
     "inputs[1].value"),
    ({"inputs": PROMPT, "mode": "sync"}, "mode"),
    ({"inputs": PROMPT, "callback_url": "http://example.com/hook"}, "callback_url"),
    ({"inputs": PROMPT, "callback_url": "https://127.0.0.1/hook"}, "callback_url"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "field"), VALIDATION_CASES)
def test_validation_errors_name_the_field(start: Start, body: dict[str, Any], field: str) -> None:
    emu = start()
    response = emu.http.post("/techniques/tech_text2img/runs", json=body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "input_validation_error"
    assert field in [f["field"] for f in error["fields"]], error
    assert emu.thread.ledger()["runs"] == []


def test_invalid_json_and_mismatched_keys(start: Start) -> None:
    emu = start()
    response = emu.http.post("/techniques/tech_text2img/runs", content=b"{nope")
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_json"
    response = emu.create(key="header-key", idempotency_key="body-key")
    assert response.status_code == 400
    assert error_of(response)["fields"][0]["field"] == "idempotency_key"
    ok = emu.create(
        [*PROMPT, {"id": "reference", "type": "imageUrl", "value": IMAGE}], mode="async"
    )
    assert ok.status_code == 201


def test_auth_any_key_by_default_or_only_the_configured_one(
    start: Start, plain: httpx.Client
) -> None:
    open_emu = start()
    url = f"{open_emu.thread.base_url}/techniques/caption"
    assert plain.get(url, headers={"Authorization": "Bearer whatever"}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
        response = plain.get(url, headers=headers)
        assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"

    strict = start(api_key="the-key")
    url = f"{strict.thread.base_url}/techniques/caption"
    response = plain.get(url, headers={"Authorization": "Bearer other"})
    assert response.status_code == 401 and error_of(response)["code"] == "invalid_api_key"
    assert plain.get(url, headers={"Authorization": "Bearer the-key"}).status_code == 200


# -- idempotency ------------------------------------------------------------------------------


def test_repeated_key_answers_409_and_makes_no_second_run(start: Start) -> None:
    emu = start()
    assert emu.create(key="k-1").status_code == 201
    again = emu.create(idempotency_key="k-1")  # the same key, now in the body: the same request
    assert again.status_code == 409 and error_of(again)["code"] == "idempotency_duplicate"
    assert "run_id" not in again.text
    changed = emu.create([{"id": "prompt", "type": "text", "value": "other"}], key="k-1")
    assert changed.status_code == 422 and error_of(changed)["code"] == "idempotency_conflict"
    ledger = emu.thread.ledger()
    assert ledger["creates_by_key"] == {"k-1": 1} and len(ledger["runs"]) == 1


def test_replay_mode_returns_the_original_run_as_it_is_now(start: Start) -> None:
    emu = start(duplicate_mode="replay")
    first = emu.create(key="k-2").json()
    emu.clock.advance(5)
    replay = emu.create(key="k-2")
    assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["run_id"] == first["run_id"] and replay.json()["status"] == "completed"
    assert emu.create(technique="multi", key="k-2").status_code == 422  # another technique


def test_keys_expire_after_the_window(start: Start) -> None:
    emu = start(idempotency_window=2.0)
    first = emu.create(key="k-3").json()["run_id"]
    emu.clock.advance(1.5)
    assert emu.create(key="k-3").status_code == 409
    emu.clock.advance(0.6)
    second = emu.create(key="k-3")
    assert second.status_code == 201 and second.json()["run_id"] != first
    assert emu.thread.ledger()["creates_by_key"] == {"k-3": 2}


def test_requests_that_fail_before_creating_release_the_key(start: Start) -> None:
    emu = start(faults={"rate_5xx": 1.0})
    assert emu.create(key="k-4").status_code in (500, 502, 503)
    emu.thread.set_faults(rate_5xx=0.0, rate_429=1.0)
    assert emu.create(key="k-4").status_code == 429
    emu.thread.set_faults(rate_429=0.0, drop=1.0)
    with pytest.raises(httpx.TransportError):
        emu.create(key="k-4")
    emu.thread.set_faults(drop=0.0, credits=0.01)
    assert emu.create(key="k-4").status_code == 402
    emu.thread.set_faults(credits=None)
    assert emu.create([], key="k-4").status_code == 400
    assert emu.create(key="k-4").status_code == 201
    assert emu.thread.ledger()["creates_by_key"] == {"k-4": 1}


# -- listing ----------------------------------------------------------------------------------


def test_list_is_newest_first_and_cursors_survive_new_runs(start: Start) -> None:
    emu = start()
    ids = []
    for n in range(25):
        ids.append(emu.create().json()["run_id"])
        if n % 3:  # some runs share a created_at: the run_id breaks the tie
            emu.clock.advance(0.25)
    newest_first = ids[::-1]

    page = emu.http.get("/technique-runs", params={"limit": 10}).json()
    assert [r["run_id"] for r in page["technique_runs"]] == newest_first[:10]
    assert page["meta"]["total_estimate"] == 25
    item = page["technique_runs"][0]
    assert item["technique"] == {"name": "Text to image", "technique_id": "tech_text2img"}
    assert item["technique_run_id"] == item["run_id"] and item["poll_url"].endswith(item["run_id"])
    assert item["project_id"] and item["workspace_id"]

    seen = [r["run_id"] for r in page["technique_runs"]]
    cursor = page["meta"]["next_cursor"]
    while cursor:
        for _ in range(3):  # created between page fetches: must not shift later pages
            emu.create()
        page = emu.http.get("/technique-runs", params={"limit": 10, "cursor": cursor}).json()
        seen += [r["run_id"] for r in page["technique_runs"]]
        cursor = page["meta"]["next_cursor"]
    assert seen == newest_first
    assert len(page["technique_runs"]) == 5  # no empty last page: its cursor is null


def test_list_filters_and_limits(start: Start) -> None:
    emu = start(run_seconds=1.0)
    emu.create()
    emu.create(technique="multi")
    emu.clock.advance(2)
    emu.create(technique="multi")

    def listed(**params: Any) -> list[str]:
        response = emu.http.get("/technique-runs", params=params)
        assert response.status_code == 200, response.text
        return [r["technique"]["technique_id"] for r in response.json()["technique_runs"]]

    assert listed() == ["tech_multi", "tech_multi", "tech_text2img"]
    assert listed(technique_id="multi") == ["tech_multi", "tech_multi"]
    assert listed(status="completed") == ["tech_multi", "tech_text2img"]
    assert listed(status="pending", technique_id="tech_multi") == ["tech_multi"]
    assert listed(project_id="prj_other") == [] and listed(workspace_id="ws_emulator") != []
    assert listed(limit=100) == listed()
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "ten"}, {"status": "done"},
                {"cursor": "!!"}):  # fmt: skip
        response = emu.http.get("/technique-runs", params=bad)
        assert response.status_code == 400, bad
        assert error_of(response)["code"] == "input_validation_error"
        assert error_of(response)["fields"][0]["field"] == next(iter(bad))


def test_technique_by_id_or_slug_and_the_open_catalogue(start: Start) -> None:
    emu = start()
    by_id = emu.http.get("/techniques/tech_text2img").json()
    assert by_id == emu.http.get("/techniques/text-to-image").json()
    assert by_id["slug"] == "text-to-image" and by_id["run_cost"] == 0.04
    assert by_id["inputs"][0] == {
        "id": "prompt",
        "name": "Prompt",
        "type": "text",
        "required": True,
    }
    assert [i["required"] for i in by_id["inputs"]] == [True, False, False]
    assert emu.http.get("/techniques/tech_nope").status_code == 404

    generic = start(open_catalogue=True)
    technique = generic.http.get("/techniques/tech_anything").json()
    assert technique["run_cost"] == 0.05
    created = generic.create([{"id": "subject", "type": "text", "value": "x"}], "tech_anything")
    assert created.status_code == 201
    generic.clock.advance(3)
    run = generic.get(created.json()["run_id"], "tech_anything")
    assert run["charged_cost"] == 0.05 and run["outputs"][0]["type"] == "imageUrl"


# -- faults -----------------------------------------------------------------------------------


def test_drop_cuts_the_connection_before_anything_happens(start: Start) -> None:
    emu = start(faults={"drop": 1.0})
    with pytest.raises(httpx.RemoteProtocolError):  # a transport error, not an HTTP status
        emu.create(key="k-5")
    assert emu.thread.ledger()["runs"] == []
    stats = emu.thread.stats()
    assert stats["faults"] == {"drop": 1} and stats["by_status"] == {"cut": 1}


def test_lose_answer_makes_the_run_then_cuts_the_connection(start: Start) -> None:
    emu = start(faults={"lose_answer": 1.0})
    with pytest.raises(httpx.TransportError):
        emu.create(key="k-6")
    (run,) = emu.thread.ledger()["runs"]
    assert run["idempotency_key"] == "k-6" and run["answer_lost"]
    emu.thread.set_faults(lose_answer=0.0)
    assert emu.create(key="k-6").status_code == 409  # the key was recorded with the run


def test_429_and_5xx_and_their_headers(start: Start) -> None:
    emu = start(faults={"rate_429": 1.0, "retry_after": 2})
    response = emu.create()
    assert response.status_code == 429 and error_of(response)["code"] == "rate_limited"
    assert response.headers["retry-after"] == "2" and "retry-after-ms" not in response.headers
    emu.thread.set_faults(retry_after_ms_prob=1.0, retry_after=0.25)
    response = emu.create()
    assert response.headers["retry-after-ms"] == "250" and "retry-after" not in response.headers
    emu.thread.set_faults(retry_after_prob=0.0)
    assert "retry-after" not in emu.create().headers
    emu.thread.set_faults(rate_429=0.0, rate_5xx=1.0)
    statuses = {emu.create().status_code for _ in range(20)}
    assert statuses == {500, 502, 503}
    assert error_of(emu.create())["code"] == "unknown_error"
    assert emu.thread.ledger()["runs"] == []


def test_faults_can_be_limited_to_some_endpoints(start: Start) -> None:
    emu = start(faults={"drop": 1.0, "endpoints": ("create",)})
    assert emu.http.get("/techniques/caption").status_code == 200
    assert emu.http.get("/technique-runs").status_code == 200
    with pytest.raises(httpx.TransportError):
        emu.create()
    emu.thread.set_faults(drop=0.0, rate_429=1.0, endpoints="get,list")
    run_id = emu.create().json()["run_id"]
    assert emu.http.get(f"/techniques/tech_text2img/runs/{run_id}").status_code == 429


def test_latency_delays_api_requests(start: Start) -> None:
    emu = start(faults={"latency": (0.15, 0.2)})
    began = time.monotonic()
    assert emu.http.get("/techniques/caption").status_code == 200
    assert 0.15 <= time.monotonic() - began < 2


def test_same_seed_same_faults(start: Start) -> None:
    def pattern(seed: int) -> list[int]:
        emu = start(seed=seed, faults={"rate_5xx": 0.3})
        return [emu.http.get("/techniques/caption").status_code for _ in range(30)]

    assert pattern(11) == pattern(11) != pattern(12)


def test_max_active_and_credits(start: Start) -> None:
    emu = start(run_seconds=1.0, faults={"max_active": 2})
    assert [emu.create().status_code for _ in range(3)] == [201, 201, 429]
    emu.clock.advance(1.5)
    assert emu.create().status_code == 201

    emu = start(run_seconds=1.0, faults={"credits": 0.1})
    emu.create([{"id": "prompt", "type": "text", "value": "FAIL"}])  # failed runs cost nothing
    assert [emu.create().status_code for _ in range(3)] == [201, 201, 402]
    response = emu.create()
    assert error_of(response)["code"] == "insufficient_credits"
    assert emu.thread.ledger()["credits_remaining"] == pytest.approx(0.02)
    emu.clock.advance(2)
    assert emu.thread.ledger()["charges_total"] == pytest.approx(0.08)


def test_control_panel_rejects_bad_settings(start: Start, plain: httpx.Client) -> None:
    emu = start()
    panel = f"{emu.thread.root_url}/_emulator"
    for bad in ({"drop": 2}, {"nonsense": 1}, {"endpoints": ["upload"]}, {"latency": "x"}):
        assert plain.post(f"{panel}/faults", json=bad).status_code == 400, bad
    assert plain.post(f"{panel}/config", json={"timestamps": "ns"}).status_code == 400
    assert plain.get(f"{panel}/faults").json()["drop"] == 0.0
    assert emu.thread.set_config(run_seconds=0.5)["run_seconds"] == 0.5
    assert emu.thread.set_config(api_key="secret")["api_key"] == "<set>"


# -- media, request ids, stats ----------------------------------------------------------------


def test_media_lives_on_another_origin_and_key_leaks_are_counted(
    start: Start, plain: httpx.Client
) -> None:
    emu = start(run_seconds=0.0)
    run_id = emu.create(technique="multi").json()["run_id"]
    emu.clock.advance(0.01)
    outputs = {o["type"]: o["url"] for o in emu.get(run_id, "multi")["outputs"]}
    api_host = httpx.URL(emu.thread.base_url).host
    assert api_host == "127.0.0.1"
    types = {"imageUrl": "image/png", "audioUrl": "audio/mpeg", "documentUrl": "application/pdf"}
    for kind, content_type in types.items():
        url = httpx.URL(outputs[kind])
        assert url.host == "localhost" and url.port == emu.thread.port
        response = plain.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == content_type
        assert response.content == plain.get(url).content and len(response.content) > 40
    assert plain.get(outputs["imageUrl"]).content.startswith(b"\x89PNG")
    stats = emu.thread.stats()
    assert stats["media_requests"] == 7 and stats["media_auth_leaks"] == 0
    assert stats["auth_seen_off_api"] == []

    assert plain.get(outputs["imageUrl"], headers=AUTH).status_code == 200
    stats = emu.thread.stats()
    assert stats["media_auth_leaks"] == 1
    assert stats["auth_seen_off_api"] == [AUTH["Authorization"]]
    missing = outputs["imageUrl"].replace(run_id, "run_nope")
    assert plain.get(missing).status_code == 404


def test_media_base_can_be_set(start: Start) -> None:
    emu = start(run_seconds=0.0, media_base="https://media.example.test/files/")
    run_id = emu.create().json()["run_id"]
    emu.clock.advance(0.01)
    url = emu.get(run_id)["outputs"][0]["url"]
    assert url == f"https://media.example.test/files/media/{run_id}/image.png"


def test_every_answer_carries_a_unique_request_id(start: Start, plain: httpx.Client) -> None:
    emu = start(run_seconds=0.0, faults={"rate_429": 1.0, "endpoints": ["list"]})
    run_id = emu.create().json()["run_id"]
    emu.clock.advance(0.01)
    media = emu.get(run_id)["outputs"][0]["url"]
    responses = [
        emu.http.get("/techniques/caption"),  # 200
        emu.http.post("/techniques/caption/runs", content=b"x"),  # 400
        plain.get(f"{emu.thread.base_url}/techniques/caption"),  # 401
        emu.http.get("/techniques/nope"),  # 404
        emu.http.get("/technique-runs"),  # 429 (fault)
        emu.http.delete("/techniques/caption"),  # 405
        plain.get(media),
        plain.get(f"{emu.thread.root_url}/_emulator/stats"),
        plain.get(f"{emu.thread.root_url}/elsewhere"),
    ]
    assert [r.status_code for r in responses] == [200, 400, 401, 404, 429, 405, 200, 200, 404]
    ids = [r.headers["request-id"] for r in responses]
    assert all(ids) and len(set(ids)) == len(ids)
    stats = emu.thread.stats()
    assert stats["by_endpoint"] == {"create": 2, "get": 1, "technique": 4, "list": 1, "media": 1}
    assert stats["by_status"]["429"] == 1 and stats["endpoint:create"] == 2


def test_reset_forgets_runs_keys_and_counts(start: Start) -> None:
    emu = start()
    emu.create(key="k-7")
    emu.thread.reset()
    assert emu.thread.ledger()["runs"] == [] and emu.thread.stats()["api_requests"] == 0
    assert emu.create(key="k-7").status_code == 201


def test_control_clock_moves_time(start: Start) -> None:
    emu = start(idempotency_window=60)
    run_id = emu.create(key="k-8").json()["run_id"]
    emu.thread.advance_clock(61)
    assert emu.get(run_id)["status"] == "completed"
    assert emu.create(key="k-8").status_code == 201


# -- as a process -----------------------------------------------------------------------------


def test_process_prints_its_url_and_takes_flags(plain: httpx.Client) -> None:
    flags = ("--api-key", "k", "--create-status", "200", "--id-field", "runId", "--seed", "5",
             "--run-seconds", "0.2", "--fault-endpoints", "create", "--latency", "0..0.01")  # fmt: skip
    with EmulatorProcess(*flags) as emu:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", emu.base_url)
        created = plain.post(
            f"{emu.base_url}/techniques/caption/runs",
            json={"inputs": [{"id": "image", "type": "imageUrl", "value": IMAGE}]},
            headers={"Authorization": "Bearer k"},
        )
        assert created.status_code == 200 and "runId" in created.json()
        assert emu.set_faults(drop=0.5)["endpoints"] == ["create"]
        assert emu.stats()["by_endpoint"] == {"create": 1}
        assert len(emu.ledger()["runs"]) == 1
    assert emu.proc.returncode == 0  # SIGTERM ends it cleanly


def test_process_line_is_exact_and_sigint_stops_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchrun.emulator", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.fullmatch(r"FLORA emulator listening on http://127\.0\.0\.1:\d+/api/v1\n", line)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and out == "" and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_help_lists_every_flag() -> None:
    from click.testing import CliRunner

    from batchrun.emulator.cli import emulator

    result = CliRunner().invoke(emulator, ["--help"])
    assert result.exit_code == 0
    for flag in ("--host", "--port", "--api-key", "--run-seconds", "--run-spread",
                 "--pending-seconds", "--pending-fraction", "--jitter", "--seed", "--fail-rate",
                 "--fail-mix", "--quote-on-create", "--cost-drift-rate", "--cost-drift",
                 "--late-cost-seconds", "--duplicate-mode",
                 "--idempotency-window", "--create-status", "--timestamps", "--id-field",
                 "--open-catalogue", "--latency", "--rate-429", "--retry-after", "--rate-5xx",
                 "--drop", "--lose-answer", "--max-active", "--credits", "--fault-endpoints"):  # fmt: skip
        assert flag in result.output
    bad = CliRunner().invoke(emulator, ["--latency", "fast"])
    assert bad.exit_code == 2 and "latency" in bad.output
