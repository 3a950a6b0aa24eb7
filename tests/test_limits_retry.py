import random

import pytest
from tenacity import RetryCallState

from batchrun.engine.limits import InFlightMeter, RateMeter
from batchrun.engine.recovery import match
from batchrun.engine.retry import backoff, call, is_retryable, retrying
from batchrun.errors import ApiError, TransportError
from batchrun.models import Run


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_rate_meter_spaces_acquisitions_without_sleeping() -> None:
    clock = FakeClock()
    meter = RateMeter(5.0, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(11):
        await meter.acquire()
    assert clock.now == pytest.approx(2.0)


def test_rate_meter_without_rate_is_unlimited() -> None:
    assert RateMeter(None).available() > 10**6


def test_in_flight_meter_halves_on_429_and_recovers() -> None:
    clock = FakeClock()
    meter = InFlightMeter(16, clock=clock)
    meter.take(16)
    assert meter.free() == 0
    meter.throttle(retry_after=2.0)
    assert meter.limit == 8
    meter.throttle(retry_after=None)  # the same burst: no second cut
    assert meter.limit == 8
    meter.release(16)
    assert meter.free() == 0  # paused for Retry-After
    clock.now = 2.5
    assert meter.free() == 8
    for _ in range(8):
        meter.success()
    assert meter.limit == 9
    for _ in range(20):
        clock.now += 1.1
        meter.throttle(None)
    assert meter.limit == 2  # never below the floor


def test_retry_policy() -> None:
    assert is_retryable(TransportError("x"))
    for status, code in [(408, "x"), (429, "rate_limited"), (500, "unknown_error"), (503, "x")]:
        assert is_retryable(ApiError(status, code, "m"))
    for status, code in [(400, "x"), (401, "x"), (402, "insufficient_credits"), (403, "x"),
                         (404, "x"), (409, "idempotency_duplicate"), (422, "idempotency_conflict")]:  # fmt: skip
        assert not is_retryable(ApiError(status, code, "m"))
    assert not is_retryable(ApiError(503, "x", "m", should_retry=False))
    assert is_retryable(ApiError(400, "x", "m", should_retry=True))


def test_backoff_is_jittered_and_capped() -> None:
    rng = random.Random(1)
    waits = [backoff(n, rng) for n in range(1, 12)]
    assert 0.375 <= waits[0] <= 0.5
    assert all(w <= 30.0 for w in waits) and waits[-1] >= 22.5


async def test_retrying_honours_retry_after_and_gives_up() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    calls = 0
    with pytest.raises(ApiError):
        async for attempt in retrying(3, sleep=sleep):
            with attempt:
                calls += 1
                raise ApiError(429, "rate_limited", "slow down", retry_after=4.0)
    assert calls == 3 and slept == [4.0, 4.0]

    calls = 0
    with pytest.raises(ApiError):
        async for attempt in retrying(5, sleep=sleep):
            with attempt:
                calls += 1
                raise ApiError(422, "idempotency_conflict", "no")
    assert calls == 1


async def test_call_runs_the_first_try_bare_and_then_the_same_policy() -> None:
    slept: list[float] = []
    told: list[tuple[int, str]] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        told.append((state.attempt_number, type(exc).__name__))

    answers: list[object] = [
        ApiError(429, "rate_limited", "slow", retry_after=2.0),
        TransportError("cut"),
        "ok",
    ]
    calls = 0

    async def fn() -> str:
        nonlocal calls
        calls += 1
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    assert await call(fn, 5, before_sleep, sleep=sleep) == "ok"
    # The bare first try's failure is tenacity's attempt 1: its wait, its callback.
    assert calls == 3 and told == [(1, "ApiError"), (2, "TransportError")]
    assert slept[0] == 2.0 and 0.75 <= slept[1] <= 1.0  # backoff after the second try

    calls, slept[:] = 0, []
    answers[:] = [ApiError(400, "bad_request", "no")]
    with pytest.raises(ApiError):
        await call(fn, 5, sleep=sleep)
    assert calls == 1 and slept == []

    calls = 0
    answers[:] = [TransportError("cut")] * 3
    with pytest.raises(TransportError):
        await call(fn, 3, sleep=sleep)
    assert calls == 3

    calls = 0
    answers[:] = [TransportError("cut")] * 3
    with pytest.raises(TransportError):
        await call(fn, 3, give_up=lambda: True, sleep=sleep)
    assert calls == 1


def run(run_id: str, at: float | None) -> Run:
    return Run(run_id, "running", created_at=at)


def test_match_adopts_only_forced_pairs() -> None:
    windows = {"a": (0.0, 10.0), "b": (0.0, 30.0), "c": (50.0, 60.0)}
    runs = [run("x", 5.0), run("y", 20.0), run("z", 55.0), run("w", 100.0)]
    found = match(windows, runs)
    assert {k: v.run_id for k, v in found.items()} == {"a": "x", "b": "y", "c": "z"}


def test_match_leaves_ambiguity_alone() -> None:
    windows = {"a": (0.0, 10.0), "b": (0.0, 10.0)}
    assert match(windows, [run("x", 5.0), run("y", 6.0)]) == {}
    assert match(windows, [run("x", 5.0)]) == {}  # two rows, one run: neither is sure
    assert match({"a": (0.0, 10.0)}, [run("x", None), run("y", 5.0)]) == {}
