"""Sweep pacing: when the poller looks at the run list again."""

import itertools

import pytest

from batchrun.engine.pacing import (
    DRAIN_FLOOR,
    FLOOR,
    LATE,
    PER_END,
    POLITE,
    RESERVE,
    SHARE,
    Pacer,
)
from batchrun.journal import InFlight
from batchrun.models import Run


def flight(row: str) -> InFlight:
    return InFlight(row, f"run-{row}", "tech", None, "running", 0.0)


def learnt(duration: float) -> Pacer:
    pacer = Pacer(0.005, 5.0)
    pacer.observe(Run("r0", "completed", created_at=100.0, completed_at=100.0 + duration))
    return pacer


def even_with_the_account(pacer: Pacer, flights: list[InFlight]) -> None:
    """The runs out have paid (SHARE each) for what the sweeps spent, less the one request the
    account runs ahead by on average: sweeps are neither dearer nor cheaper."""
    pacer.next(True, flights, now=0.0)
    pacer.spent = pacer.credit - 1


def test_before_any_run_ends_sweeps_start_soon_and_slow_down() -> None:
    pacer = Pacer(0.005, 5.0)
    waits = [pacer.next(False, [flight("a")], now=float(i)) for i in range(6)]
    assert waits[0] <= 0.1 and waits == sorted(waits) and waits[-1] > waits[0]


def test_many_short_runs_share_a_sweep_between_several_ends() -> None:
    pacer = learnt(0.35)
    flights = [flight(str(i)) for i in range(50)]
    even_with_the_account(pacer, flights)
    # 50 runs of 0.35 s end at ~143 a second: a sweep every 1 / PER_END ends, no closer than
    # the polite bound.
    assert abs(pacer.next(True, flights, 0) - max(POLITE * 0.35, 0.35 / 50 / PER_END)) < 1e-6
    # 30 runs of 2 s: a sweep every 1 / PER_END ends.
    pacer = learnt(2.0)
    flights = [flight(str(i)) for i in range(30)]
    even_with_the_account(pacer, flights)
    assert abs(pacer.next(True, flights, 0) - 2 / 30 / PER_END) < 1e-6


def test_without_progress_sweeps_keep_to_the_account_too() -> None:
    def wait(owed: float) -> float:
        pacer = learnt(2.0)
        flights = [flight(str(i)) for i in range(30)]  # no progress: the base interval
        even_with_the_account(pacer, flights)
        pacer.spend(int(owed) + 1)
        return pacer.next(True, flights, now=0.0)

    even = 2 / 30 / PER_END
    assert wait(-2) < even < wait(1) < wait(4)


def test_few_long_runs_are_looked_at_every_few_seconds_not_more() -> None:
    pacer = learnt(25.0)
    wait = pacer.next(True, [flight(str(i)) for i in range(8)], now=0.0)
    assert abs(wait - FLOOR * 25) < 1e-6  # FLORA asks clients to poll every 2-5 s


def test_a_run_whose_progress_says_it_ends_soon_is_looked_at_just_after() -> None:
    pacer = learnt(20.0)
    flights = [flight(str(i)) for i in range(8)]
    for i in range(1, 8):  # the others end much later
        pacer.progress(Run(f"run-{i}", "running", progress=5), 0.0)
        pacer.progress(Run(f"run-{i}", "running", progress=6), 3.0)
    pacer.progress(Run("run-0", "running", progress=50), 0.0)
    pacer.progress(Run("run-0", "running", progress=80), 3.0)  # 10 % a second: ends at t = 5
    wait = pacer.next(False, flights, now=3.0)
    base = pacer.base(8)
    assert 5.0 - 3.0 < wait < 5.0 - 3.0 + base / 2  # soon after its end, before a base interval
    # With no progress at all, the base interval.
    assert learnt(20.0).next(False, flights, now=3.0) == base


def test_runs_ending_together_are_collected_by_one_sweep() -> None:
    pacer = learnt(2.0)
    flights = [flight(str(i)) for i in range(30)]
    for i in range(30):
        # they end between t = 1.06 and t = 1.125
        pacer.progress(Run(f"run-{i}", "running", progress=10), 0.0)
        pacer.progress(Run(f"run-{i}", "running", progress=50), 0.5 - i * 0.001)
    wait = pacer.next(False, flights, now=0.5)
    assert 0.56 <= wait <= 0.7  # one sweep once they have ended (1.06-1.125), none before


