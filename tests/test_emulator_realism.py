"""The emulator behaves like FLORA: run times that vary, failures by tier, costs that differ from
their quotes, a ledger that tells what the server drew; and the makespan that bench computes."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from batchrun.emulator import CATALOGUE, EmulatorConfig, EmulatorThread, Faults, Store
from batchrun.emulator.failures import (
    DEFAULT_FAIL_MIX,
    MIX_NAMES,
    PROVIDER_ERROR,
    TIERS,
    parse_mix,
    tier_of,
)
from bench.limit import ledger_durations, makespan, retried_makespan
from tests.support.emulator import EmulatorProcess, steady_config

AUTH = {"Authorization": "Bearer sk-emulator-test"}
TEXT2IMG = CATALOGUE["tech_text2img"]
SAFETY_WORDS = re.compile(r"safety|moderat|refus|policy", re.IGNORECASE)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def prompt(value: str = "a lighthouse at dusk") -> list[dict[str, str]]:
    return [{"id": "prompt", "type": "text", "value": value}]


def store(n: int = 0, faults: dict[str, Any] | None = None, **settings: Any) -> Store:
    """A store (no HTTP) with ``n`` runs created at one instant."""
    s = Store(EmulatorConfig(faults=Faults(**(faults or {})), **settings), FakeClock())
    for i in range(n):
        s.create(TEXT2IMG, prompt(f"picture {i}"), f"key-{i}", f"sha-{i}")
    return s


def column(s: Store, name: str) -> list[Any]:
    return [run[name] for run in s.ledger()["runs"]]


# -- run times --------------------------------------------------------------------------------


def test_default_run_times_vary_around_run_seconds() -> None:
    s = store(4000, run_seconds=2.0)
    runs = column(s, "run_seconds")
    assert statistics.fmean(runs) == pytest.approx(2.0, rel=0.05)
    cv = statistics.stdev(runs) / statistics.fmean(runs)
    assert 0.4 < cv < 0.65  # sigma 0.5: a coefficient of variation of about 0.53
    assert min(runs) < 1.0 and max(runs) > 4.0  # a wide spread and a long tail
    pending = column(s, "pending_seconds")
    assert statistics.fmean(pending) == pytest.approx(0.2, rel=0.05)  # 10 % of run-seconds
    assert statistics.stdev(pending) > 0


def test_spread_zero_is_exact_and_pending_can_be_seconds_or_a_fraction() -> None:
    s = store(20, run_seconds=1.5, run_spread=0.0)
    assert set(column(s, "run_seconds")) == {1.5}
    assert set(column(s, "pending_seconds")) == {0.15}
    assert set(column(s, "duration_seconds")) == {1.65}
    s = store(5, run_seconds=1.0, run_spread=0.0, pending_seconds=0.3)
    assert set(column(s, "pending_seconds")) == {0.3}
    s = store(5, run_seconds=1.0, run_spread=0.0, pending_fraction=0.0)
    assert set(column(s, "pending_seconds")) == {0.0}
    s = store(5, run_seconds=0.0)  # instant runs stay instant, whatever the spread
    assert set(column(s, "duration_seconds")) == {0.0}


def test_wider_spread_wider_times() -> None:
    narrow = column(store(2000, run_spread=0.2), "run_seconds")
    wide = column(store(2000, run_spread=1.0), "run_seconds")
    assert statistics.stdev(narrow) < statistics.stdev(wide)
    assert statistics.fmean(wide) == pytest.approx(2.0, rel=0.1)


def test_the_same_seed_draws_the_same_world() -> None:
    def world(seed: int) -> list[tuple[Any, ...]]:
        s = store(300, seed=seed, faults={"fail_rate": 0.2})
        fields = ("run_id", "pending_seconds", "run_seconds", "error_code", "final_cost")
        return [tuple(run[f] for f in fields) for run in s.ledger()["runs"]]

    first = world(7)
    assert first == world(7) and first != world(8)


def test_changing_failures_moves_no_run_time() -> None:
    calm = store(100, seed=3, faults={"fail_rate": 0.0})
    stormy = store(100, seed=3, faults={"fail_rate": 0.5})
    assert column(calm, "duration_seconds") == column(stormy, "duration_seconds")


def test_progress_rises_while_running(start: Start) -> None:
    emu = start(run_seconds=1.0, run_spread=0.0, pending_seconds=0.5, faults={"fail_rate": 0})
    run_id = emu.create().json()["run_id"]
    seen = []
    emu.clock.advance(0.05)  # look between the tenths, clear of float rounding at the edges
    for _ in range(16):
        run = emu.get(run_id)
        seen.append((run["status"], run["progress"]))
        emu.clock.advance(0.1)
    statuses = [status for status, _ in seen]
    assert statuses == ["pending"] * 5 + ["running"] * 10 + ["completed"]
    progress = [p for _, p in seen]
    assert progress[:5] == [0] * 5 and progress[-1] == 100
    running = progress[5:15]
    assert running == sorted(running) and len(set(running)) == 10 and max(running) < 100


@pytest.mark.parametrize(
    "rises, expected",
    [
        ("even", [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]),
        # held at 0 while a model loads (a fifth), at 99 while outputs are stored (a tenth)
        ("uneven", [0, 0, 7, 21, 35, 50, 64, 78, 92, 99]),
        ("none", [0] * 10),
    ],
)
def test_progress_can_rise_unevenly_or_not_at_all(
    start: Start, rises: str, expected: list[int]
) -> None:
    emu = start(run_seconds=1.0, run_spread=0.0, pending_seconds=0.0, progress=rises,
                faults={"fail_rate": 0})  # fmt: skip
    run_id = emu.create().json()["run_id"]
    seen = []
    emu.clock.advance(0.05)
    for _ in range(11):
        run = emu.get(run_id)
        seen.append((run["status"], run["progress"]))
        emu.clock.advance(0.1)
    assert seen[-1] == ("completed", 100)
    assert {status for status, _ in seen[:-1]} == {"running"}
    progress = [p for _, p in seen[:-1]]
    assert all(abs(p - e) <= 1 for p, e in zip(progress, expected, strict=True)), progress
    assert [p for p, e in zip(progress, expected, strict=True) if e in (0, 99)] == [
        e for e in expected if e in (0, 99)
    ]  # the held phases hold exactly


# -- failures ---------------------------------------------------------------------------------


def test_default_failures_are_few_and_mostly_retry_now() -> None:
    s = store(6000)
    failed = [run for run in s.ledger()["runs"] if run["error_code"]]
    assert 0.02 < len(failed) / 6000 < 0.04
    tiers = Counter(run["error_tier"] for run in failed)
    assert tiers.most_common(1)[0][0] == "retry_now" and tiers["retry_now"] > len(failed) / 2
    assert set(tiers) == set(MIX_NAMES)
    assert {run["fail_source"] for run in failed} == {"drawn"}
    assert all(run["final_cost"] == 0 for run in failed)


@pytest.mark.parametrize("tier", [*TIERS])
def test_each_tier_draws_its_own_codes_and_messages(tier: str) -> None:
    s = store(300, faults={"fail_rate": 1.0, "fail_mix": {tier: 1}})
    now = s.now() + 1000
    codes: Counter[str] = Counter()
    for rec in s.runs.values():
        assert rec.failure is not None and rec.status(now) == "failed"
        assert rec.failure.code in TIERS[tier] and rec.failure.tier == tier
        assert rec.failure.message == TIERS[tier][rec.failure.code]
        assert tier_of(rec.failure.code) == tier
        codes[rec.failure.code] += 1
    assert set(codes) == set(TIERS[tier])  # every code of the tier turns up


def test_retryable_messages_never_read_as_a_refusal() -> None:
    for tier in ("retry_now", "retry_later"):
        for code, message in TIERS[tier].items():
            assert not SAFETY_WORDS.search(message), code


def test_moderated_failures_are_gpu_provider_errors_with_a_safety_message() -> None:
    s = store(50, faults={"fail_rate": 1.0, "fail_mix": "moderated=1"})
    for run in s.ledger()["runs"]:
        assert run["error_code"] == "GPU_PROVIDER_ERROR" and run["error_tier"] == "moderated"
    rec = next(iter(s.runs.values()))
    assert rec.failure is not None
    assert rec.failure.message.startswith("Your request was rejected by the safety system")
    assert re.search(r"safety_violations=\[[a-z-]+\]", rec.failure.message)


def test_fail_mix_parses_and_rejects_nonsense() -> None:
    assert parse_mix("retry_now=3, retry_later=1") == {
        "retry_now": 0.75,
        "retry_later": 0.25,
        "change_input": 0.0,
        "not_retryable": 0.0,
        "moderated": 0.0,
    }
    assert parse_mix(DEFAULT_FAIL_MIX) == pytest.approx(DEFAULT_FAIL_MIX)
    assert sum(DEFAULT_FAIL_MIX.values()) == pytest.approx(1.0)
    for bad in ("retry_now", "retry_now=x", "sometimes=1", "retry_now=0", "retry_now=-1", 5):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_a_failed_run_is_refunded_and_reads_like_flora(start: Start) -> None:
    emu = start(run_seconds=0.5, faults={"fail_rate": 1.0, "fail_mix": "retry_later=1"})
    created = emu.create().json()
    assert created["status"] == "pending" and created["charged_cost"] == 0.04  # quoted anyway
    emu.clock.advance(10)
    run = emu.get(created["run_id"])
    assert run["status"] == "failed" and run["progress"] == 100
    assert run["error_code"] in TIERS["retry_later"]
    assert run["error_message"] == TIERS["retry_later"][run["error_code"]]
    assert run["charged_cost"] == 0 and "outputs" not in run
    assert run["completed_at"] >= run["started_at"] >= run["created_at"]
    ledger = emu.thread.ledger()
    assert ledger["charges_total"] == 0 and ledger["runs"][0]["charged_cost"] == 0


# -- triggers ---------------------------------------------------------------------------------


def fate(emu: Emu, value: str, key: str | None = None) -> dict[str, Any]:
    created = emu.create(prompt(value), key=key)
    assert created.status_code == 201, created.text
    emu.clock.advance(60)
    return emu.get(created.json()["run_id"])


def test_fail_triggers(start: Start) -> None:
    emu = start()  # the realistic defaults, random failures included: triggers win over them
    plain = fate(emu, "please FAIL")
    assert (plain["error_code"], plain["error_message"]) == PROVIDER_ERROR
    coded = fate(emu, "a storm FAIL:GENERATION_QUEUE_TOO_LARGE")
    assert coded["status"] == "failed" and coded["error_code"] == "GENERATION_QUEUE_TOO_LARGE"
    assert coded["error_message"] == TIERS["retry_later"]["GENERATION_QUEUE_TOO_LARGE"]
    refused = fate(emu, "FAIL:MODERATED")
    assert refused["error_code"] == "GPU_PROVIDER_ERROR"
    assert "rejected by the safety system" in refused["error_message"]
    assert "safety_violations=[" in refused["error_message"]
    other = fate(emu, "FAIL:ACCESS_WORKSPACE_LOCKED")  # a family the notes name
    assert other["error_code"] == "ACCESS_WORKSPACE_LOCKED" and other["error_message"]
    tiers = [run["error_tier"] for run in emu.thread.ledger()["runs"]]
    assert tiers == [None, "retry_later", "moderated", "not_retryable"]
    assert {run["fail_source"] for run in emu.thread.ledger()["runs"]} == {"trigger"}


def test_fail_n_fails_the_first_n_runs_of_that_text_across_keys(start: Start) -> None:
    emu = start(faults={"fail_rate": 0.0})
    text = "retry me FAIL2:GPU_PROVIDER_ERROR"
    fates = [fate(emu, text, key=f"attempt-{i}") for i in range(4)]
    assert [run["status"] for run in fates] == ["failed", "failed", "completed", "completed"]
    assert fates[0]["error_code"] == "GPU_PROVIDER_ERROR"
    assert not SAFETY_WORDS.search(fates[0]["error_message"])  # a real provider error
    assert fates[2]["charged_cost"] == 0.04
    # Counted per exact text: another text has its own count; no code means provider_error.
    assert fate(emu, text + " again")["status"] == "failed"
    assert fate(emu, "FAIL1")["error_code"] == "provider_error"
    assert fate(emu, "FAIL1")["status"] == "completed"
    assert fate(emu, "FAIL0:SERVER_ERROR")["status"] == "completed"


def test_reset_forgets_trigger_counts(start: Start) -> None:
    emu = start(faults={"fail_rate": 0.0})
    assert fate(emu, "FAIL1:SERVER_ERROR")["status"] == "failed"
    emu.thread.reset()
    assert fate(emu, "FAIL1:SERVER_ERROR")["status"] == "failed"


# -- costs ------------------------------------------------------------------------------------


def test_create_answers_a_quote_and_the_final_cost_may_differ(start: Start) -> None:
    emu = start(cost_drift_rate=1.0, cost_drift=0.5, faults={"fail_rate": 0.0})
    created = [emu.create(prompt(f"p{i}")).json() for i in range(40)]
    assert {run["charged_cost"] for run in created} == {0.04}
    emu.clock.advance(60)
    finals = [emu.get(run["run_id"])["charged_cost"] for run in created]
    assert all(0.04 / 1.5 - 1e-9 <= cost <= 0.04 * 1.5 + 1e-9 for cost in finals)
    assert len(set(finals)) > 30 and min(finals) < 0.04 < max(finals)
    ledger = emu.thread.ledger()
    assert ledger["charges_total"] == pytest.approx(sum(finals))
    assert ledger["quotes_total"] == pytest.approx(40 * 0.04)
    assert [run["final_cost"] for run in ledger["runs"]] == finals
    assert {run["quoted_cost"] for run in ledger["runs"]} == {0.04}


def test_default_drift_is_modest() -> None:
    s = store(2000, faults={"fail_rate": 0.0})
    finals = column(s, "final_cost")
    drifted = [cost for cost in finals if cost != 0.04]
    assert 0.15 < len(drifted) / len(finals) < 0.25
    assert all(0.04 / 1.25 - 1e-9 <= cost <= 0.04 * 1.25 + 1e-9 for cost in drifted)


def test_late_cost_and_no_quote_on_create(start: Start) -> None:
    emu = start(
        run_seconds=1.0,
        run_spread=0.0,
        late_cost_seconds=5.0,
        quote_on_create=False,
        faults={"fail_rate": 0.0},
    )
    created = emu.create().json()
    assert "charged_cost" not in created
    emu.clock.advance(2)
    done = emu.get(created["run_id"])
    assert done["status"] == "completed" and "charged_cost" not in done
    assert emu.thread.ledger()["charges_total"] == 0.04  # charged already, shown later
    emu.clock.advance(5)
    assert emu.get(created["run_id"])["charged_cost"] == 0.04


def test_committed_charges_and_credits_count_final_costs(start: Start) -> None:
    emu = start(cost_drift_rate=1.0, faults={"fail_rate": 0.0, "credits": 10.0})
    for i in range(5):
        emu.create(prompt(f"p{i}"))
    ledger = emu.thread.ledger()
    assert ledger["charges_total"] == 0  # nothing has ended yet
    committed = sum(run["final_cost"] for run in ledger["runs"])
    assert ledger["charges_committed"] == pytest.approx(committed)
    assert ledger["credits_remaining"] == pytest.approx(10.0 - committed)


# -- the ledger and the limit -----------------------------------------------------------------


def test_ledger_records_what_the_server_drew(start: Start) -> None:
    emu = start(run_seconds=0.4)
    ids = [emu.create(prompt(f"p{i}")).json()["run_id"] for i in range(30)]
    emu.clock.advance(0.05)
    ids += [emu.create(prompt(f"q{i}")).json()["run_id"] for i in range(10)]
    emu.clock.advance(60)
    ledger = emu.thread.ledger()
    assert [run["run_id"] for run in ledger["runs"]] == ids  # creation order
    for run in ledger["runs"]:
        answer = emu.get(run["run_id"])
        for name in ("created_at", "started_at", "completed_at"):
            assert run[name] == pytest.approx(answer[name], abs=1e-6)
        pending, running = run["pending_seconds"], run["run_seconds"]
        assert pending == pytest.approx(run["started_at"] - run["created_at"], abs=2e-6)
        assert running == pytest.approx(run["completed_at"] - run["started_at"], abs=2e-6)
        assert run["duration_seconds"] == pytest.approx(
            run["pending_seconds"] + run["run_seconds"], abs=2e-6
        )
    durations = ledger_durations(ledger)
    assert len(set(durations)) == 40
    assert makespan(durations, 50) == pytest.approx(max(durations))
    assert makespan(durations, 1) == pytest.approx(sum(durations))


def test_makespan_examples() -> None:
    assert makespan([], 4) == 0.0
    assert makespan([3.0, 1.0, 2.0, 2.0], 2) == 5.0  # 3 | 1, then 2 after the 1, then 2 after 3
    assert makespan([1.0, 1.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert makespan([0.5] * 100, 10) == pytest.approx(5.0)
    assert makespan([2.0, 0.0], 1) == 2.0
    for bad in (0, -1):
        with pytest.raises(ValueError):
            makespan([1.0], bad)
    for durations in ([-1.0], [math.inf], [math.nan]):
        with pytest.raises(ValueError):
            makespan(durations, 2)


def _run(row: str, created: float, seconds: float, tier: str | None = None) -> dict[str, object]:
    return {"inputs": [{"id": "prompt", "value": row}], "created_at": created,
            "duration_seconds": seconds, "error_tier": tier}  # fmt: skip


def test_retried_makespan_waits_out_back_offs_and_puts_re_sends_first() -> None:
    # Without failures it is the plain makespan.
    plain = [_run(str(i), i, d) for i, d in enumerate([3.0, 1.0, 2.0, 2.0])]
    assert retried_makespan(plain, 2, backoff=30) == makespan([3.0, 1.0, 2.0, 2.0], 2)
    # Row a fails (retry_now) and goes again at once, ahead of b: a 1, a 1, b 5 | c 3 (b first
    # would have ended at 6).
    now = [_run("a", 0, 1.0, "retry_now"), _run("c", 1, 3.0), _run("b", 2, 5.0),
           _run("a", 3, 1.0)]  # fmt: skip
    assert retried_makespan(now, 2, backoff=30) == 7.0
    # retry_later: the re-send waits 3/4 of the back-off (the shortest jitter), doubling with
    # each re-send of the row; meanwhile the other rows take the slot.
    later = [_run("a", 0, 1.0, "retry_later"), _run("b", 1, 1.0), _run("a", 2, 1.0, "retry_later"),
             _run("a", 3, 1.0)]  # fmt: skip
    assert retried_makespan(later, 1, backoff=4) == pytest.approx(1 + 3 + 1 + 6 + 1)
    with pytest.raises(ValueError):
        retried_makespan(plain, 0, backoff=1)


@given(
    st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=60),
    st.integers(min_value=1, max_value=20),
)
def test_makespan_bounds(durations: list[float], concurrency: int) -> None:
    got = makespan(durations, concurrency)
    if not durations:
        assert got == 0.0
        return
    total, longest = sum(durations), max(durations)
    slack = 1e-6 * (total + 1)
    assert got >= max(longest, total / concurrency) - slack  # no schedule can do better
    assert got <= total / concurrency + longest + slack  # greedy is never far off
    assert got <= total + slack and makespan(durations, 1) == pytest.approx(total)
    assert makespan(durations, len(durations)) == pytest.approx(longest)


# -- knobs: config, control panel, command line, the tests' helpers ---------------------------


def test_config_rejects_bad_realism_settings() -> None:
    for bad in (
        {"run_spread": -0.1},
        {"run_spread": 5},
        {"pending_fraction": -1},
        {"pending_seconds": -1},
        {"cost_drift_rate": 1.5},
        {"cost_drift": -0.1},
        {"quote_on_create": "yes"},
    ):
        with pytest.raises(ValueError):
            EmulatorConfig(**bad)


def test_control_panel_changes_realism_at_runtime(start: Start, plain: httpx.Client) -> None:
    emu = start()
    assert emu.thread.set_faults(fail_mix="retry_later=1")["fail_mix"]["retry_later"] == 1.0
    assert emu.thread.set_config(run_spread=0.0)["run_spread"] == 0.0
    panel = f"{emu.thread.root_url}/_emulator"
    assert plain.post(f"{panel}/faults", json={"fail_mix": "nope=1"}).status_code == 400
    assert plain.post(f"{panel}/config", json={"run_spread": -1}).status_code == 400
    assert plain.post(f"{panel}/config", json={"jitter": 0.1}).status_code == 400


def test_cli_builds_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from batchrun.emulator import cli

    seen: list[EmulatorConfig] = []
    monkeypatch.setattr(cli, "serve", lambda config, host, port: seen.append(config))

    def config(*args: str) -> EmulatorConfig:
        result = CliRunner().invoke(cli.emulator, list(args))
        assert result.exit_code == 0, result.output
        return seen.pop()

    default = config()
    assert default == EmulatorConfig()  # the command line's defaults are the config's
    assert default.run_spread == 0.5 and default.faults.fail_rate == 0.03
    flags = config("--run-spread", "0", "--pending-seconds", "0.1", "--fail-rate", "0.1",
                   "--fail-mix", "retry_now=1,moderated=1", "--cost-drift-rate", "0",
                   "--cost-drift", "2", "--no-quote-on-create")  # fmt: skip
    assert (flags.run_spread, flags.pending_seconds, flags.faults.fail_rate) == (0, 0.1, 0.1)
    assert flags.faults.fail_mix["moderated"] == 0.5 and not flags.quote_on_create
    assert (flags.cost_drift_rate, flags.cost_drift) == (0, 2)
    assert config("--jitter", "0.3").run_spread == pytest.approx(0.3 / math.sqrt(3))
    assert config("--jitter", "0.3", "--run-spread", "0.1").run_spread == 0.1
    bad = CliRunner().invoke(cli.emulator, ["--fail-mix", "often=1"])
    assert bad.exit_code == 2 and "fail mix" in bad.output


def test_help_documents_the_triggers() -> None:
    from batchrun.emulator.cli import emulator

    text = CliRunner().invoke(emulator, ["--help"]).output
    for needle in ("FAIL:CODE", "FAIL:MODERATED", "FAIL<n>:CODE", "--run-spread", "--fail-mix"):
        assert needle in text


def test_emulator_process_pins_failures_and_drift_but_not_timing() -> None:
    with EmulatorProcess() as emu:
        faults, config = emu.set_faults(), emu.set_config()
        assert faults["fail_rate"] == 0 and config["cost_drift_rate"] == 0
        assert config["run_spread"] == 0.5
    with EmulatorProcess("--fail-rate", "0.2", cost_drift_rate=None) as emu:
        assert emu.set_faults()["fail_rate"] == 0.2  # the test's own flag wins
        assert emu.set_config()["cost_drift_rate"] == EmulatorConfig().cost_drift_rate
    steady = steady_config(run_seconds=0.1)
    assert steady.faults.fail_rate == 0 and steady.cost_drift_rate == 0
    assert steady.run_spread == EmulatorConfig().run_spread


# -- fixtures ---------------------------------------------------------------------------------


class Emu:
    def __init__(self, thread: EmulatorThread, clock: FakeClock) -> None:
        self.thread, self.clock = thread, clock
        self.http = httpx.Client(base_url=thread.base_url, headers=AUTH, timeout=5)

    def create(
        self, inputs: list[dict[str, str]] | None = None, key: str | None = None
    ) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        body = {"inputs": inputs or prompt()}
        return self.http.post("/techniques/tech_text2img/runs", json=body, headers=headers)

    def get(self, run_id: str) -> dict[str, Any]:
        response = self.http.get(f"/techniques/tech_text2img/runs/{run_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


Start = Callable[..., Emu]


@pytest.fixture(scope="module")
def plain() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def start() -> Iterator[Start]:
    """An emulator thread on a fake clock with the realistic defaults unless told otherwise."""
    running: list[Emu] = []

    def _start(faults: dict[str, Any] | None = None, **settings: Any) -> Emu:
        clock = FakeClock()
        config = EmulatorConfig(faults=Faults(**(faults or {})), **settings)
        running.append(Emu(EmulatorThread(config, clock=clock).start(), clock))
        return running[-1]

    yield _start
    for emu in running:
        emu.http.close()
        emu.thread.stop()
