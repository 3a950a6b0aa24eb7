"""The manifest reader, on real files of every format."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

import batchrun.manifest
from batchrun.errors import ManifestError
from batchrun.manifest import ManifestOptions, open_manifest
from batchrun.models import Input, Job, RowProblem

Item = Job | RowProblem


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def read(path: Path, technique: str | None = "tech", **kw: Any) -> list[Item]:
    return list(open_manifest(ManifestOptions(path, technique=technique, **kw)).rows())


def jobs(items: list[Item]) -> list[Job]:
    assert all(isinstance(i, Job) for i in items), [i for i in items if isinstance(i, RowProblem)]
    return [i for i in items if isinstance(i, Job)]


def problems(items: list[Item]) -> list[tuple[int, str]]:
    return [(i.line, i.reason) for i in items if isinstance(i, RowProblem)]


def manifest_error(path: Path, **kw: Any) -> str:
    with pytest.raises(ManifestError) as err:
        read(path, **kw)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    return message


def test_public_api_is_small() -> None:
    assert batchrun.manifest.__all__ == ["Manifest", "ManifestOptions", "open_manifest"]


# -- CSV ------------------------------------------------------------------------------------------


def test_csv_rows_become_jobs(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "id,prompt,reference:imageUrl\na1,a cat,https://x.io/1.png\n")
    manifest = open_manifest(ManifestOptions(path, technique="tech"))
    assert manifest.columns == ("id", "prompt", "reference:imageUrl")
    (job,) = jobs(list(manifest.rows()))
    assert job == Job(
        index=0,
        line=2,
        row_id="a1",
        technique_id="tech",
        inputs=(
            Input("prompt", "text", "a cat"),
            Input("reference", "imageUrl", "https://x.io/1.png"),
        ),
        columns=("a1", "a cat", "https://x.io/1.png"),
    )


def test_csv_bom_tsv_and_suffix_case(tmp_path: Path) -> None:
    bom = write(tmp_path / "bom.CSV", "\ufeffid,prompt\nr1,hi\n")
    assert open_manifest(ManifestOptions(bom, technique="t")).columns == ("id", "prompt")
    assert jobs(read(bom))[0].row_id == "r1"
    tsv = write(tmp_path / "m.tsv", "id\tprompt\nr1\ta, b\n")
    assert jobs(read(tsv))[0].inputs == (Input("prompt", "text", "a, b"),)


def test_quoted_newlines_keep_line_numbers_right(tmp_path: Path) -> None:
    text = 'id,prompt\nr1,"two\nlines"\nr2,"three\r\nlines\nhere"\nr3,"say ""hi"""\n'
    items = jobs(read(write(tmp_path / "m.csv", text)))
    assert [(j.index, j.line) for j in items] == [(0, 2), (1, 4), (2, 7)]
    assert items[1].inputs[0].value == "three\r\nlines\nhere"
    assert items[2].inputs[0].value == 'say "hi"'


def test_blank_lines_and_empty_rows_are_skipped(tmp_path: Path) -> None:
    text = "id,prompt\n\nr1,a\n,\n  ,  \n\nr2,b\n"
    items = jobs(read(write(tmp_path / "m.csv", text)))
    assert [(j.index, j.line, j.row_id) for j in items] == [(0, 3, "r1"), (1, 7, "r2")]


def test_ragged_rows(tmp_path: Path) -> None:
    text = "id,prompt,style\nr1,a\nr2,b,c,d\nr3,e,f,,\n"
    items = read(write(tmp_path / "m.csv", text))
    assert items[0].columns == ("r1", "a", None)
    assert problems(items) == [(3, "row has 4 cells, header has 3")]
    assert items[1].columns == ("r2", "b", "c") and items[1].row_id == "r2"
    assert isinstance(items[2], Job)  # trailing empty cells are padding


def test_non_utf8_byte_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(b"id,prompt\nr1,ok\nr2,caf\xe9\n")
    assert f"{path}:3: not UTF-8" in manifest_error(path)