def test_progress_that_does_not_rise_predicts_nothing() -> None:
    pacer = learnt(2.0)
    pacer.progress(Run("run-a", "running", progress=40), 0.0)
    pacer.progress(Run("run-a", "running", progress=40), 0.5)
    assert pacer.next(False, [flight("a")], now=0.5) == pacer.base(1)


def test_once_every_row_is_sent_one_sweep_goes_out_just_after_the_last_end() -> None:
    pacer = learnt(2.0)
    pacer.draining = True
    flights = [flight(str(i)) for i in range(5)]
    for i in range(5):  # 10 % a second from 40 %: each ends 6 s after t = 0, minus i * 0.1 s
        pacer.progress(Run(f"run-{i}", "running", progress=40 + i), 0.0)
        pacer.progress(Run(f"run-{i}", "running", progress=50 + i), 1.0)
    # The last ends at t = 6.0: the floor's sweep comes first (earlier ends free no slot, only
    # runs that fail matter now); a sweep due after the last end waits no longer than it.
    assert pacer.next(False, flights, now=1.0) == DRAIN_FLOOR * 2.0
    wait = pacer.next(False, flights, now=5.5)
    assert 0.5 < wait <= 0.5 + 0.05


def test_once_every_row_is_sent_sweeps_still_keep_to_the_account() -> None:
    def wait(owed: int) -> float:
        pacer = learnt(2.0)
        flights = [flight(str(i)) for i in range(30)]  # no progress: the drain's floor
        even_with_the_account(pacer, flights)
        pacer.spend(owed + 1)  # ahead of the account by ``owed``
        pacer.draining = True
        return pacer.next(False, flights, now=1.0)

    assert wait(-3) == wait(-1) == DRAIN_FLOOR * 2.0  # within the account: the floor's interval
    assert DRAIN_FLOOR * 2.0 < wait(1) < wait(3) == 4 * DRAIN_FLOOR * 2.0  # a long tail's drain


def test_a_late_run_is_looked_at_again_as_late_again_until_its_prediction_says_nothing() -> None:
    pacer = learnt(2.0)
    pacer.margin = 0.0
    pacer.progress(Run("run-a", "running", progress=10), 0.0)
    pacer.progress(Run("run-a", "running", progress=50), 0.4)  # ends at t = 0.9, it says
    now, waits = 0.9, []
    while now < 2.0:
        pacer.progress(Run("run-a", "running", progress=50), now)  # still running, no news
        waits.append(pacer.next(False, [flight("a")], now=now))
        now += waits[-1]
    # From its end on, each look as late again as the last (from 0.005 s: the least interval),
    # until it is late by LATE of its length (0.9 s, as it was sent at t = 0): then the
    # prediction says nothing, and it counts as ending at the mean rate.
    late = waits[: waits.index(pacer.base(1))]
    assert late[:2] == pytest.approx([0.005, 0.005]) and len(late) >= 5
    assert all(abs(b - 2 * a) < 1e-9 for a, b in itertools.pairwise(late[1:]))
    assert sum(late[:-1]) <= LATE * 0.9 < sum(late)
    assert all(w == pacer.base(1) for w in waits[len(late) :])
    assert pacer.margin == 0.0  # looks at a run already late teach nothing of the margin


def test_a_run_beyond_the_list_is_read_when_its_progress_says_it_has_ended() -> None:
    pacer = learnt(2.0)
    pacer.progress(Run("run-a", "running", progress=10), 0.0)
    pacer.progress(Run("run-a", "running", progress=80), 7.0)  # 10 % a second: ends at t = 9
    assert not pacer.worth_a_look(flight("a"), now=8.5)
    assert pacer.worth_a_look(flight("a"), now=9.1)
    assert pacer.worth_a_look(flight("b"), now=3.0)  # nothing known of it: looked at


def test_runs_just_sent_are_not_expected_to_end_before_the_next_sweep() -> None:
    def wait(sent_at: float) -> float:
        pacer = learnt(2.0)
        pacer.progress(Run("run-a", "running", progress=10), 0.0)
        pacer.progress(Run("run-a", "running", progress=40), 0.3)  # ends at t = 0.9
        others = [InFlight(str(i), f"run-{i}", "tech", None, "running", sent_at) for i in range(29)]
        return pacer.next(False, [flight("a"), *others], now=0.3)

    # Runs out for a while may end any moment and bring the sweep forward; runs sent just now
    # hardly ever end within a fifth of a run, so they do not.
    assert wait(sent_at=-5.0) < wait(sent_at=0.29)


