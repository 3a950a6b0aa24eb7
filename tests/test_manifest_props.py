"""Property tests: whatever a CSV writer can write, the manifest reader reads back."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from batchrun.manifest import ManifestOptions, open_manifest
from batchrun.manifest.rowids import derived_key
from batchrun.models import Job, RowProblem

# Any text a UTF-8 file can hold (no lone surrogates), commas, quotes and newlines included.
cell = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from([",", '"', "\n", "\r", "\t"])),
    max_size=30,
)
rows = st.lists(st.tuples(cell, cell), min_size=1, max_size=12)


def write_csv(directory: str, header: list[str], body: list[list[str]]) -> tuple[Path, list[int]]:
    """The file, and the line each body row starts on (counted the way a reader counts)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    starts = []
    for row in body:
        starts.append(len(list(io.StringIO(out.getvalue(), newline=""))) + 1)
        writer.writerow(row)
    path = Path(directory) / "m.csv"
    path.write_text(out.getvalue(), encoding="utf-8", newline="")
    return path, starts


@settings(max_examples=150, deadline=None)
@given(rows)
def test_csv_cells_read_back_identically(body: list[tuple[str, str]]) -> None:
    # The id column is never blank, so no row is skipped as empty.
    table = [[f"r{k}", a, b] for k, (a, b) in enumerate(body)]
    with tempfile.TemporaryDirectory() as tmp:
        path, starts = write_csv(tmp, ["id", "a", "b"], table)
        items = list(open_manifest(ManifestOptions(path, technique="t")).rows())
    assert [i.columns for i in items] == [tuple(c or None for c in row) for row in table]
    assert [i.line for i in items] == starts
    assert [i.index for i in items] == list(range(len(table)))
    for item, (_, a, b) in zip(items, table, strict=True):
        if isinstance(item, Job):
            expected = [("a", a), ("b", b)]
            assert [(i.id, i.value) for i in item.inputs] == [
                (k, v) for k, v in expected if v and not v.isspace()
            ]
        else:
            assert item.reason == "row has no input values"
            assert not (a.strip() or b.strip())


@settings(max_examples=100, deadline=None)
@given(rows)
def test_derived_ids_are_deterministic_and_unique(body: list[tuple[str, str]]) -> None:
    table = [["x" + a, b] for a, b in body]  # never blank, so every row is read
    with tempfile.TemporaryDirectory() as tmp:
        path, _ = write_csv(tmp, ["a", "b"], table)
        manifest = open_manifest(ManifestOptions(path, technique="t", chunk_rows=3))
        first = [i.row_id for i in manifest.rows()]
        again = [i.row_id for i in manifest.rows()]
    assert first == again
    assert len(set(first)) == len(first)
    for k, row in enumerate(table):
        occurrence = table[: k + 1].count(row)
        assert first[k] == f"auto-{derived_key('t', [c or None for c in row])}-{occurrence}"


@given(st.text(), st.lists(st.one_of(st.none(), st.text())))
def test_derived_key_is_canonical_json(technique: str, cells: list[str | None]) -> None:
    payload = json.dumps([technique, cells], ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    assert derived_key(technique, cells) == digest


def test_problem_rows_have_a_column_per_manifest_column(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "r1", "prompt": "a"}\nnot json\n', encoding="utf-8")
    items = list(open_manifest(ManifestOptions(path, technique="t")).rows())
    assert isinstance(items[1], RowProblem) and items[1].columns == (None, None)