def test_malformed_quotes_are_manifest_errors(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", 'id,prompt\nr1,a\nr2,"never closed\nr3,b\n')
    assert f"{path}:3: a quoted cell in this row is never closed" in manifest_error(path)
    path = write(tmp_path / "m.csv", 'id,prompt\nr1,"a"b\n')
    assert f"{path}:2: text right after a closing quote" in manifest_error(path)
    path = write(tmp_path / "m.csv", 'id,prompt\nr1,say "hi" now\n')
    assert jobs(read(path))[0].inputs[0].value == 'say "hi" now'


def test_trailing_empty_header_columns_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "id,prompt,,\nr1,a,,\nr2,b\n")
    assert open_manifest(ManifestOptions(path, technique="t")).columns == ("id", "prompt")
    assert [j.columns for j in jobs(read(path))] == [("r1", "a"), ("r2", "b")]


def test_unnamed_column_must_be_empty(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "id,,prompt\nr1,,a\n")
    assert open_manifest(ManifestOptions(path, technique="t")).columns == ("id", "prompt")
    assert len(jobs(read(path))) == 1
    bad = write(tmp_path / "bad.csv", "id,,prompt\nr1,,a\nr2,oops,b\n")
    assert f"{bad}:3: column 2 has a value but no header name" in manifest_error(bad)


def test_duplicate_header_names_both_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "id,prompt,style,prompt\n")
    assert "column 'prompt' appears twice (columns 2 and 4)" in manifest_error(path)


def test_file_problems(tmp_path: Path) -> None:
    assert "no such file" in manifest_error(tmp_path / "nope.csv")
    message = manifest_error(write(tmp_path / "m.txt", "id\n"))
    assert ".txt" in message and ".csv" in message and ".parquet" in message
    assert "empty" in manifest_error(write(tmp_path / "e.csv", "\n\n"))


# -- column roles ---------------------------------------------------------------------------------


def test_technique_id_column_overrides_the_default(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "id,technique_id,prompt\nr1,,a\nr2, t2 ,b\n")
    assert [j.technique_id for j in jobs(read(path))] == ["tech", "t2"]
    assert [j.columns for j in jobs(read(path))] == [("r1", None, "a"), ("r2", " t2 ", "b")]
    items = read(path, technique=None)
    assert problems(items) == [
        (2, "no technique: pass --technique or fill the technique_id column")
    ]
    assert isinstance(items[1], Job) and items[1].technique_id == "t2"


def test_no_technique_anywhere_is_a_manifest_error(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "id,prompt\nr1,a\n")
    assert "no technique" in manifest_error(path, technique=None)


def test_type_annotations(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.csv", "prompt,ref:imageUrl,clip:videoUrl,note:text\na,http://i,https://v,n\n"
    )
    (job,) = jobs(read(path))
    assert [(i.id, i.type) for i in job.inputs] == [
        ("prompt", "text"), ("ref", "imageUrl"), ("clip", "videoUrl"), ("note", "text"),
    ]  # fmt: skip


def test_unknown_annotation_needs_an_option(tmp_path: Path) -> None:
    # A type the API knows but inputs do not take, or a misspelt one: the header meant a type.
    path = write(tmp_path / "m.csv", "prompt,doc:documentUrl\na,b\n")
    message = manifest_error(path)
    assert "'doc:documentUrl'" in message and "--input" in message and "--pass-through" in message
    (job,) = jobs(read(path, pass_through=frozenset({"doc:documentUrl"})))
    assert job.inputs == (Input("prompt", "text", "a"),) and job.columns == ("a", "b")
    (job,) = jobs(read(path, input_map={"doc:documentUrl": ("document", None)}))
    assert job.inputs[1] == Input("document", "text", "b")
    for typo, meant in (
        ("imageurl", "imageUrl"),
        ("image_url", "imageUrl"),
        ("vidoUrl", "videoUrl"),
    ):
        message = manifest_error(write(tmp_path / "t.csv", f"prompt,ref:{typo}\na,b\n"))
        assert f"did you mean '{meant}'" in message


