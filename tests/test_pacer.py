"""Sweep pacing: when the poller looks at the run list again."""

from batchrun.engine.poller import Pacer
from batchrun.journal import InFlight
from batchrun.models import Run


def flight(row: str, sent_at: float, created_at: float | None) -> InFlight:
    return InFlight(row, f"run-{row}", "tech", created_at, "pending", sent_at)


def learnt(offsets: list[float]) -> Pacer:
    pacer = Pacer(0.015, 5.0, offsets)
    pacer.observe(Run("r0", "completed", created_at=100.0, completed_at=100.3))
    return pacer


def test_a_run_is_due_when_the_server_says_it_started_plus_its_duration() -> None:
    # The server's clock runs 50 s ahead of ours; the quickest create was stamped 1 ms after
    # its send. This run was stamped 12 ms after its send: it left late in its wave.
    pacer = learnt([50.001, 50.004, 50.002, 50.009, 50.006])
    wait = pacer.next(False, [flight("a", 10.0, 60.013)], now=10.0)
    assert abs(wait - (0.3 + 0.012)) < 1e-6


def test_server_times_are_not_trusted_when_they_are_coarse() -> None:
    # Whole-second timestamps scatter the offsets: pace by our send times instead.
    pacer = learnt([49.2, 50.1, 49.7, 49.9, 50.0])
    assert abs(pacer.next(False, [flight("a", 10.0, 60.0)], now=10.0) - 0.3) < 1e-6
    # Nor without enough creates to know the clocks' difference.
    pacer = learnt([50.0])
    assert abs(pacer.next(False, [flight("a", 10.0, 60.3)], now=10.0) - 0.3) < 1e-6


def test_a_due_never_moves_much_past_what_the_send_time_says() -> None:
    pacer = learnt([50.001] * 5)
    wait = pacer.next(False, [flight("a", 10.0, 62.0)], now=10.0)  # stamped 2 s after the send?
    assert abs(wait - (0.3 + 0.03)) < 1e-6


def test_overdue_runs_are_looked_at_every_step_and_none_wait_for_the_next_due() -> None:
    pacer = learnt([])
    assert pacer.next(True, [flight("a", 9.0, None)], now=10.0) == 0.015
    assert abs(pacer.next(True, [flight("b", 9.9, None)], now=10.0) - 0.2) < 1e-6
