"""The report writers: the three formats agree, types are right, awkward cells survive."""

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from batchrun.journal import Download, ReportRow
from batchrun.models import Output
from batchrun.report import write_reports

T0 = 1_764_337_722.1234


def row(idx: int, **kw: object) -> ReportRow:
    base: dict[str, object] = dict(
        idx=idx, row_id=f"r{idx}", technique_id="tech", cells=[f"r{idx}", "x"], state="completed",
        attempt=1, idem_key=f"br1-{idx}", run_id=f"run{idx}", run_status="completed",
        charged_cost=0.04, cost_final=True, error_code=None, error_message=None,
        outputs=[Output("o1", "image", f"https://media.example/{idx}.png")],
        created_at=T0, started_at=T0 + 1, completed_at=T0 + 2,
    )  # fmt: skip
    base.update(kw)
    return ReportRow(**base)  # type: ignore[arg-type]


def test_formats_agree_and_keep_awkward_cells(tmp_path: Path) -> None:
    huge = "ü" * (2 << 20)  # longer than any reader block
    rows = [
        row(0),
        row(1, cells=["r1", huge], charged_cost=None, cost_final=False, outputs=[]),
        row(2, cells=["r2", None], state="failed", run_status="failed", error_code="boom",
            error_message='quote " and\nnewline', charged_cost=None, created_at=None,
            started_at=None, completed_at=None,
            downloads=[Download("r2", "o1", "u", "out/r2.png", 12, "ab")]),
        row(3, cells=["r3", "123"], state="pending", run_id=None, run_status=None,
            charged_cost=None, cost_final=False, outputs=[], created_at=None, started_at=None,
            completed_at=None),
    ]  # fmt: skip
    paths = [tmp_path / "r.parquet", tmp_path / "r.csv", tmp_path / "r.jsonl"]
    counts = write_reports(paths, rows, ["id", "status"])
    assert counts == {"completed": 2, "failed": 1, "unsubmitted": 1}

    table = pq.read_table(paths[0])
    assert table.column_names[:3] == ["id", "manifest_status", "row_id"]
    assert table.schema.field("created_at").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("charged_cost").type == pa.float64()
    assert table.schema.field("attempt").type == pa.int32()
    got = table.to_pylist()
    assert got[0]["created_at"] == datetime.fromtimestamp(1_764_337_722.123, UTC)
    assert got[0]["outputs"] == [
        {"output_id": "o1", "type": "image", "url": "https://media.example/0.png"}
    ]
    assert got[1]["manifest_status"] == huge and got[1]["charged_cost"] is None
    assert got[2]["manifest_status"] is None and got[2]["error_message"] == 'quote " and\nnewline'
    assert got[2]["downloads"] == [
        {"output_id": "o1", "path": "out/r2.png", "bytes": 12, "sha256": "ab"}
    ]
    assert got[3]["manifest_status"] == "123" and got[3]["status"] == "unsubmitted"

    lines = [json.loads(line) for line in paths[2].read_text(encoding="utf-8").splitlines()]
    csv.field_size_limit(1 << 24)  # the reader's limit, not the writer's
    with open(paths[1], newline="", encoding="utf-8") as fh:
        flat = list(csv.DictReader(fh))
    for p, j, c in zip(got, lines, flat, strict=True):
        assert p["row_id"] == j["row_id"] == c["row_id"]
        assert p["status"] == j["status"] == c["status"]
        assert (p["created_at"] is None) == (j["created_at"] is None) == (c["created_at"] == "")
    assert lines[0]["created_at"] == "2025-11-28T13:48:42.123Z"
    assert json.loads(flat[0]["outputs"]) == lines[0]["outputs"]


def test_preload_loads_the_parquet_writer_in_a_thread_and_only_for_parquet() -> None:
    script = (
        "import sys; from pathlib import Path; from batchrun.report import preload\n"
        "assert preload([Path('r.csv'), Path('r.jsonl')]) is None\n"
        "assert 'pyarrow' not in sys.modules\n"
        "thread = preload([Path('r.csv'), Path('r.parquet')]); thread.join()\n"
        "assert 'batchrun.report.parquet' in sys.modules and 'pyarrow' in sys.modules\n"
        "assert preload([Path('r.parquet')]) is None  # loaded already\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