def test_only_a_known_type_after_the_last_colon_annotates(tmp_path: Path) -> None:
    # Colons that are not annotations: a date-time, a ratio, a label, a file type.
    header = "prompt,1973-05-20 09:15:02,ratio 16:9,Note: see below,doc:pdf"
    path = write(tmp_path / "m.csv", f"{header}\na,b,c,d,e\n")
    (job,) = jobs(read(path))
    assert [(i.id, i.type) for i in job.inputs] == [
        ("prompt", "text"), ("1973-05-20 09:15:02", "text"), ("ratio 16:9", "text"),
        ("Note: see below", "text"), ("doc:pdf", "text"),
    ]  # fmt: skip
    (job,) = jobs(read(path, pass_through=frozenset({"1973-05-20 09:15:02", "doc:pdf"})))
    assert [i.id for i in job.inputs] == ["prompt", "ratio 16:9", "Note: see below"]
    path = write(tmp_path / "t.csv", "prompt,at 09:15:imageUrl\na,https://x.io/i.png\n")
    (job,) = jobs(read(path))
    assert job.inputs[1] == Input("at 09:15", "imageUrl", "https://x.io/i.png")


def test_input_map_by_full_or_bare_name(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "photo:imageUrl,text\nhttp://p,hi\n")
    (job,) = jobs(read(path, input_map={"photo": ("reference", None), "text": ("prompt", None)}))
    assert job.inputs == (Input("reference", "imageUrl", "http://p"), Input("prompt", "text", "hi"))
    (job,) = jobs(read(path, input_map={"photo:imageUrl": ("reference", "videoUrl")}))
    assert job.inputs[0] == Input("reference", "videoUrl", "http://p")


def test_pass_through_and_ignore(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "id,prompt,notes,secret\nr1,a,keep me,drop me\n")
    manifest = open_manifest(
        ManifestOptions(path, "t", pass_through=frozenset({"notes"}), ignore=frozenset({"secret"}))
    )
    assert manifest.columns == ("id", "prompt", "notes")
    (job,) = jobs(list(manifest.rows()))
    assert job.inputs == (Input("prompt", "text", "a"),)
    assert job.columns == ("r1", "a", "keep me")


@pytest.mark.parametrize(
    "options",
    [
        {"pass_through": frozenset({"nope"})},
        {"ignore": frozenset({"nope"})},
        {"input_map": {"nope": ("x", None)}},
        {"id_column": "nope"},
    ],
)
def test_options_naming_missing_columns(tmp_path: Path, options: dict[str, Any]) -> None:
    path = write(tmp_path / "m.csv", "id,prompt\nr1,a\n")
    assert "'nope'" in manifest_error(path, **options)


def test_two_columns_feeding_one_input(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "prompt,prompt:text\na,b\n")
    assert "both feed input 'prompt'" in manifest_error(path)


def test_custom_id_column(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "key,id,prompt\nk1,7,a\n")
    (job,) = jobs(read(path, id_column="key"))
    assert job.row_id == "k1" and job.inputs == (
        Input("id", "text", "7"),
        Input("prompt", "text", "a"),
    )


def test_empty_cells_are_omitted_from_inputs(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "id,prompt,negative,ref:imageUrl\nr1,a,  ,\nr2,,,\n")
    items = read(path)
    assert isinstance(items[0], Job) and items[0].inputs == (Input("prompt", "text", "a"),)
    assert items[0].columns == ("r1", "a", "  ", None)
    assert problems(items) == [(3, "row has no input values")]


def test_url_inputs_must_be_http_or_a_local_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.csv", "id,reference:imageUrl\nr1,foo\nr2,ftp://x\nr3, https://ok.io/a \n"
    )
    items = read(path)
    assert problems(items) == [
        (2, f"column 'reference': file 'foo' not found (looked for {tmp_path / 'foo'})"),
        (3, "column 'reference': 'ftp://x' is neither an http(s) URL nor a local file path"),
    ]
    assert isinstance(items[2], Job) and items[2].inputs[0].value == "https://ok.io/a"