def test_with_many_runs_out_sweeps_keep_to_their_share_of_requests() -> None:
    def wait(spent: int) -> float:
        pacer = learnt(2.0)
        flights = [flight(str(i)) for i in range(30)]
        # 30 runs out: they pay for SHARE requests each, less what their 30 slots keep back for
        # the sweeps after the last send.
        pacer.next(False, flights, now=0.0)
        pacer.spend(spent)
        for i in range(30):  # ends bunch up soon: worth an early sweep
            pacer.progress(Run(f"run-{i}", "running", progress=10), 0.0)
            pacer.progress(Run(f"run-{i}", "running", progress=80), 0.7)
        return pacer.next(False, flights, now=0.7)

    paid = int((SHARE - RESERVE) * 30)
    assert wait(spent=paid) < 0.4  # within its share: the bunch is collected
    assert wait(spent=paid + 5) >= FLOOR * 2.0  # overdrawn: the floor's interval


def test_each_slot_keeps_part_of_the_share_back_for_the_sweeps_after_the_last_send() -> None:
    pacer = learnt(2.0)
    first = [flight(str(i)) for i in range(50)]
    pacer.next(False, first, now=0.0)
    assert pacer.credit == pytest.approx(50 * (SHARE - RESERVE))
    # Later runs in the same 50 slots pay their whole share: the slots kept theirs back once.
    pacer.next(True, [flight(str(i)) for i in range(50, 100)], now=1.0)
    assert pacer.credit == pytest.approx(100 * SHARE - 50 * RESERVE)


def test_a_re_sends_create_is_paid_from_the_polling_account() -> None:
    def wait(retries: int) -> float:
        pacer = learnt(2.0)
        flights = [InFlight(str(i), f"run-{i}", "tech", None, "running", 0.0, retries)
                   for i in range(30)]  # fmt: skip
        pacer.next(False, flights, now=0.0)
        pacer.spend(int((SHARE - RESERVE) * 30))  # as much as 30 first runs pay for
        for i in range(30):
            pacer.progress(Run(f"run-{i}", "running", progress=10), 0.0)
            pacer.progress(Run(f"run-{i}", "running", progress=80), 0.7)
        return pacer.next(False, flights, now=0.7)

    assert wait(retries=0) < 0.4
    # Re-sends pay for nothing and cost their rows a create each: no early sweep.
    assert wait(retries=1) >= FLOOR * 2.0


def ending_at(pacer: Pacer, ends: dict[str, float], now: float) -> list[InFlight]:
    """Runs whose progress (10 % a second, seen at ``now`` - 1 and ``now``) says they end at
    ``ends``."""
    for run_id, end in ends.items():
        pacer.progress(Run(f"run-{run_id}", "running", progress=90 - 10 * (end - now)), now - 1)
        pacer.progress(Run(f"run-{run_id}", "running", progress=100 - 10 * (end - now)), now)
    return [flight(run_id) for run_id in ends]


def test_a_sweep_goes_out_as_a_bunch_of_ends_is_complete_not_between_ends() -> None:
    pacer = learnt(2.0)
    pacer.margin = 0.0
    # 30 runs out: one ends every 67 ms on average. Four end close together, then none for a
    # while: one sweep just after the fourth, not one halfway through the quiet spell.
    ends = {"a": 0.50, "b": 0.51, "c": 0.52, "d": 0.53}
    ends.update({str(i): 1.5 + 0.05 * i for i in range(26)})
    wait = pacer.next(False, ending_at(pacer, ends, now=0.0), now=0.0)
    assert abs(wait - 0.53) < 1e-9
    # A lone end with the next far off is seen as it comes.
    pacer = learnt(2.0)
    pacer.margin = 0.0
    ends = {"a": 0.30, **{str(i): 1.5 + 0.05 * i for i in range(29)}}
    assert abs(pacer.next(False, ending_at(pacer, ends, now=0.0), now=0.0) - 0.30) < 1e-9


