"""The PostgreSQL journal: its migrations, the same results as the SQLite journal for the same
transitions (a contract test over both), loading, and the claims, leases and send slots that
let several workers share one batch. Runs against a real server (tests/support/postgres.py)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from batchrun.errors import ConfigError
from batchrun.journal import (
    Download,
    Journal,
    JournalStore,
    Leasing,
    Resends,
    SyncStats,
    open_existing_journal,
    open_journal,
)
from batchrun.journal.postgres import PgJournal
from batchrun.journal.postgres.schema import MIGRATIONS
from batchrun.models import Input, Job, Output, RowProblem, Run, State
from tests.support import postgres as support

B = "b"


def job(i: int, value: str | None = None, row_id: str | None = None, tech: str = "tech") -> Job:
    return Job(
        index=i,
        line=i + 2,
        row_id=row_id or f"r{i}",
        technique_id=tech,
        inputs=(Input("prompt", "text", value or f"prompt {i}"),),
        columns=(row_id or f"r{i}", value or f"prompt {i}"),
    )


def load(
    j: JournalStore, items: list[Job | RowProblem], accept: bool = False, batch: str = B
) -> tuple[SyncStats, bool]:
    return j.sync_manifest(batch, "m.csv", ["id", "prompt"], items, accept_problems=accept)


class Clock:
    """The same instants for both journals, moved by the scenario."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pgj(pg_url: str) -> Iterator[PgJournal]:
    with PgJournal.open(pg_url) as j:
        yield j


# -- migrations --------------------------------------------------------------------------------


