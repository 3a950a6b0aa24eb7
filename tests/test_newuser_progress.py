"""Progress that adds up (issue 13, item 10): done is completed + failed, in flight is sent
minus done, and a 72-column terminal keeps the counts. Rendered at fixed widths, no terminal."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from batchrun.cli.progress import BarProgress, LogProgress, Tally
from batchrun.engine.context import Event
from batchrun.engine.lock import BatchLock, holder

EVENTS = [
    Event("loaded", {"rows": 12, "counts": {"pending": 7, "sending": 1, "submitted": 2,
                                            "completed": 2}}),
    *(Event("sent", {"row_id": f"r{i}", "run_id": f"run{i}"}) for i in range(5)),
    Event("finished", {"row_id": "old1", "status": "completed", "cost": 0.04}),  # sent before
    Event("finished", {"row_id": "r0", "status": "completed", "cost": 0.04}),
    Event("finished", {"row_id": "r9", "status": "failed", "cost": None}),  # refused, no run
    Event("finished", {"row_id": "r1", "status": "failed", "cost": None}),
    Event("retrying", {"row_id": "r1", "code": "SERVER_ERROR", "seconds": 1.0}),
    Event("sent", {"row_id": "r1", "run_id": "run1b"}),  # its second run
    Event("finished", {"row_id": "r1", "status": "completed", "cost": 0.04}),
    Event("cost", {"row_id": "r0", "cost": 0.01}),
    Event("finished", {"row_id": "old2", "status": "completed", "cost": 0.04}),  # sent before
]  # fmt: skip


def test_the_counts_add_up_at_every_event() -> None:
    tally = Tally()
    for event in EVENTS:
        tally.feed(event)
        f = tally.fields()
        assert f["done"] == f["completed"] + f["failed"]
        assert f["in_flight"] == tally.sent - f["done"] >= 0
        assert tally.sent <= f["todo"]
    assert tally.todo == 10 and tally.sent == 2 + 5 + 1  # running before, sent now, refused
    assert tally.fields()["completed"] == 4 and tally.fields()["failed"] == 1
    assert tally.in_flight == 3  # r2, r3, r4


def drawn(width: int) -> tuple[BarProgress, str]:
    out = io.StringIO()
    bars = BarProgress("b", stream=out, ncols=width)
    for event in EVENTS:
        bars(event)
    return bars, out.getvalue()


@pytest.mark.parametrize("width", [120, 80, 72, 60, 40])
def test_the_bars_fit_the_width_and_keep_the_counts(width: int) -> None:
    bars, _ = drawn(width)
    sent, done = str(bars.sent), str(bars.done)
    assert len(sent) <= width and len(done) <= width
    assert sent.startswith("sent 8/10")
    assert done.startswith("done 5/10")
    assert "ok 4, failed 1, in flight 3" in done
    if width >= 72:
        assert "|" in done and "$0.17" in done  # a bar and the cost still fit at 72
    bars.close()


def test_what_is_drawn_never_shows_one_done_too_many() -> None:
    bars, _ = drawn(100)
    bars.close()
    text = bars.stream.getvalue()  # type: ignore[attr-defined]
    frames = re.findall(r"done (\d+)/\d+.*?ok (\d+), failed (\d+)", text)
    assert frames
    for done, ok, failed in frames:
        assert int(done) == int(ok) + int(failed)


def test_log_lines_count_the_same_way() -> None:
    out = io.StringIO()
    log = LogProgress("b", "json", every=1e9, stream=out)
    for event in EVENTS:
        log(event)
    log.progress()
    last = out.getvalue().strip().splitlines()[-1]
    assert '"done": 5' in last and '"in_flight": 3' in last and '"completed": 4' in last


def test_looking_at_the_lock_tells_a_live_holder_and_takes_nothing(tmp_path: Path) -> None:
    assert holder(tmp_path, "b") is None  # never run
    with BatchLock(tmp_path, "b"):
        who = holder(tmp_path, "b")
        assert who is not None and who["pid"] > 0
    assert holder(tmp_path, "b") is None  # the lock file is left; nobody holds it
    with BatchLock(tmp_path, "b"):  # and looking left it free to take
        pass