def test_the_margin_after_a_predicted_end_follows_how_often_sweeps_come_too_soon() -> None:
    def margin_after(missed: bool, looks: int) -> float:
        pacer = learnt(2.0)
        start = pacer.margin
        now = 0.0
        for n in range(looks):
            ends = {f"{n}-{i}": now + 0.3 + 0.001 * i for i in range(30)}
            flights = ending_at(pacer, ends, now)
            wait = pacer.next(False, flights, now)
            now += wait
            # The next sweep finds the runs it was for still running, or ended.
            pacer.next(False, flights if missed else [], now)
            pacer._seen.clear()
        return pacer.margin - start

    assert margin_after(missed=True, looks=3) > 0  # too soon: later
    assert margin_after(missed=False, looks=3) < 0  # never too soon: sooner
    # A miss moves it back as far as 19 looks on time move it forward: 1 in 20 too soon.
    assert abs(margin_after(True, 1) + 19 * margin_after(False, 1)) < 1e-9


def test_the_margin_is_a_part_of_each_run_s_predicted_length() -> None:
    pacer = learnt(2.0)
    pacer.margin = 0.1
    # Sent at t = 0, ends at t = 1.5 (10 % a second), a length of 1.5 s: the sweep for it goes
    # out 0.15 s after, not 0.1 of the mean run (0.2 s).
    flights = ending_at(pacer, {"a": 1.5}, now=1.0)
    assert abs(pacer.next(False, flights, now=1.0) - 0.65) < 1e-9
    assert not pacer.worth_a_look(flights[0], now=1.6)
    assert pacer.worth_a_look(flights[0], now=1.66)


def ended_as_predicted(pacer: Pacer, errors: list[float]) -> None:
    """Runs of 2 s, each completed ``error`` (of its predicted length) after its progress
    said: progress at t = 0 and 1 s after it was sent, 10 % a second (ends at 2 s, it says)."""
    for i, error in enumerate(errors):
        run_id = f"done-{i}"
        pacer.progress(Run(run_id, "running", progress=80), 0.0)
        pacer.progress(Run(run_id, "running", progress=90), 1.0)
        done = Run(run_id, "completed", created_at=100.0, completed_at=102.0 + 2.0 * error)
        pacer.observe(done, sent_at=0.0)


def test_progress_whose_predictions_miss_widely_is_not_trusted() -> None:
    def wait(errors: list[float]) -> tuple[float, float]:
        """The next sweep's wait, and the base interval."""
        pacer = learnt(2.0)
        pacer.margin = 0.0
        ended_as_predicted(pacer, errors)
        ends = {str(i): 0.3 + 0.05 * i for i in range(30)}  # one end every 50 ms, it says
        flights = ending_at(pacer, ends, now=0.0)
        even_with_the_account(pacer, flights)
        return pacer.next(False, flights, now=0.0), pacer.base(len(flights))

    steady, base = wait([0.01 * (-1) ** i for i in range(40)])
    assert abs(steady - 0.45) < 0.01 and base < 0.3  # swept as the first bunch of ends is in
    # Misses as wide as several base intervals: the runs count as ending at the mean rate.
    wild, base = wait([0.4 * (-1) ** i for i in range(40)])
    assert abs(wild - base) < 1e-9


def test_only_completed_runs_with_a_prediction_say_how_predictions_miss() -> None:
    pacer = learnt(2.0)
    pacer.observe(Run("x", "completed", created_at=0.0, completed_at=9.0), sent_at=0.0)
    pacer.progress(Run("y", "running", progress=10), 0.0)
    pacer.progress(Run("y", "running", progress=20), 1.0)
    pacer.observe(Run("y", "failed", created_at=0.0, completed_at=1.5), sent_at=0.0)
    assert not pacer._errors  # no prediction; a failure that came early
    pacer.progress(Run("z", "running", progress=10), 0.0)
    pacer.progress(Run("z", "running", progress=20), 1.0)  # ends at t = 9, it says
    pacer.observe(Run("z", "completed", created_at=5.0, completed_at=15.0), sent_at=0.0)
    assert list(pacer._errors) == [10 / 9 - 1]


def test_sweeps_grow_dearer_as_they_spend_ahead_of_the_account() -> None:
    def wait(owed: float) -> float:
        pacer = learnt(2.0)
        pacer.margin = 0.0
        ends = {str(i): 0.3 + 0.05 * i for i in range(30)}  # one end every 50 ms
        flights = ending_at(pacer, ends, now=0.0)
        pacer.next(False, flights, now=0.0)  # 30 runs out: they pay for SHARE requests each
        pacer.spend(int(pacer.credit + owed))
        return pacer.next(False, flights, now=0.0)

    # Bigger bunches, fewer sweeps, as the account runs short.
    assert wait(-3) < wait(0) < wait(2)
