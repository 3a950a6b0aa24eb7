"""The one retry policy: which failures are worth another try, and how long to wait.

Retried: timeouts and connection errors, 408, 429 and 5xx. Never retried: 400, 401, 402, 403, 404,
409 and 422, whose answer would not change. ``x-should-retry`` from the server overrides either way.
Waits honour ``retry-after-ms`` / ``Retry-After``; otherwise exponential backoff with jitter, capped.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ApiError, TransportError

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState

RETRYABLE_STATUSES = frozenset({408, 429})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 120.0
_RNG = random.Random()
T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, TransportError):
        return True
    if isinstance(exc, ApiError):
        if exc.should_retry is not None:
            return exc.should_retry
        if exc.code.startswith("idempotency_"):
            return False
        return exc.status in RETRYABLE_STATUSES or exc.status >= 500
    return False


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before try ``attempt + 1``: ``min(0.5 * 2**(n-1), 30)`` with 75-100 % jitter."""
    base: float = min(BACKOFF_BASE * 2.0 ** max(attempt - 1, 0), BACKOFF_CAP)
    jitter: float = (rng or _RNG).uniform(0.75, 1.0)
    return base * jitter


def wait_retry_after_or_backoff(
    rng: random.Random | None = None,
) -> Callable[[RetryCallState], float]:
    """Tenacity's wait: the server's Retry-After when it gave one, else ``backoff``."""

    def wait(retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            return max(0.0, min(exc.retry_after, RETRY_AFTER_CAP))
        return backoff(retry_state.attempt_number, rng)

    return wait


def retrying(
    attempts: int = 8,
    before_sleep: Callable[[RetryCallState], Any] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    rng: random.Random | None = None,
    give_up: Callable[[], bool] | None = None,
) -> AsyncRetrying:
    """An AsyncRetrying for one request; ``sleep`` is injectable so tests do not wait, and
    ``give_up`` ends the retries early (the batch is stopping)."""
    # Imported at the first retry: most commands never make one, and tenacity costs 10 ms.
    from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    after = stop_after_attempt(attempts)
    stop: Callable[[RetryCallState], bool] = after
    if give_up is not None:
        stop = lambda state: after(state) or give_up()  # noqa: E731
    return AsyncRetrying(
        stop=stop,
        wait=wait_retry_after_or_backoff(rng),
        retry=retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
        **kwargs,
    )


async def call(
    fn: Callable[[], Awaitable[T]],
    attempts: int = 8,
    before_sleep: Callable[[RetryCallState], Any] | None = None,
    give_up: Callable[[], bool] | None = None,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """``fn()`` under the policy above. Tenacity's machinery costs about as much CPU as the
    request it guards, and almost every first try succeeds, so the first try runs bare; if it
    fails in a retryable way, tenacity starts from that failure as its own first attempt, so
    waits, callbacks and the attempt count are exactly as if it had run all along."""
    try:
        return await fn()
    except Exception as exc:
        if not is_retryable(exc):
            raise
        failed: Exception | None = exc
    async for attempt in retrying(attempts, before_sleep, sleep, give_up=give_up):
        with attempt:
            if failed is not None:
                first, failed = failed, None
                raise first
            return await fn()
    raise AssertionError("unreachable: tenacity reraises")