def test_empty_id(tmp_path: Path) -> None:
    items = read(write(tmp_path / "m.csv", "id,prompt\n ,a\n"))
    assert problems(items) == [(2, "empty id")]


# -- row ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 2, 5000])
def test_duplicate_ids_name_both_lines_and_are_fatal(tmp_path: Path, chunk_rows: int) -> None:
    text = 'id,prompt\nr1,a\na7,"b\nc"\nr2,d\na7,e\nr1,f\n'
    items = read(write(tmp_path / "m.csv", text), chunk_rows=chunk_rows)
    assert problems(items) == [
        (6, "duplicate id 'a7' (first on line 3)"),
        (7, "duplicate id 'r1' (first on line 2)"),
    ]
    assert [i.fatal for i in items if isinstance(i, RowProblem)] == [True, True]
    assert [i.index for i in items] == [0, 1, 2, 3, 4]


def test_invalid_row_still_claims_its_id(tmp_path: Path) -> None:
    items = read(write(tmp_path / "m.csv", "id,ref:imageUrl\nr1,bad\nr1,http://ok\n"))
    assert problems(items)[1] == (3, "duplicate id 'r1' (first on line 2)")


def test_derived_id_is_pinned(tmp_path: Path) -> None:
    # If this changes, every resumed batch without an id column would send its rows again.
    (job,) = jobs(read(write(tmp_path / "m.csv", "prompt,style\na cat,oil\n")))
    # sha256('["tech",["a cat","oil"]]')[:16], occurrence 1
    assert job.row_id == "auto-ab5aed7fdf5c3e59-1"


@pytest.mark.parametrize("chunk_rows", [1, 2, 5000])
def test_derived_ids_count_identical_rows(tmp_path: Path, chunk_rows: int) -> None:
    path = write(tmp_path / "m.csv", "prompt\na\nb\na\na\n")
    ids = [i.row_id or "" for i in read(path, chunk_rows=chunk_rows)]
    assert [i.rsplit("-", 1)[1] for i in ids] == ["1", "1", "2", "3"]
    assert ids[0].rsplit("-", 1)[0] == ids[2].rsplit("-", 1)[0] != ids[1].rsplit("-", 1)[0]
    assert len(set(ids)) == 4
    assert [i.row_id for i in read(path)] == ids  # stable across reads


def test_derived_id_changes_with_an_edit_or_technique(tmp_path: Path) -> None:
    before = jobs(read(write(tmp_path / "m.csv", "prompt,style\na,oil\nb,ink\n")))
    after = jobs(read(write(tmp_path / "m.csv", "prompt,style\na,oil\nb,inks\n")))
    assert before[0].row_id == after[0].row_id and before[1].row_id != after[1].row_id
    other = jobs(read(tmp_path / "m.csv", technique="other"))
    assert other[0].row_id != after[0].row_id


def test_rows_can_be_read_again(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "prompt\na\na\n")
    manifest = open_manifest(ManifestOptions(path, technique="t"))
    assert list(manifest.rows()) == list(manifest.rows())


# -- JSONL ----------------------------------------------------------------------------------------


def write_jsonl(path: Path, *lines: Any) -> Path:
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    return write(path, text)


def test_jsonl_flat_rows(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "m.jsonl",
        {"id": "r1", "prompt": "a", "n": 3, "x": 2.5, "ok": True, "none": None},
        "",
        {"id": 7, "prompt": "b", "n": 3.0},
    )
    assert open_manifest(ManifestOptions(path, "t")).columns == (
        "id",
        "prompt",
        "n",
        "x",
        "ok",
        "none",
    )
    first, second = jobs(read(path))
    assert first.columns == ("r1", "a", "3", "2.5", "true", None)
    assert (second.line, second.row_id, second.columns) == (
        3,
        "7",
        ("7", "b", "3", None, None, None),
    )


