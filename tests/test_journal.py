import sqlite3
import stat
import threading
from pathlib import Path

from batchrun.journal import Journal
from batchrun.journal.schema import MIGRATIONS
from batchrun.models import Input, Job, Output, RowProblem, Run, State


def job(i: int, value: str | None = None, row_id: str | None = None) -> Job:
    return Job(
        index=i,
        line=i + 2,
        row_id=row_id or f"r{i}",
        technique_id="tech",
        inputs=(Input("prompt", "text", value or f"prompt {i}"),),
        columns=(row_id or f"r{i}", value or f"prompt {i}"),
    )


def load(j: Journal, items: list[Job | RowProblem], accept: bool = False) -> tuple:
    return j.sync_manifest("b", "m.csv", ["id", "prompt"], items, accept_problems=accept)


def test_blank_database_migrates_and_records_versions(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "state") as j:
        assert j.schema_versions() == [v for v, _, _ in MIGRATIONS]
    # Opening again applies nothing twice.
    with Journal.open(tmp_path / "state") as j:
        assert j.schema_versions() == [v for v, _, _ in MIGRATIONS]
    db = sqlite3.connect(tmp_path / "state" / "journal.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _open_after(state: Path, start: threading.Barrier, errors: list[Exception]) -> None:
    start.wait()
    try:
        Journal.open(state).close()
    except Exception as exc:
        errors.append(exc)


def test_connections_migrating_a_new_journal_at_once_leave_it_correct(tmp_path: Path) -> None:
    # `batchrun status` opening a journal that `batchrun run` is creating: each migration is
    # applied once, whoever reads the versions first.
    for attempt in range(5):
        state, start, errors = tmp_path / f"state-{attempt}", threading.Barrier(6), []
        threads = [
            threading.Thread(target=_open_after, args=(state, start, errors)) for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        with Journal.open(state) as j:
            assert j.schema_versions() == [v for v, _, _ in MIGRATIONS]


def test_state_is_private_to_its_owner(tmp_path: Path) -> None:
    Journal.open(tmp_path / "state").close()
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / "journal.sqlite").stat().st_mode) == 0o600