def test_blank_database_migrates_and_records_versions(pg_url: str) -> None:
    assert open_existing_journal(pg_url, Path("/nonexistent")) is None  # nothing created
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('schema_migrations')").fetchone() == (None,)
    with PgJournal.open(pg_url) as j:
        assert j.schema_versions() == [v for v, _, _ in MIGRATIONS]
    with PgJournal.open(pg_url) as j:  # opening again applies nothing twice
        assert j.schema_versions() == [v for v, _, _ in MIGRATIONS]
    with psycopg.connect(pg_url) as conn:
        recorded = conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall()
        assert recorded == [(v, name) for v, name, _ in MIGRATIONS]
        tables = {
            t
            for (t,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
    assert tables >= {"batches", "rows", "history", "downloads", "reports", "schema_migrations"}
    assert tables >= {"batch_limits", "send_slots", "workers"}  # for several workers
    existing = open_existing_journal(pg_url, Path("/nonexistent"))
    assert isinstance(existing, PgJournal)
    existing.close()


def _open_at(url: str, start: Any, out: Any) -> None:
    start.wait()
    with PgJournal.open(url) as j:
        out.put(j.schema_versions())


def test_processes_migrating_an_empty_database_at_once_leave_it_correct(pg_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open_at, args=(pg_url, start, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    want = [v for v, _, _ in MIGRATIONS]
    assert [out.get(timeout=5) for _ in procs] == [want] * 4
    with psycopg.connect(pg_url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    assert sorted(versions) == want  # each applied once


def test_open_journal_picks_the_back_end(tmp_path: Path, pg_url: str) -> None:
    for target in (None, tmp_path / "elsewhere"):
        with open_journal(target, tmp_path / "state") as j:
            assert isinstance(j, Journal)
        assert (tmp_path / "state" / "journal.sqlite").exists()
    with open_journal(pg_url, tmp_path / "unused") as j:
        assert isinstance(j, PgJournal) and isinstance(j, Leasing)
    short = pg_url.replace("postgresql://", "postgres://", 1)
    with open_journal(short, tmp_path / "unused") as j:
        assert isinstance(j, PgJournal)
    assert not (tmp_path / "unused").exists()


def test_a_journal_url_that_cannot_be_used_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not supported"):
        open_journal("mysql://u:pw@host/db", tmp_path)
    # Port 1 on loopback: nothing listens there.
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/db?connect_timeout=3"
    with pytest.raises(ConfigError) as err:
        open_journal(url, tmp_path)
    assert "s3cret-pw" not in str(err.value) and "\n" not in str(err.value)


def test_without_a_server_ci_fails_and_elsewhere_the_tests_skip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(support, "server_bin", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI"):
        next(support.cluster_fixture())
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="make install"):
        next(support.cluster_fixture())


# -- the same results from both back ends ------------------------------------------------------


def snapshot(j: JournalStore, batch: str = B) -> dict[str, Any]:
    """Everything the engine, status and reports can read about a batch."""
    return {
        "revision": j.revision(),
        "counts": j.counts(batch),
        "cost": j.cost(batch),
        "stats": j.stats(batch),
        "report": list(j.report_rows(batch, chunk=3)),  # pages of 3: keyset paging too
        "pending": j.pending(batch, -1, 100),
        "pending_after_2": j.pending(batch, 2, 2),
        "sending": j.sending(batch),
        "in_flight": j.in_flight(batch),
        "cost_unsettled": j.cost_unsettled(batch),
        "doubtful": j.doubtful(batch, "key_expired"),
        "known_run_ids": j.known_run_ids(),
        "techniques": sorted(j.techniques(batch, State.PENDING)),
        "max_cost": j.max_cost(batch),
        "open_costs": j.open_costs(batch),
        "downloads": j.downloads(batch),
        "to_download": list(j.outputs_to_download(batch, ["imageUrl"])),
        "failed_by_technique": j.failed_by_technique(batch),
        "rows_in": j.rows_in(batch, [State.IN_DOUBT, State.SENDING]),
        "batch": j.batch(batch),
        "batches": [b.name for b in j.batches()],
        "resends_due": j.resends_due(batch, 1_800_000_000.0, 10),
        "next_resend": j.next_resend(batch),
    }


def scenario(j: JournalStore, clock: Clock, tmp: Path) -> Iterator[tuple[str, Any]]:
    """A batch's life through every transition, yielding what each step returned and what
    could be read after it."""

    def step(name: str, result: Any = None) -> tuple[str, Any]:
        clock.now += 1.5
        return name, (result, snapshot(j))

    yield step("empty")
    bad = RowProblem(
        index=6, line=8, row_id="r6", reason="row has no input values", columns=("r6", "")
    )
    jobs: list[Job | RowProblem] = [job(i) for i in range(6)]
    yield step("load rejected", load(j, [*jobs, bad]))
    yield step("load accepted", load(j, [*jobs, bad], accept=True))
    yield step("load again", load(j, [*jobs, bad], accept=True))
    yield step("plan", j.plan(B, [job(1), job(0, value="edited"), job(7)]))
    yield step(
        "mark 0-2",
        j.mark_sending(B, [("r2", "k2", b"body2"), ("r0", "k0", b"{}"), ("r1", "k1", b"b1")]),
    )
    yield step(
        "mark 3 + answer 0",
        j.mark_sending(
            B, [("r3", "k3", b"b3")], [("r0", Run("run_0", "queued", charged_cost=0.3))]
        ),
    )
    outs = (Output("img", "imageUrl", "https://x/1.png"), Output("t", "text", "hi"))
    yield step(
        "answers",
        j.record_runs(
            B,
            [
                ("r1", Run("run_1", "running", created_at=10.0, started_at=11.0)),
                ("r2", Run("run_2", "completed", outputs=outs, completed_at=12.0)),
                ("r3", Run("run_3", "failed", error_code="bad_input", error_message="no")),
                ("r0", Run("run_0", "running", charged_cost=0.35)),
            ],
        ),
    )
    yield step(
        "cost arrives", j.record_runs(B, [("r2", Run("run_2", "completed", charged_cost=0.25))])
    )
    yield step(
        "download",
        j.record_download(B, Download("r2", "img", "https://x/1.png", "out/r2.png", 10, "ab")),
    )
    yield step("mark 4, 5", j.mark_sending(B, [("r4", "k4", b"b4"), ("r5", "k5", b"b5")]))
    yield step("doubt", j.set_state(B, ["r4"], State.IN_DOUBT, "key_expired", "too old"))
    yield step("unsend", j.unsend(B, ["r5"]))
    yield step("retry failed", j.retry_failed(B))
    yield step("resend in doubt", j.resend_in_doubt(B))
    yield step("mark 3 again", j.mark_sending(B, [("r3", "k3b", b"b3b")]))
    yield step(
        "fails again",
        j.record_runs(
            B,
            [("r3", Run("run_3b", "failed", error_code="server_error"))],
            Resends({"r3": 1_700_000_100.0}, 2),
        ),
    )
    yield step(
        "resend due",
        j.mark_sending(
            B,
            [("r3", "k3c", b"b3c")],
            [("r1", Run("run_1", "failed"))],
            Resends({"r1": 1_700_000_200.0, "r2": 1.0}, 1),
        ),
    )
    report = tmp / "out.csv"
    report.write_text("report\n")
    tally = Counter({"completed": 1, "pending": 3})
    yield step("report unknown", j.current_reports(B, [report], "t1"))
    yield step("record report", j.record_reports(B, [report], "t1", tally))
    yield step("report current", j.current_reports(B, [report], "t1"))
    yield step("other tag", j.current_reports(B, [report], "t2"))
    yield step(
        "reload edited",
        load(j, [job(5), job(1), job(2, value="a new prompt"), job(3), job(8), bad], accept=True),
    )
    yield step("report stale", j.current_reports(B, [report], "t1"))
    dup = RowProblem(index=9, line=11, row_id="r1", reason="duplicate id", fatal=True)
    yield step("fatal load", load(j, [job(1), dup], accept=True))
    yield step("second batch", load(j, [job(0, tech="other")], batch="b2"))
    yield step("second batch view", snapshot(j, "b2"))


def test_both_back_ends_give_the_same_results(tmp_path: Path, pg_url: str) -> None:
    results = {}
    for name in ("sqlite", "postgres"):
        clock = Clock()
        j: JournalStore
        if name == "sqlite":
            j = Journal.open(tmp_path / "state", clock)
        else:
            j = PgJournal.open(pg_url, clock)
        with j:
            results[name] = list(scenario(j, clock, tmp_path))
    for (step, lite), (same, pg) in zip(results["sqlite"], results["postgres"], strict=True):
        assert step == same
        assert pg == lite, f"after {step!r}"


@pytest.fixture(params=["sqlite", "postgres"])
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JournalStore]:
    """Either back end: the tests below hold for both."""
    if request.param == "sqlite":
        with Journal.open(tmp_path / "state") as j:
            yield j
    else:
        url = request.getfixturevalue("postgres_cluster").create_database()
        with PgJournal.open(url) as pj:
            yield pj


def test_answers_ride_on_the_next_write_ahead_commit(journal: JournalStore) -> None:
    load(journal, [job(0), job(1)])
    journal.mark_sending(B, [("r0", "k0", b"{}")])
    revision = journal.revision()
    journal.mark_sending(B, [("r1", "k1", b"{}")], [("r0", Run("run_0", "queued"))])
    assert journal.revision() == revision + 1  # one commit for both
    assert journal.counts(B) == {"submitted": 1, "sending": 1}


def test_a_failure_seen_twice_is_sent_again_once(journal: JournalStore) -> None:
    """Two workers' sweeps see the same failed run: the row goes to its next attempt once, and
    a late look at the old run undoes neither the re-send nor the new attempt's result."""
    load(journal, [job(0)])
    journal.mark_sending(B, [("r0", "key-1", b"{}")])
    journal.record_runs(B, [("r0", Run("X", "running"))])
    failed = Run("X", "failed", error_code="SERVER_ERROR")
    journal.record_runs(B, [("r0", failed)], Resends({"r0": 0.0}, 2))  # one worker's sweep
    journal.mark_sending(B, [("r0", "key-2", b"{}")])  # attempt 2 is sent
    journal.record_runs(B, [("r0", failed)], Resends({"r0": 0.0}, 2))  # the other's, late
    (row,) = journal.report_rows(B)
    assert (row.state, row.attempt, row.idem_key) == ("sending", 2, "key-2")
    journal.record_runs(B, [("r0", Run("Y", "completed", charged_cost=0.1))])
    journal.record_runs(B, [("r0", Run("X", "running"))])  # stale news of the first run
    (row,) = journal.report_rows(B)
    assert (row.state, row.run_id, row.attempt) == ("completed", "Y", 2)


def test_edited_row_runs_again_and_history_keeps_the_old_result(journal: JournalStore) -> None:
    load(journal, [job(0)])
    journal.mark_sending(B, [("r0", "k0", b"{}")])
    journal.record_runs(B, [("r0", Run("run_0", "completed", charged_cost=0.5))])
    stats, _ = load(journal, [job(0, value="a new prompt")])
    assert stats.edited == 1
    (row,) = journal.report_rows(B)
    assert row.state == State.PENDING and row.attempt == 2 and row.run_id is None
    assert "run_0" in journal.known_run_ids()


def test_an_answer_for_a_key_the_row_has_moved_on_from_is_not_recorded(
    journal: JournalStore,
) -> None:
    """A reload edits a row whose create is still out (another worker's, on PostgreSQL): that
    create's answer, when it comes, must not land on the row, which is to run the edit."""
    load(journal, [job(0)])
    journal.mark_sending(B, [("r0", "k1", b"1")])
    load(journal, [job(0, value="a new prompt")])
    journal.record_runs(B, [("r0", Run("run_old", "running"))], keys={"r0": "k1"})
    (row,) = journal.report_rows(B)
    assert row.state == State.PENDING and row.run_id is None
    # Sent again under the next attempt's key: still no place for the old answer, riding on a
    # write-ahead or on its own; the new one lands.
    journal.mark_sending(B, [("r0", "k2", b"2")])
    journal.mark_sending(B, [], [("r0", Run("run_old", "running"))], keys={"r0": "k1"})
    (row,) = journal.report_rows(B)
    assert row.state == State.SENDING and row.run_id is None
    journal.record_runs(B, [("r0", Run("run_new", "running"))], keys={"r0": "k2"})
    (row,) = journal.report_rows(B)
    assert row.state == State.SUBMITTED and row.run_id == "run_new"


def test_problems_roll_back_unless_accepted(journal: JournalStore) -> None:
    bad = RowProblem(index=1, line=3, row_id="r1", reason="row has no input values")
    stats, ok = load(journal, [job(0), bad])
    assert not ok and stats.problem_count == 1 and stats.rejected == 1
    assert journal.counts(B) == {} and journal.batch(B) is None
    stats, ok = load(journal, [job(0), bad], accept=True)
    assert ok and journal.counts(B) == {"pending": 1, "rejected": 1}
    (rejected,) = journal.rows_in(B, [State.REJECTED])
    assert rejected.error_code == "invalid_row" and rejected.error_message == bad.reason


def test_a_large_load_then_a_reload_classifies_every_row(journal: JournalStore) -> None:
    n = 20_000
    stats, ok = load(journal, [job(i) for i in range(n)])
    assert ok and stats.new == n and stats.to_send == Counter({"tech": n})
    journal.mark_sending(B, [(f"r{i}", f"k{i}", b"{}") for i in range(0, n, 2)])
    # Drop the first 100 rows, edit every tenth, add 50: the rest move up and are unchanged.
    kept = range(100, n + 50)
    items: list[Job | RowProblem] = [
        dataclasses.replace(
            job(i, "edited" if i < n and i % 10 == 0 else None), index=k, line=k + 2
        )
        for k, i in enumerate(kept)
    ]
    stats, ok = load(journal, items)
    edited = sum(1 for i in kept if i < n and i % 10 == 0)
    assert ok and (stats.new, stats.edited, stats.removed) == (50, edited, 100)
    assert stats.unchanged == n - 100 - edited
    sending = sum(1 for i in kept if i < n and i % 2 == 0 and i % 10)
    assert stats.by_state == Counter({"pending": len(kept) - sending, "sending": sending})
    assert stats.to_send == Counter({"tech": len(kept)})
    rows = list(journal.report_rows(B))
    assert [r.row_id for r in rows] == [x.row_id for x in items]
    assert [r.idx for r in rows] == list(range(len(items)))
    assert journal.counts(B) == dict(stats.by_state)


# -- lock order: a load and the workers wait for each other, never deadlock -------------------


def _reversed_rows(n: int = 20) -> list[Job | RowProblem]:
    """Rows the manifest lists against their ids' order (so stored, too): a transaction that
    changed rows in the manifest's order would lock them against the workers' order."""
    return [job(i, row_id=f"r{n - 1 - i:02d}") for i in range(n)]


def _waits_instead_of_deadlocking(url: str, action: Callable[[], object]) -> None:
    """A transaction holds the first row (by id) while ``action`` runs on another connection,
    then takes every other row in id order, as workers change rows. ``action`` must wait for the
    first row without holding any other: otherwise PostgreSQL finds a deadlock and aborts one
    of the two."""
    failed: list[BaseException] = []

    def act() -> None:
        try:
            action()
        except BaseException as exc:  # reported below, in the test's thread
            failed.append(exc)

    with psycopg.connect(url) as holder:
        holder.execute("SELECT 1 FROM rows WHERE row_id = 'r00' FOR UPDATE")
        thread = threading.Thread(target=act)
        thread.start()
        with psycopg.connect(url, autocommit=True) as watch:
            waiting = (
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            deadline = time.monotonic() + 10
            while watch.execute(waiting).fetchone() == (0,):
                assert thread.is_alive() and time.monotonic() < deadline, "it never waited"
                time.sleep(0.01)
        holder.execute("SELECT 1 FROM rows WHERE row_id > 'r00' ORDER BY row_id FOR UPDATE")
        holder.commit()
        thread.join(30)
    assert not failed, failed


def test_a_reload_locks_the_rows_it_changes_in_id_order(pg_url: str) -> None:
    with PgJournal.open(pg_url) as j:
        load(j, _reversed_rows())

    def reload() -> None:  # every row edited
        with PgJournal.open(pg_url) as j:
            stats, committed = load(
                j, [job(i, "edited", row_id=f"r{19 - i:02d}") for i in range(20)]
            )
            assert committed and stats.edited == 20

    _waits_instead_of_deadlocking(pg_url, reload)


def test_a_worker_renews_and_releases_its_leases_in_id_order(pg_url: str) -> None:
    with PgJournal.open(pg_url) as j:
        load(j, _reversed_rows())
        assert len(j.claim_pending(B, "w", 20, 60)) == 20  # claimed (so stored) in manifest order

    def renew() -> None:
        with PgJournal.open(pg_url) as j:
            assert j.renew_leases("w", 60) == 20

    def release() -> None:
        with PgJournal.open(pg_url) as j:
            assert j.release_leases("w") == 20

    _waits_instead_of_deadlocking(pg_url, renew)
    _waits_instead_of_deadlocking(pg_url, release)


def test_answers_and_write_aheads_in_one_commit_lock_their_rows_in_id_order(pg_url: str) -> None:
    with PgJournal.open(pg_url) as j:
        load(j, _reversed_rows())
        j.mark_sending(B, [("r19", "k19", b"19")])

    def send() -> None:  # the answer for r19 and the write-ahead of r00 ride on one commit
        with PgJournal.open(pg_url) as j:
            j.mark_sending(B, [("r00", "k00", b"0")], [("r19", Run("run_19", "running"))])

    _waits_instead_of_deadlocking(pg_url, send)


# -- several workers: claims, leases, slots ----------------------------------------------------


def test_claims_are_leased_and_skip_rows_others_hold(pgj: PgJournal) -> None:
    load(pgj, [job(i) for i in range(10)])
    first = pgj.claim_pending(B, "w1", 4, 60)
    second = pgj.claim_pending(B, "w2", 4, 60)
    assert [t.row_id for t in first] == ["r0", "r1", "r2", "r3"]
    assert [t.row_id for t in second] == ["r4", "r5", "r6", "r7"]
    assert pgj.renew_leases("w1", 60) == 4
    # A worker sends only rows it holds: w2's rows are not marked for w1.
    marked = pgj.mark_sending_leased(B, "w1", [("r0", "k0", b"0"), ("r4", "k4", b"4")])
    assert marked == ["r0"]
    assert pgj.counts(B) == {"sending": 1, "pending": 9}
    # w2 leaves cleanly: its rows are free at once.
    assert pgj.release_leases("w2") == 4
    assert [t.row_id for t in pgj.claim_pending(B, "w3", 10, 60)] == [
        "r4",
        "r5",
        "r6",
        "r7",
        "r8",
        "r9",
    ]


def test_a_dead_workers_rows_are_taken_over_and_resent_under_the_same_key(pgj: PgJournal) -> None:
    load(pgj, [job(i) for i in range(3)])
    pgj.claim_pending(B, "dead", 2, 60)
    assert pgj.mark_sending_leased(B, "dead", [("r0", "k0", b'{"exact": 0}')]) == ["r0"]
    # While its lease runs, nobody else takes its rows.
    assert [t.row_id for t in pgj.claim_pending(B, "live", 5, 60)] == ["r2"]
    pgj.renew_leases("dead", 0)  # its last heartbeat: the lease runs out now
    taken = pgj.claim_pending(B, "live", 5, 60)
    # The row it announced comes first, with the key and body to resend byte for byte; then
    # the row it held but never announced, as a fresh pending row.
    assert [(t.row_id, t.idem_key, t.body) for t in taken] == [
        ("r0", "k0", b'{"exact": 0}'),
        ("r1", None, None),
    ]
    assert taken[0].first_sent_at is not None
    assert pgj.mark_sending_leased(B, "dead", [("r1", "k1", b"1")]) == []  # too late
    assert pgj.renew_leases("dead", 60) == 0
    assert pgj.mark_sending_leased(B, "live", [("r0", "k0", b'{"exact": 0}')]) == ["r0"]
    pgj.record_runs(B, [("r0", Run("run_0", "running"))])
    # Runs in flight need no lease: any worker polls them.
    assert [f.row_id for f in pgj.in_flight(B)] == ["r0"]
    assert [t.row_id for t in pgj.claim_pending(B, "other", 5, 60)] == []


def test_downloads_are_claimed_like_sends_and_a_dead_workers_are_taken_over(
    pgj: PgJournal,
) -> None:
    load(pgj, [job(i) for i in range(2)])
    files = [("r0", "a"), ("r0", "b"), ("r1", "a")]
    assert pgj.claim_downloads(B, "w1", files, 2, 60) == [("r0", "a"), ("r0", "b")]
    assert pgj.claim_downloads(B, "w2", files, 5, 60) == [("r1", "a")]  # the rest only
    assert pgj.claim_downloads(B, "w3", files, 5, 60) == []
    assert pgj.claim_downloads(B, "w1", files[:1], 5, 60) == [("r0", "a")]  # held: again
    pgj.renew_leases("w1", 60)
    assert pgj.claim_downloads(B, "w3", files, 5, 60) == []
    pgj.renew_leases("w1", 0)  # w1's last heartbeat: its claims run out now
    assert pgj.claim_downloads(B, "w3", files, 5, 60) == [("r0", "a"), ("r0", "b")]
    # Given back (a lease of 0): free for the next worker at once. Leaving frees the rest.
    assert pgj.claim_downloads(B, "w3", [("r0", "b")], 1, 0) == [("r0", "b")]
    assert pgj.claim_downloads(B, "w4", files, 5, 60) == [("r0", "b")]
    pgj.release_leases("w2")
    assert pgj.claim_downloads(B, "w4", files, 5, 60) == [("r0", "b"), ("r1", "a")]
    # Each fetch is recorded with the host that fetched it.
    pgj.record_download(B, Download("r1", "a", "https://x/a.png", "out/r1.png", 3, "cd", "h2"))
    assert pgj.downloads(B)[("r1", "a")].host == "h2"


def test_rows_waiting_for_a_tier_resend_are_not_claimed_early(pgj: PgJournal) -> None:
    load(pgj, [job(0), job(1)])
    pgj.mark_sending(B, [("r0", "k0", b"{}"), ("r1", "k1", b"{}")])
    later, past = 4_000_000_000.0, 1_000_000.0
    pgj.record_runs(
        B,
        [("r0", Run("run_0", "failed")), ("r1", Run("run_1", "failed"))],
        Resends({"r0": later, "r1": past}, 3),
    )
    assert [(t.row_id, t.attempt) for t in pgj.claim_pending(B, "w", 5, 60)] == [("r1", 2)]


def _claimer(url: str, worker: str, start: Any, out: Any) -> None:
    with PgJournal.open(url) as j:
        start.wait()
        mine: list[str] = []
        while batch := j.claim_pending(B, worker, random.randint(1, 7), 60):
            mine.extend(t.row_id for t in batch)
        out.put(mine)


def test_processes_claiming_at_once_never_claim_a_row_twice(pg_url: str) -> None:
    n = 600
    with PgJournal.open(pg_url) as j:
        load(j, [job(i) for i in range(n)])
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(pg_url, f"w{k}", start, out)) for k in range(4)]
    for p in procs:
        p.start()
    claimed = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    every = [r for mine in claimed for r in mine]
    assert len(every) == n and set(every) == {f"r{i}" for i in range(n)}  # no row twice
    assert sum(1 for mine in claimed if mine) >= 2  # they did run side by side


def test_two_workers_never_both_take_the_last_slot(pg_url: str) -> None:
    with PgJournal.open(pg_url) as setup:
        load(setup, [job(i) for i in range(2)])
    journals = [PgJournal.open(pg_url) for _ in range(2)]
    try:
        for _ in range(20):
            barrier = threading.Barrier(2)
            got: list[int] = []

            def take(
                j: PgJournal, w: str, barrier: threading.Barrier = barrier, got: list[int] = got
            ) -> None:
                barrier.wait()
                got.append(j.take_send_slots(B, w, 1, concurrency=1))

            threads = [
                threading.Thread(target=take, args=(j, f"w{k}")) for k, j in enumerate(journals)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(got) == [0, 1]
            for k in range(2):
                journals[0].release_send_slots(B, f"w{k}", 1)
    finally:
        for j in journals:
            j.close()


def test_slots_count_runs_in_flight_of_every_worker(pgj: PgJournal) -> None:
    load(pgj, [job(i) for i in range(10)])
    assert pgj.take_send_slots(B, "a", 3, concurrency=5) == 3
    assert pgj.take_send_slots(B, "b", 3, concurrency=5) == 2
    assert pgj.in_flight_count(B) == 5
    # Slots turn into 'sending' rows as they are used; the count stays.
    pgj.claim_pending(B, "a", 3, 60)
    pgj.mark_sending_leased(B, "a", [("r0", "k0", b"0"), ("r1", "k1", b"1")])
    assert pgj.in_flight_count(B) == 5
    assert pgj.release_send_slots(B, "a", 1) == 0
    assert pgj.take_send_slots(B, "b", 5, concurrency=5) == 1
    # Runs finishing free slots; so does a worker that stops renewing its own.
    pgj.record_runs(B, [("r0", Run("run_0", "completed"))])
    assert pgj.take_send_slots(B, "c", 5, concurrency=5) == 1
    pgj.renew_leases("b", 0)
    assert pgj.take_send_slots(B, "c", 5, concurrency=5) == 3
    # A 429 seen by one worker lowers the cap for all while it lasts.
    pgj.throttle(B, 60, 2)
    limits = pgj.limits(B)
    assert limits is not None and limits.throttle_limit == 2 and limits.throttled_for > 50
    assert pgj.take_send_slots(B, "d", 5, concurrency=5) == 0


def _slot_worker(url: str, worker: str, cap: int, start: Any, out: Any) -> None:
    """Take slots, claim, mark, then finish runs now and then, until the batch is done."""
    rng = random.Random(worker)
    with PgJournal.open(url) as j:
        start.wait()
        mine: list[str] = []
        while True:
            slots = j.take_send_slots(B, worker, rng.randint(1, 4), cap)
            tasks = j.claim_pending(B, worker, slots, 60) if slots else []
            if slots > len(tasks):
                j.release_send_slots(B, worker, slots - len(tasks))
            sent = j.mark_sending_leased(
                B, worker, [(t.row_id, f"k-{t.row_id}", b"{}") for t in tasks]
            )
            mine.extend(sent)
            if sent:
                j.record_runs(B, [(r, Run(f"run-{r}", "running")) for r in sent])
            flying = [f.row_id for f in j.in_flight(B)]
            done = rng.sample(flying, k=min(len(flying), rng.randint(0, 3)))
            j.record_runs(B, [(r, Run(f"run-{r}", "completed")) for r in done])
            counts = j.counts(B)
            if (
                not counts.get("pending")
                and not counts.get("sending")
                and not counts.get("submitted")
            ):
                break
            if not slots and not done:
                threading.Event().wait(0.002)
        out.put(mine)


def test_the_cap_holds_across_worker_processes(pg_url: str) -> None:
    n, cap = 300, 6
    with PgJournal.open(pg_url) as j:
        load(j, [job(i) for i in range(n)])
        ctx = multiprocessing.get_context("spawn")
        start, out = ctx.Barrier(3), ctx.Queue()
        procs = [
            ctx.Process(target=_slot_worker, args=(pg_url, f"w{k}", cap, start, out))
            for k in range(3)
        ]
        for p in procs:
            p.start()
        peak = 0
        while any(p.is_alive() for p in procs):
            peak = max(peak, j.in_flight_count(B))  # one snapshot: runs in flight + slots held
            time.sleep(0.001)
        sent = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        every = [r for mine in sent for r in mine]
        assert sorted(every) == sorted(f"r{i}" for i in range(n))  # each row sent once
        assert j.counts(B) == {"completed": n}
        assert 0 < peak <= cap
