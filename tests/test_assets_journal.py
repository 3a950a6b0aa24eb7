"""The journal's record of local files and their assets: the same answers from the SQLite and
the PostgreSQL journal (the PostgreSQL half runs where a server can be started)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchrun.journal import AssetRecord, AssetUse, Journal, JournalStore
from batchrun.journal.schema import MIGRATIONS
from batchrun.models import Input, Job, LocalFile, Run

B = "photos"
SHA_A, SHA_B = "a" * 64, "b" * 64


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def job(i: int, sha: str, path: str) -> Job:
    return Job(i, i + 2, f"r{i}", "tech_caption",
               (Input("image", "imageUrl", f"sha256:{sha}", path), Input("prompt", "text", "p")),
               (f"r{i}", path))  # fmt: skip


def open_store(kind: str, tmp: Path, request: pytest.FixtureRequest, clock: Clock) -> JournalStore:
    if kind == "sqlite":
        return Journal.open(tmp / "state", clock)
    from batchrun.journal.postgres import PgJournal

    url = request.getfixturevalue("postgres_cluster").create_database()
    return PgJournal.open(url, clock)


def scenario(j: JournalStore, clock: Clock) -> Iterator[tuple[str, Any]]:
    def step(name: str, result: Any = None) -> tuple[str, Any]:
        clock.now += 1.0
        reports = list(j.report_rows(B))
        return name, (result, j.batch_files(B), j.files_fingerprint(B), j.assets("ws1"),
                      j.assets("ws2"), [(r.row_id, r.assets) for r in reports],
                      j.pending(B, -1, 10))  # fmt: skip

    yield step("empty")
    jobs = [job(0, SHA_A, "photos/a.png"), job(1, SHA_A, "./photos/a.png"),
            job(2, SHA_B, "photos/b.png")]  # fmt: skip
    j.sync_manifest(B, "m.csv", ["id", "image"], jobs, accept_problems=False, fingerprint="f1")
    files = [LocalFile("/m/photos/a.png", SHA_A, 10, 111, "image/png", 0),
             LocalFile("/m/photos/b.png", SHA_B, 20, 222, "image/png", 2)]  # fmt: skip
    yield step("files", j.record_files(B, files, "f1"))
    yield step("again", j.record_files(B, files[1:], "f2"))
    rec = AssetRecord("ws1", SHA_A, "creating", 10, "image/png", "a.aaaa.png", clock.now)
    yield step("announce", j.announce_asset(rec))
    later = AssetRecord("ws1", SHA_A, "creating", 10, "image/png", "a.aaaa.png", clock.now + 50)
    yield step("announce again keeps the first", j.announce_asset(later))
    yield step("ready", j.record_asset("ws1", SHA_A, "ready", "ast_1", "https://m/ast_1.png"))
    yield step("other ws", j.announce_asset(AssetRecord("ws2", SHA_A, "creating", 10,
                                                        "image/png", "a.aaaa.png", 5.0)))  # fmt: skip
    j.mark_sending(B, [("r0", "k0", b"{}"), ("r1", "k1", b"{}")])
    use = AssetUse("image", "photos/a.png", SHA_A, "ast_1", "https://m/ast_1.png")
    yield step("used", j.record_row_assets(B, "r0", "k0", [use]))
    yield step("used by r1", j.record_row_assets(B, "r1", "old-key", [use]))  # another send's
    yield step("answers", j.record_runs(B, [("r0", Run("run_0", "completed"))]))


def test_both_back_ends_record_files_and_assets_alike(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    results = {}
    for kind in ("sqlite", "postgres"):
        clock = Clock()
        with open_store(kind, tmp_path, request, clock) as j:
            results[kind] = list(scenario(j, clock))
    for (step, lite), (same, pg) in zip(results["sqlite"], results["postgres"], strict=True):
        assert step == same
        assert pg == lite, f"after {step!r}"
    steps = dict(results["sqlite"])
    assert steps["files"][1][0].sha256 == SHA_A and steps["files"][2] == "f1"
    assert [f.path for f in steps["again"][1]] == ["/m/photos/b.png"] and steps["again"][2] == "f2"
    first = steps["announce again keeps the first"][0]
    assert first.announced_at == steps["announce"][0].announced_at and first.asset_id is None
    assert steps["ready"][3][SHA_A].url == "https://m/ast_1.png"
    assert set(steps["other ws"][4]) == {SHA_A}
    report = dict(steps["used by r1"][5])
    assert report["r0"] == [AssetUse("image", "photos/a.png", SHA_A, "ast_1",
                                     "https://m/ast_1.png")]  # fmt: skip
    assert report["r1"] == []  # recorded under a key the row was not sent with
    pending = steps["empty"][6]
    assert pending == []
    assert steps["files"][6][0].inputs[0].source == "photos/a.png"  # the path survives the trip


def test_sqlite_migration_7_adds_the_asset_tables(tmp_path: Path) -> None:
    assert MIGRATIONS[-1][0] >= 7
    with Journal.open(tmp_path) as j:
        assert 7 in j.schema_versions()
