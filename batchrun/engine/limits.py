"""Two plain knobs, built as small meters with an injectable clock so tests never sleep:
how many runs may be in flight at once, and how many creates may start per second."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateMeter:
    """A token bucket: at most ``rate`` acquisitions per second, bursts of up to ``burst``."""

    def __init__(
        self,
        rate: float | None,
        burst: float | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate or 1.0)
        self._tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        if self.rate:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def available(self) -> int:
        if not self.rate:
            return 1 << 30
        self._refill()
        return int(self._tokens + 1e-9)

    def take(self, n: int = 1) -> None:
        if self.rate:
            self._refill()
            self._tokens -= n

    async def wait(self) -> None:
        """Return once a token is there to take."""
        if not self.rate:
            return
        while True:
            self._refill()
            if self._tokens >= 1 - 1e-9:  # float sums fall a hair short of whole tokens
                return
            await self._sleep(max((1 - self._tokens) / self.rate, 1e-3))

    async def acquire(self) -> None:
        await self.wait()
        self.take()


class InFlightMeter:
    """At most ``limit`` runs in flight. On 429 the limit halves (not below ``floor``) and new
    sends pause for the server's Retry-After; each full window of successes adds one back."""

    def __init__(self, maximum: int, floor: int = 2, clock: Clock = time.monotonic) -> None:
        self.maximum = maximum
        self.floor = min(floor, maximum)
        self.limit = maximum
        self.in_flight = 0
        self.paused_until = 0.0
        self._clock = clock
        self._successes = 0
        self._last_cut = float("-inf")
        self._changed = asyncio.Event()

    def free(self) -> int:
        if self._clock() < self.paused_until:
            return 0
        return max(0, self.limit - self.in_flight)

    def take(self, n: int = 1) -> None:
        self.in_flight += n

    def release(self, n: int = 1) -> None:
        self.in_flight = max(0, self.in_flight - n)
        self._changed.set()

    def pause_left(self) -> float:
        return max(0.0, self.paused_until - self._clock())

    async def wait_free(self, timeout: float | None = None) -> None:
        """Return when a slot may be free (callers check ``free()`` again)."""
        pause = self.pause_left()
        if pause > 0:
            timeout = pause if timeout is None else min(timeout, pause)
        self._changed.clear()
        if self.free() > 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def throttle(self, retry_after: float | None) -> None:
        """The server said 429: fewer runs in flight for everyone, and a pause if it asked."""
        now = self._clock()
        if retry_after:
            self.paused_until = max(self.paused_until, now + retry_after)
        # One cut per second: a burst of 429s from one overload is one signal, not ten.
        if now - self._last_cut >= 1.0:
            self.limit = max(self.floor, self.limit // 2)
            self._last_cut = now
        self._successes = 0

    def success(self) -> None:
        if self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self.limit += 1
            self._successes = 0
            self._changed.set()