def test_jsonl_bad_lines(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "m.ndjson",
        "{not json",
        {"id": "r1", "prompt": "a"},
        [1, 2],
        {"id": "r2", "prompt": "b", "style": "oil"},
        {"id": "r3", "prompt": {"nested": 1}},
        {"id": "r4"},
    )
    items = read(path)
    assert [(i.index, i.line) for i in items] == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    reasons = dict(problems(items))
    assert reasons[1].startswith("not valid JSON")
    assert reasons[3] == "not a JSON object (a list)"
    assert 4 not in reasons  # a key first seen on a later line is a column too
    assert reasons[5] == "column 'prompt' holds a nested object; give it as text"
    assert reasons[6] == "row has no input values"


def test_jsonl_native_rows(tmp_path: Path) -> None:
    inputs = [
        {"id": "prompt", "type": "text", "value": "a cat"},
        {"id": "negative", "type": "text", "value": ""},
        {"id": "ref", "type": "imageUrl", "value": "https://x.io/r.png"},
    ]
    path = write_jsonl(tmp_path / "m.jsonl", {"id": "r1", "technique_id": "t9", "inputs": inputs})
    (job,) = jobs(read(path))
    assert job.technique_id == "t9"
    assert job.inputs == (
        Input("prompt", "text", "a cat"),
        Input("ref", "imageUrl", "https://x.io/r.png"),
    )
    assert job.columns == ("r1", "t9", json.dumps(inputs, separators=(",", ":")))


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ("text", "'inputs' must be a list of {id, type, value} objects"),
        (
            [{"id": "p", "type": "text"}],
            "inputs[0] must be an object with string id, type and value",
        ),
        ([{"id": "p", "type": "audio", "value": "x"}], "inputs[0]: type 'audio' is not one of"),
        ([{"id": "p", "type": "text", "value": "a"}] * 2, "inputs[1]: input 'p' appears twice"),
        (
            [{"id": "r", "type": "imageUrl", "value": "x"}],
            "inputs[0] ('r'): file 'x' not found",
        ),
        ([], "row has no input values"),
    ],
)
def test_jsonl_native_rows_are_checked(tmp_path: Path, inputs: Any, reason: str) -> None:
    path = write_jsonl(tmp_path / "m.jsonl", {"id": "r1", "inputs": inputs})
    ((line, got),) = problems(read(path))
    assert line == 1 and got.startswith(reason)


def test_jsonl_mixed_flat_and_native(tmp_path: Path) -> None:
    native = [{"id": "prompt", "type": "text", "value": "b"}]
    path = write_jsonl(
        tmp_path / "m.jsonl",
        {"id": "r1", "prompt": "a", "inputs": None},
        {"id": "r2", "inputs": native},
        {"id": "r3", "prompt": "c", "inputs": native},
    )
    items = read(path)
    assert [i.inputs for i in items if isinstance(i, Job)] == [
        (Input("prompt", "text", "a"),), (Input("prompt", "text", "b"),),
    ]  # fmt: skip
    assert problems(items) == [(3, "row has both 'inputs' and input column 'prompt'")]


def test_jsonl_columns_are_every_key_in_first_seen_order(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "m.jsonl",
        {"id": "r1", "prompt": "a"},
        {"id": "r2", "inputs": [{"id": "prompt", "type": "text", "value": "b"}]},
        {"id": "r3", "technique_id": "other", "prompt": "c", "style": "ink"},
    )
    manifest = open_manifest(ManifestOptions(path, technique="t"))
    assert manifest.columns == ("id", "prompt", "inputs", "technique_id", "style")
    jobs = [i for i in manifest.rows() if isinstance(i, Job)]
    assert [j.technique_id for j in jobs] == ["t", "t", "other"]