def test_load_is_idempotent_and_keeps_states(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        stats, ok = load(j, [job(0), job(1), job(2)])
        assert ok and stats.new == 3
        j.mark_sending("b", [("r0", "k0", b"{}")])
        j.record_runs("b", [("r0", Run("run_0", "completed", charged_cost=0.5))])
        stats, ok = load(j, [job(0), job(1), job(2)])
        assert ok and stats.new == 0 and stats.unchanged == 3
        assert j.counts("b") == {"completed": 1, "pending": 2}
        assert j.cost("b") == 0.5


def test_answers_ride_on_the_next_write_ahead_commit(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        load(j, [job(0), job(1)])
        j.mark_sending("b", [("r0", "k0", b"{}")])
        revision = j.revision()
        j.mark_sending("b", [("r1", "k1", b"{}")], [("r0", Run("run_0", "queued"))])
        assert j.revision() == revision + 1  # one commit for both
        assert j.counts("b") == {"submitted": 1, "sending": 1}
        (flight,) = j.in_flight("b")
        assert (flight.row_id, flight.run_id) == ("r0", "run_0")


def test_edited_row_runs_again_and_history_keeps_the_old_result(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        load(j, [job(0)])
        j.mark_sending("b", [("r0", "k0", b"{}")])
        j.record_runs("b", [("r0", Run("run_0", "completed", charged_cost=0.5))])
        stats, _ = load(j, [job(0, value="a new prompt")])
        assert stats.edited == 1
        (row,) = j.report_rows("b")
        assert row.state == State.PENDING and row.attempt == 2 and row.run_id is None
        assert "run_0" in j.known_run_ids()  # kept in history


def test_problems_roll_back_unless_accepted(tmp_path: Path) -> None:
    bad = RowProblem(index=1, line=3, row_id="r1", reason="row has no input values")
    with Journal.open(tmp_path) as j:
        stats, ok = load(j, [job(0), bad])
        assert not ok and stats.problem_count == 1
        assert j.counts("b") == {}
        stats, ok = load(j, [job(0), bad], accept=True)
        assert ok and j.counts("b") == {"pending": 1, "rejected": 1}
        dup = RowProblem(index=2, line=4, row_id="r0", reason="duplicate id", fatal=True)
        _, ok = load(j, [job(0), dup], accept=True)
        assert not ok


def test_rows_that_left_the_manifest_leave_the_report(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        load(j, [job(0), job(1)])
        stats, _ = load(j, [job(1)])
        assert stats.removed == 1
        assert [r.row_id for r in j.report_rows("b")] == ["r1"]


def test_transitions_and_queries(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        load(j, [job(i) for i in range(5)])
        assert [t.row_id for t in j.pending("b", -1, 2)] == ["r0", "r1"]
        j.mark_sending("b", [("r0", "k0", b"body0"), ("r1", "k1", b"body1")])
        (t,) = [t for t in j.sending("b") if t.row_id == "r0"]
        assert t.idem_key == "k0" and t.body == b"body0" and t.first_sent_at
        j.record_runs("b", [("r0", Run("run_0", "running", created_at=10.0))])
        assert [f.run_id for f in j.in_flight("b")] == ["run_0"]
        j.record_runs(
            "b", [("r0", Run("run_0", "completed", outputs=(Output("o", "text", "hi"),)))]
        )
        assert [f.run_id for f in j.cost_unsettled("b")] == ["run_0"]
        j.record_runs("b", [("r0", Run("run_0", "completed", charged_cost=0.25))])
        assert j.cost_unsettled("b") == []
        j.unsend("b", ["r1"])
        assert j.counts("b") == {"completed": 1, "pending": 4}
        rows = list(j.report_rows("b"))
        assert rows[0].outputs == [Output("o", "text", "hi")] and rows[0].created_at == 10.0


def test_retry_failed_bumps_the_attempt(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as j:
        load(j, [job(0), job(1)])
        j.mark_sending("b", [("r0", "k0", b"{}"), ("r1", "k1", b"{}")])
        j.record_runs("b", [("r0", Run("run_0", "failed")), ("r1", Run("run_1", "completed"))])
        assert j.retry_failed("b") == 1
        rows = {r.row_id: r for r in j.report_rows("b")}
        assert rows["r0"].state == State.PENDING and rows["r0"].attempt == 2
        assert rows["r1"].state == State.COMPLETED and rows["r1"].attempt == 1


def test_large_load_is_fast_enough_to_batch(tmp_path: Path) -> None:
    # Not a timing assertion: a smoke test that a big load works in one transaction.
    with Journal.open(tmp_path) as j:
        stats, ok = load(j, [job(i) for i in range(20_000)])
        assert ok and stats.new == 20_000
        assert sum(1 for _ in j.report_rows("b")) == 20_000


def test_a_report_is_current_only_for_the_same_revision_tag_and_file(tmp_path: Path) -> None:
    from collections import Counter

    report = tmp_path / "out.csv"
    with Journal.open(tmp_path / "state") as j:
        load(j, [job(0), job(1)])
        report.write_text("first\n")
        counts = Counter({"unsubmitted": 2})
        assert j.current_reports("b", [report], "t1") is None  # never recorded
        j.record_reports("b", [report], "t1", counts)
        assert j.current_reports("b", [report], "t1") == counts
        assert j.current_reports("b", [report], "t2") is None  # another batchrun or format
        assert j.current_reports("b", [report, tmp_path / "other.csv"], "t1") is None
        assert j.current_reports("other-batch", [report], "t1") is None

        j.set_state("b", ["r0"], State.FAILED, "boom", "no")  # any change to the journal
        assert j.current_reports("b", [report], "t1") is None
        j.record_reports("b", [report], "t1", counts)
        report.write_text("edited by hand\n")  # the file is not as it was left
        assert j.current_reports("b", [report], "t1") is None
        j.record_reports("b", [report], "t1", counts)
        report.unlink()
        assert j.current_reports("b", [report], "t1") is None
