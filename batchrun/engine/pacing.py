"""When the poller sweeps the run list again: the trade between requests and detection delay.

A sweep is one request (a page of up to 100 runs) and tells about every run in flight at once.
A run that ends just after a sweep waits for the next one, its slot idle meanwhile: each second
it waits is a second added to the batch, and each sweep is a request against the account's rate
limit. Run times vary widely, so sweeps are not timed by a predicted length of run; they follow
the rate at which runs are finishing, ``n / D`` (``n`` runs in flight, ``D`` the mean run from
created to completed, learnt from the runs that ended). The sweep rate is

- ``PER_END`` sweeps per run ending, when that is more than
- one sweep per ``FLOOR * D`` (a handful per run: with few runs in flight, a run that ends is
  seen within a few percent of its length), and never more than
- one sweep per ``POLITE * D`` on average (minute-long runs are looked at every second or two,
  not every few milliseconds; ends that progress predicts may draw two closer).

With many runs out (the floor alone spends less than ``SHARE`` a run), an account holds polling
to ``SHARE`` requests per row sent, list pages and single reads alike, less one for each tier
re-send's create and ``RESERVE`` for each slot (the sweeps after the last send, when runs end
and none is sent, come out of it): with the creates, 1.28 a row in all. Sweeps grow dearer as
they spend ahead of it (up to four times) and cheaper behind it (down to half), evenly spaced
ones too, and, overdrawn by more than two, a sweep planned for predicted ends waits the floor's
interval instead. (1.3 a row is the most a batch should cost; each sweep more a run shortens the
wait for one, so the account spends nearly all of it.)

Once every row is sent, an end frees no slot for another run, and only the last one shortens the
batch: sweeps then go out once per ``DRAIN_FLOOR * D`` (they find failed runs to send again) and
once just after the last end that progress predicts.

Where runs report ``progress``, each run's end is read off the rate at which its progress rises
(timed halfway through the request that read it). The ends predicted over the next few intervals
are split into the groups that cost the least, a sweep costing ``PRICE`` gaps between ends of
waiting (with few runs out, what a base interval's sweep collects), and each group is swept just
as its last run ends: ends that bunch up share a sweep, and a lone end far from the next is seen
as it comes. "Just as" is a margin after the predicted end, a part of the run's predicted
length, learnt so that one such sweep in twenty (``MISSED``) finds its run still running:
predictions run late by the request's time and truncated progress, early where progress stalls
before the end (a part of each run: hence a part of its length). Runs whose progress says
nothing yet count as ending evenly at the mean rate, unless they were sent less than
``YOUNG * D`` ago (hardly any run ends that soon). A run seen running past its predicted end is
looked at again after as long again as it is late (each look twice as late: a last run that ends
a step of progress late is seen then, not a floor's interval later), and counts as ending at the
mean rate once late by ``LATE`` of its length. So do all runs while the recent predictions
miss by more than two base intervals (all but the worst ``MISSED`` either way, measured from the
runs' lengths on the server's clock): progress that rises unevenly enough says less than evenly
spaced sweeps. Runs older than the run list's first page are read when their predicted end has
come.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ..journal import InFlight
from ..models import Run

PER_END = 0.25
FLOOR = 0.2
DRAIN_FLOOR = 0.5  # once every row is sent, only the last end shortens the batch
POLITE = 0.06
SHARE = 0.28  # polling requests a run may cost on average, when many are out
RESERVE = 0.2  # requests per slot, kept back once for the sweeps after the last send
PRICE = 6.0  # gaps between ends of waiting that one sweep is worth
_HORIZON = 16  # predicted ends planned for at once
MISSED = 0.05  # how often a sweep due just after a predicted end should find it running still
_STEP = 0.004  # of a run's predicted length: how far one look moves the margin after its end
_ERRORS = 64  # recent runs whose prediction errors say how widely predictions miss
YOUNG = 0.4  # runs sent less than this part of a mean run ago hardly ever end yet
LATE = 0.25  # of a run's predicted length: this late, its prediction says nothing
_FIRST = 0.05  # before any run has ended: look soon (runs may be quick), then less often


@dataclass
class _Seen:
    first: tuple[float, float]  # (our time, progress) when progress was first above 0
    last: tuple[float, float]
    heard: float  # our time of the latest look at the run

    def end(self) -> float | None:
        """When the run should end, on our clock, if its progress rises steadily."""
        (t1, p1), (t2, p2) = self.first, self.last
        if p2 <= p1 or t2 <= t1 or p2 >= 100:
            return None
        rate = (p2 - p1) / (t2 - t1)
        return t2 + (100 - p2) / rate


class Pacer:
    def __init__(self, lo: float, hi: float) -> None:
        self.lo, self.hi = lo, hi
        self.duration: float | None = None  # mean run, learnt
        self._idle = 0
        self._seen: dict[str, _Seen] = {}
        self.draining = False  # every row is sent: the runs out are the batch's last
        self._known: set[str] = set()  # runs seen out (the last few thousand)
        self.credit = 0.0  # requests of polling the runs seen out have paid for
        self.peak = 0  # the most runs seen out at once
        self.spent = 0  # requests the sweeps made
        # Of a run's predicted length: how long after its predicted end a sweep goes out, and
        # how widely predictions miss (from the recent runs' errors).
        self.margin = 0.003
        self.spread = 0.0
        self._errors: deque[float] = deque(maxlen=_ERRORS)
        self._target: str | None = None  # the run the sweep about to go out is for

    def spend(self, requests: int) -> None:
        """A sweep made ``requests`` requests (list pages and single reads)."""
        self.spent += requests

    def observe(self, run: Run, sent_at: float | None = None) -> None:
        """A run ended: learn its duration and, if it completed (a failure may come early) after
        its progress had predicted when, how far off that was. ``sent_at``: when we sent it."""
        seen = self._seen.pop(run.run_id, None)
        if not (run.completed_at and run.created_at and run.completed_at >= run.created_at):
            return
        d = run.completed_at - run.created_at
        self.duration = d if self.duration is None else 0.9 * self.duration + 0.1 * d
        end = seen.end() if seen is not None else None
        # Lengths on the server's clock against ours: no offset between them is needed.
        if run.status == "completed" and end is not None and sent_at is not None and end > sent_at:
            self._errors.append(d / (end - sent_at) - 1)
            self._calibrate()

    def _calibrate(self) -> None:
        """How widely the recent predictions missed, all but the ``MISSED`` worst either way.
        (Lengths from the server's clock against ours: where they miss on average is learnt
        from the sweeps instead, as that would need the clocks' offset.)"""
        if len(self._errors) >= 16:
            cuts = statistics.quantiles(self._errors, n=round(1 / MISSED), method="inclusive")
            self.spread = cuts[-1] - cuts[0]

    def _end(self, seen: _Seen | None, sent_at: float | None) -> float | None:
        """When a sweep should find the run ended: its predicted end, plus the margin."""
        end = seen.end() if seen is not None else None
        if end is None:
            return None
        return end + self.margin * self._length(end, sent_at)

    def _length(self, end: float, sent_at: float | None) -> float:
        """A run's predicted length: from when we sent it to its predicted ``end``."""
        return end - sent_at if sent_at is not None and end > sent_at else self.duration or 0.0

    def progress(self, run: Run, now: float) -> None:
        """A sweep showed an unfinished run's progress at ``now`` (our clock)."""
        p = run.progress
        if run.finished or p is None or not 0 < p < 100:
            return
        seen = self._seen.get(run.run_id)
        if seen is None:
            self._seen[run.run_id] = _Seen((now, p), (now, p), now)
            return
        seen.heard = now
        if p > seen.last[1]:
            seen.last = (now, p)

    def worth_a_look(self, flight: InFlight, now: float) -> bool:
        """Whether a run the run list did not show is read on its own now: when its progress
        says it may have ended, or when nothing has been heard of it for a few intervals."""
        seen = self._seen.get(flight.run_id)
        if seen is None or self.duration is None:
            return True
        end = self._end(seen, flight.sent_at)
        if end is not None:  # progress says when: then, or if it has not been seen for long
            return end <= now or now - seen.heard >= 2 * self.duration
        return now - seen.heard >= 4 * self.base(1)

    def rate(self, in_flight: int, duration: float | None = None) -> float:
        """Sweeps a second, by the rules above."""
        d = duration or self.duration or 1.0
        floor = DRAIN_FLOOR if self.draining else FLOOR
        wanted = max(PER_END * in_flight / d, 1 / (floor * d))
        return min(1 / (POLITE * d), wanted, 1 / self.lo)

    def base(self, in_flight: int, duration: float | None = None) -> float:
        """The interval between sweeps when nothing tells when runs end."""
        return min(self.hi, 1 / self.rate(in_flight, duration))

    def next(self, found: bool, flights: Sequence[InFlight], now: float) -> float:
        """Seconds until the next sweep, just after one at ``now`` that saw ``flights`` still out
        (``found``: it saw some runs end)."""
        self._idle = 0 if found else self._idle + 1
        live = {f.run_id for f in flights}
        self._learn_margin(live)
        for run_id in [r for r in self._seen if r not in live]:
            del self._seen[run_id]  # settled elsewhere (recovery, a resend): no longer ours
        new = live - self._known
        for f in flights:
            if f.run_id in new:
                # A row's first run pays SHARE requests of polling; a re-send's create is one
                # request more for its row, taken from that polling.
                self.credit += SHARE if f.retries == 0 else -1.0
        if len(self._known) > 4096:
            self._known = live  # only the runs out can come again
        else:
            self._known |= new
        # Predictions whose misses spread over more than two base intervals tell less than
        # evenly spaced sweeps (progress that jumps): the runs count as ending at the mean rate.
        trusted = self.duration is None or self.spread * self.duration <= 2 * self.base(
            len(flights)
        )
        ends: list[tuple[float, str]] = []
        young, guesses, late = [], [], set()
        for f in flights:
            seen = self._seen.get(f.run_id)
            end = self._end(seen, f.sent_at) if trusted else None
            if end is not None and end <= now:
                # Running past its predicted end: looked at again after as long again as it is
                # late, until it is so late that the prediction is wrong and says nothing.
                behind = now - end
                end = None if behind > LATE * self._length(end, f.sent_at) else now + behind
                late.add(f.run_id)
            if end is None:
                young.append(f.sent_at)
                continue
            ends.append((end, f.run_id))
            if f.sent_at is not None:
                guesses.append(end - f.sent_at)
        d = self.duration
        if d is None and guesses:  # no run has ended yet: what their progress says of them
            d = statistics.median(guesses)
        if d is None or not flights:
            return min(self.hi, _FIRST * 1.5 ** min(self._idle, 12))
        # Runs progress says nothing of yet count as ending at the mean rate, but not those
        # sent so recently that hardly any run ends that soon.
        unknown = sum(1 for t in young if t is None or now - t >= YOUNG * d)
        base = self.base(len(flights), d)
        # With many runs out, sweeps keep to what the runs sent have paid for: overdrawn, they
        # wait longer than the base interval until later runs have. (With few out, as at C=8,
        # the floor's rate is what is spent.)
        grown = max(0, len(flights) - self.peak)
        self.peak += grown
        self.credit -= RESERVE * grown
        accounted = self.peak * FLOOR * SHARE >= 1
        owed = self.spent - self.credit
        over = accounted and owed > 2
        # Sweeps grow dearer as they spend ahead of the account, cheaper behind.
        steer = 2 ** min(2.0, max(-1.0, (owed + 1) / 2)) if accounted else 1.0
        if self.draining:
            # An end frees no slot now: only the last one shortens the batch. The floor's sweeps
            # find failed runs to send again, spaced by the account too (a long tail of runs
            # would otherwise outspend it); one more goes out just after the last end.
            wait = min(self.hi, DRAIN_FLOOR * d) * max(1.0, steer)
            if ends and not unknown:
                wait = min(wait, max(ends)[0] - now)
            return max(self.lo, wait)
        if not ends:  # evenly spaced sweeps collect ends in proportion to the interval
            return min(self.hi, base * math.sqrt(steer))
        # A sweep is worth PRICE gaps between ends of waiting: where ends come evenly, a sweep
        # collects about sqrt(2 * PRICE) of them (three or four); where they bunch up, fewer
        # sweeps collect them all. Each goes out just as a predicted end (with its margin)
        # comes. (With few runs out, a sweep is worth what the base interval's sweeps collect.)
        gap = d / len(flights)
        price = min(PRICE * gap, base * base / gap / 2) * steer
        at = _next_sweep(sorted(e for e, _ in ends), unknown / d, now, price, now + 4 * base)
        # A late run's look says nothing of the margin: it was due already.
        self._target = next((r for e, r in ends if e == at and r not in late), None)
        if over:
            at = max(at, now + max(base, FLOOR * d))
            self._target = None
        # Progress can mislead (it need not rise evenly): never more than a few intervals.
        return min(base * 4, max(self.lo, at - now))

    def _learn_margin(self, live: set[str]) -> None:
        """The last sweep was for the run ``_target`` (due to have just ended): if it found
        that run still out, the margin grows; if not, it shrinks a little, so that a sweep is
        too soon ``MISSED`` of the time. (Predictions run late by the time an answer takes and
        the truncation of progress, early where progress stalls before the end.)"""
        target, self._target = self._target, None
        if target is not None:
            self.margin += _STEP * (1 - MISSED) if target in live else -_STEP * MISSED
            self.margin = min(1.0, max(-0.5, self.margin))

    def backoff(self) -> float:
        self._idle += 3
        return min(self.hi, 1.0 * 1.5 ** min(self._idle, 12))


def _next_sweep(ends: list[float], rate: float, now: float, price: float, until: float) -> float:
    """When the next sweep goes out: runs end at ``ends`` (sorted, from ``now``) and, beyond
    those, at ``rate`` a second; a sweep costs ``price`` seconds of waiting. The ends up to
    ``until`` (the next ``_HORIZON`` of them) are split into the groups that cost the least in
    sweeps and waiting per end, each swept just as its last run ends; the first group's sweep
    is next."""
    if rate > 0:  # the runs progress says nothing of, spread evenly
        step = 1 / rate
        even = [now + (i + 0.5) * step for i in range(min(_HORIZON, int((until - now) / step)))]
        ends = sorted(ends + even)
    ends = [e for e in ends if e <= until][:_HORIZON]
    if not ends:
        return until
    # best[j]: the least cost of sweeping the first j ends; first[j]: where its first group ends.
    best, first = [0.0], [0]
    total = [0.0]
    for e in ends:
        total.append(total[-1] + e)
    for j in range(1, len(ends) + 1):
        at = ends[j - 1]
        cost, cut = min(
            (best[i] + price + (j - i) * at - (total[j] - total[i]), i) for i in range(j)
        )
        best.append(cost)
        first.append(j if cut == 0 else first[cut])
    # The plan that costs the least per end it covers: the ends beyond the horizon are not
    # forced into its last group.
    covered = min(range(1, len(ends) + 1), key=lambda j: best[j] / j)
    return ends[first[covered] - 1]