def test_jsonl_file_problems(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": "\xff"}\n')
    assert f"{path}:2: not UTF-8" in manifest_error(path)
    assert "empty" in manifest_error(write(tmp_path / "e.jsonl", "\n \n"))
    assert "no line holds a JSON object" in manifest_error(write(tmp_path / "b.jsonl", "[1]\n"))


# -- XLSX -----------------------------------------------------------------------------------------


def make_xlsx(path: Path) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Runs"
    sheet.append([None])  # a blank first row: the header is the first non-empty one
    sheet.append(["id", "prompt", "n", "x", "flag", "day", "at", "clock", "share", "exact"])
    sheet.append(["r1", "a cat", 3.0, 0.1, True, dt.date(2024, 1, 5),
                  dt.datetime(2024, 1, 5, 9, 30, 15), dt.time(14, 5), 0.25, 0.125])  # fmt: skip
    sheet.append(["r2", "a dog", 7, 2.5, False, None, dt.datetime(2024, 2, 1), None, 1, None])
    sheet["I3"].number_format = "0%"
    sheet["J3"].number_format = "0.00%"
    sheet["I4"].number_format = "0%"
    sheet["L3"].number_format = "0%"  # a styled empty cell beyond the last column
    sheet["A9"].number_format = "0%"  # and rows below the last one
    sheet.cell(row=12, column=3, value="")
    book.create_sheet("Other").append(["id", "prompt"])
    book.save(path)
    return path


def test_xlsx_cells_read_as_a_person_sees_them(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "m.xlsx")
    manifest = open_manifest(ManifestOptions(path, technique="t"))
    assert manifest.columns == (
        "id",
        "prompt",
        "n",
        "x",
        "flag",
        "day",
        "at",
        "clock",
        "share",
        "exact",
    )
    first, second = jobs(list(manifest.rows()))
    assert (first.index, first.line, second.line) == (0, 3, 4)
    assert first.columns == ("r1", "a cat", "3", "0.1", "TRUE", "2024-01-05",
                             "2024-01-05 09:30:15", "14:05:00", "25%", "12.50%")  # fmt: skip
    assert second.columns == ("r2", "a dog", "7", "2.5", "FALSE", None,
                              "2024-02-01 00:00:00", None, "100%", None)  # fmt: skip


def test_xlsx_sheets(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "m.xlsx")
    assert open_manifest(ManifestOptions(path, "t", sheet="Other")).columns == ("id", "prompt")
    assert "no sheet 'Nope' (sheets: Runs, Other)" in manifest_error(path, sheet="Nope")
    assert "not a readable XLSX" in manifest_error(write(tmp_path / "bad.xlsx", "not a zip"))


# -- Parquet --------------------------------------------------------------------------------------


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "id": ["r1", "r2", None, "r4"],
            "prompt": ["a", "b", None, "d"],
            "n": pa.array([3, None, None, -1], pa.int64()),
            "x": [0.1, 3.0, None, float("nan")],
            "flag": [True, False, None, None],
            "at": pa.array([dt.datetime(2024, 1, 5, 9, 30), None, None, None], pa.timestamp("us")),
            "day": pa.array([dt.date(2024, 1, 5), None, None, None], pa.date32()),
        }
    )
    path = tmp_path / "m.parquet"
    # as pandas saves a DataFrame with a named index: the index column is not data
    pq.write_table(table.append_column("__index_level_0__", pa.array([9, 8, 7, 6])), path)
    assert open_manifest(ManifestOptions(path, "t")).columns == tuple(table.column_names)
    items = jobs(read(path, chunk_rows=2))
    assert [(j.index, j.line) for j in items] == [(0, 2), (1, 3), (2, 5)]  # all-empty row skipped
    assert items[0].columns == ("r1", "a", "3", "0.1", "true", "2024-01-05 09:30:00", "2024-01-05")
    assert items[1].columns == ("r2", "b", None, "3", "false", None, None)
    assert items[2].columns == ("r4", "d", "-1", None, None, None, None)
    assert "not a readable Parquet" in manifest_error(write(tmp_path / "bad.parquet", "nope"))
