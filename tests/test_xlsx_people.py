"""Workbooks as people's spreadsheets are: a chart sheet first, number formats, error cells,
Excel's extensions, a date-time in the header row.

The workbooks are built here with openpyxl. Where openpyxl writes less than Excel does (it
rounds floats to 16 digits, never stores a formula's cached result, adds no extensions), the
sheet's XML is edited afterwards into what Excel writes."""

from __future__ import annotations

import datetime as dt
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from openpyxl.chart import BarChart, Reference

from batchrun.errors import ManifestError
from batchrun.manifest import ManifestOptions, open_manifest
from batchrun.manifest.numfmt import format_number
from batchrun.models import Job, RowProblem
from tests.support.cli import run_cli
from tests.support.emulator import EmulatorProcess

Item = Job | RowProblem


def read(path: Path, technique: str | None = "tech", **kw: Any) -> list[Item]:
    return list(open_manifest(ManifestOptions(path, technique=technique, **kw)).rows())


def manifest_error(path: Path, **kw: Any) -> str:
    with pytest.raises(ManifestError) as err:
        read(path, **kw)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    return message


def edit_sheet(path: Path, member: str, edit: Callable[[str], str]) -> Path:
    """Rewrite one part of a saved workbook (``xl/worksheets/sheet1.xml``)."""
    with zipfile.ZipFile(path) as src:
        parts = {info: src.read(info.filename) for info in src.infolist()}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info, data in parts.items():
            if info.filename == member:
                data = edit(data.decode("utf-8")).encode("utf-8")
            out.writestr(info, data)
    return path


def stored_value(cell: str, text: str) -> Callable[[str], str]:
    """Store ``text`` as a numeric cell's value, as Excel writes it (17 significant digits)."""

    def edit(xml: str) -> str:
        pattern = rf'(<c r="{cell}"[^>]*>)<v>[^<]*</v>'
        new, count = re.subn(pattern, rf"\g<1><v>{text}</v>", xml)
        assert count == 1, xml
        return new

    return edit


def plan(path: Path, base_url: str, *extra: str | Path) -> tuple[int, str, str]:
    result = run_cli("plan", path, "-t", "text-to-image", "--base-url", base_url,
                     "--state-dir", path.parent / "state", *extra)  # fmt: skip
    assert "internal error" not in result.stderr, result.stderr
    return result.returncode, result.stdout, result.stderr


# -- 5. chart sheets ------------------------------------------------------------------------------


def chart_first(path: Path) -> Path:
    """What Excel's "Move chart > New sheet" leaves: the chart sheet in front of the data."""
    book = Workbook()
    data = book.active
    assert data is not None
    data.title = "Prompts"
    data.append(["id", "prompt", "votes"])
    data.append(["a1", "A fox", 3])
    data.append(["a2", "An owl", 5])
    chart = BarChart()
    chart.add_data(Reference(data, min_col=3, min_row=1, max_row=3), titles_from_data=True)
    book.create_chartsheet("Votes chart", 0).add_chart(chart)
    book.create_sheet("Notes").append(["id", "prompt"])
    book.save(path)
    assert load_workbook(path, read_only=True).sheetnames == ["Votes chart", "Prompts", "Notes"]
    return path


def test_a_chart_sheet_first_is_skipped(tmp_path: Path) -> None:
    path = chart_first(tmp_path / "campaign.xlsx")
    manifest = open_manifest(ManifestOptions(path, technique="t"))
    assert manifest.columns == ("id", "prompt", "votes")
    items = list(manifest.rows())
    assert [(i.row_id, i.columns) for i in items if isinstance(i, Job)] == [
        ("a1", ("a1", "A fox", "3")),
        ("a2", ("a2", "An owl", "5")),
    ]


def test_sheet_naming_a_chart_sheet_is_a_manifest_error(tmp_path: Path) -> None:
    path = chart_first(tmp_path / "campaign.xlsx")
    message = manifest_error(path, sheet="Votes chart")
    assert "'Votes chart' is a chart sheet" in message
    assert "worksheets: Prompts, Notes" in message
    assert "no sheet 'Nope' (sheets: Prompts, Notes)" in manifest_error(path, sheet="Nope")


def test_a_workbook_of_chart_sheets_only(tmp_path: Path) -> None:
    path = chart_first(tmp_path / "campaign.xlsx")
    book = load_workbook(path)
    del book["Prompts"], book["Notes"]
    book.save(path)
    assert "has no worksheets (only chart sheets: Votes chart)" in manifest_error(path)


@pytest.mark.e2e
def test_chart_sheets_through_the_cli(emulator: EmulatorProcess, tmp_path: Path) -> None:
    path = chart_first(tmp_path / "campaign.xlsx")
    code, out, err = plan(path, emulator.base_url, "--pass-through", "votes")
    assert code == 0, err
    assert "2 rows" in out
    code, out, err = plan(path, emulator.base_url, "--sheet", "Votes chart")
    assert code == 2
    (line,) = err.strip().splitlines()
    assert str(path) in line and "'Votes chart' is a chart sheet" in line
    assert "worksheets: Prompts, Notes" in line


# -- 6. numbers as the cell shows them ------------------------------------------------------------

FORMATS: list[tuple[str, float | int, str | None, str]] = [
    # header, value, number format, text a person sees
    ("general", 23.31, None, "23.31"),  # stored as Excel stores it: 23.310000000000002
    ("noise", 0.3, None, "0.3"),  # =0.1+0.2, stored 0.30000000000000004
    ("third", 1 / 3, None, "0.333333333333333"),
    ("big", 123456789012, None, "123456789012"),
    ("two_places", 1.12345, "0.00", "1.12"),
    ("half_up", 2.675, "0.00", "2.68"),
    ("whole", 2.5, "0", "3"),
    ("thousands", 1234567, "#,##0", "1,234,567"),
    ("money", 1234.5, "#,##0.00", "1,234.50"),
    ("negative", -1234.5, '"$"#,##0.00;("$"#,##0.00)', "($1,234.50)"),
    ("percent", 0.25, "0%", "25%"),
    ("percent2", 0.125, "0.0%", "12.5%"),
    ("science", 12345.678, "0.00E+00", "1.23E+04"),
    ("text_fmt", 42, "@", "42"),
    ("zip", 7, "00000", "00007"),
    ("phone", 5551234567, "(###) ###-####", "(555) 123-4567"),
    ("fraction", 0.75, "# ?/?", "3/4"),
    ("zero", 0, '0;-0;"none"', "none"),
    ("euro", 1234.5, "#,##0.00 [$€-407]", "1,234.50 €"),
    ("millions", 2500000, '0.0,,"M"', "2.5M"),
    ("accounting", 1234.5, '_("$"* #,##0.00_);_("$"* (#,##0.00);_("$"* "-"??_);_(@_)', "$1,234.50"),
]


def formatted_book(path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "prompt", *(h for h, _, _, _ in FORMATS), "day", "took"])
    sheet.append(["r1", "a cat", *(v for _, v, _, _ in FORMATS),
                  dt.date(2026, 11, 28), dt.timedelta(hours=26, minutes=3, seconds=4)])  # fmt: skip
    for k, (_, _, fmt, _) in enumerate(FORMATS, start=3):
        if fmt is not None:
            sheet.cell(row=2, column=k).number_format = fmt
    book.save(path)
    edit_sheet(path, "xl/worksheets/sheet1.xml", stored_value("C2", "23.310000000000002"))
    return edit_sheet(path, "xl/worksheets/sheet1.xml", stored_value("D2", "0.30000000000000004"))


def test_numbers_read_as_their_format_shows_them(tmp_path: Path) -> None:
    path = formatted_book(tmp_path / "m.xlsx")
    with zipfile.ZipFile(path) as book:
        assert b"<v>23.310000000000002</v>" in book.read("xl/worksheets/sheet1.xml")
    (job,) = read(path)
    assert isinstance(job, Job)
    seen = dict(zip(open_manifest(ManifestOptions(path, "t")).columns, job.columns, strict=True))
    for header, _, fmt, shown in FORMATS:
        assert seen[header] == shown, (header, fmt)
    assert (seen["day"], seen["took"]) == ("2026-11-28", "26:03:04")
    sent = {i.id: i.value for i in job.inputs}
    assert (sent["general"], sent["two_places"], sent["zip"]) == ("23.31", "1.12", "00007")


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (0.1 + 0.2, "General", "0.3"),
        (1e20, "General", "1E+20"),
        (0.00001, "General", "1E-05"),
        (3.0, "General", "3"),
        (1.005, "0.00", "1.01"),
        (-0.4, "0", "-0"),
        (9.995, "0.00E+00", "1.00E+01"),
        (12345, "##0.0E+0", "12.3E+3"),
        (0.5, "#.00", ".50"),
        (12.5, ".00", "12.50"),
        (1.5, "# ??/??", "1  1/2"),
        (3, "# ?/?", "3"),
        (0.3, "?/?", "2/7"),
        (0.3, "# ?/8", "2/8"),
        (1234567, '#,##0,"K"', "1,235K"),
        (-5, "0;;", ""),
        (5, ";;;", ""),
        (1500, '[>=1000]#,##0,"K";0', "2K"),
        (999, '[>=1000]#,##0,"K";0', "999"),
        (12, "0.0##", "12.0"),
        (12.34567, "0.0##", "12.346"),
        (5, '0" units"', "5 units"),
        (5, "[Red]0.00", "5.00"),
        (1234.5, "[$-409]#,##0.00", "1,234.50"),
        (-1234.5, "#,##0.00;[Red]-#,##0.00", "-1,234.50"),
        (1e300, "0.00", "1" + "0" * 300 + ".00"),
    ],
)
def test_number_formats(value: float, fmt: str, shown: str) -> None:
    assert format_number(value, fmt) == shown


PIECES = [
    *'0#?.,%E+-/ "$()@;\\_*',
    "General",
    "[Red]",
    "[>=10]",
    "[$€-407]",
    '"x"',
    "d",
    "1",
    "?/?",
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=10).map("".join),
    st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**20), 10**20)),
)
def test_any_format_gives_text(fmt: str, value: float | int) -> None:
    assert isinstance(format_number(value, fmt), str)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_general_has_no_binary_noise(value: float) -> None:
    shown = format_number(value, "General")
    assert float(shown) == float(f"{value:.15g}")
    mantissa = shown.lstrip("-").split("E")[0].replace(".", "").strip("0")
    assert len(mantissa) <= 15 or (value.is_integer() and abs(value) < 1e15)


# -- 6. error cells -------------------------------------------------------------------------------


def with_errors(path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Runs"
    sheet.append(["id", "prompt", "style", "price", "notes"])
    sheet.append(["r1", "a cat", "ink", 3, "ok"])
    sheet.append(["r2", "#N/A", "ink", 3, "ok"])  # typed into the cell: openpyxl stores an error
    sheet.append(["r3", "a dog", "ink", "#DIV/0!", "ok"])  # a formula's cached error, below
    sheet.append(["r4", "an owl", "ink", 4, "#REF!"])
    sheet.append(["#VALUE!", "a bat", "ink", 5, "ok"])
    sheet.append(["r6", "a yak", "#NAME?", 5, "ok"])
    book.save(path)

    def formula(xml: str) -> str:
        new, count = re.subn(r'(<c r="D4"[^>]*>)<v>', r"\g<1><f>A1/0</f><v>", xml)
        assert count == 1
        return new

    return edit_sheet(path, "xl/worksheets/sheet1.xml", formula)


def test_error_cells_reject_their_row(tmp_path: Path) -> None:
    path = with_errors(tmp_path / "m.xlsx")
    items = read(path, pass_through=frozenset({"price", "notes"}))
    assert [i.row_id for i in items if isinstance(i, Job)] == ["r1", "r3", "r4"]
    problems = [(i.line, i.row_id, i.reason) for i in items if isinstance(i, RowProblem)]
    assert problems == [
        (3, "r2", "column 'prompt': cell B3 holds the error #N/A, not a value (fix or clear the cell)"),
        (6, None, "column 'id': cell A6 holds the error #VALUE!, not a value (fix or clear the cell)"),
        (7, "r6", "column 'style': cell C7 holds the error #NAME?, not a value (fix or clear the cell)"),
    ]  # fmt: skip
    # A column only copied to the report keeps what the cell shows; nothing is sent from it.
    r3 = next(i for i in items if i.row_id == "r3")
    assert r3.columns == ("r3", "a dog", "ink", "#DIV/0!", "ok")
    # The same column as an input: the row cannot run.
    items = read(path, pass_through=frozenset({"notes"}))
    (problem,) = [i for i in items if isinstance(i, RowProblem) and i.row_id == "r3"]
    assert problem.reason.startswith("column 'price': cell D4 holds the error #DIV/0!")


def test_an_error_in_the_header_row(tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "prompt", "#REF!"])
    sheet.append(["r1", "a", "b"])
    book.save(tmp_path / "m.xlsx")
    message = manifest_error(tmp_path / "m.xlsx")
    assert ":1: header cell C1 holds the error #REF!" in message


@pytest.mark.e2e
def test_error_cells_through_the_cli(emulator: EmulatorProcess, tmp_path: Path) -> None:
    path = with_errors(tmp_path / "m.xlsx")
    flags = ("--pass-through", "price", "--pass-through", "notes")
    code, out, err = plan(path, emulator.base_url, *flags)
    assert code == 2, err
    assert f"{path}:3: column 'prompt': cell B3 holds the error #N/A" in out
    assert f"{path}:6: column 'id': cell A6 holds the error #VALUE!" in out
    assert f"{path}:7: column 'style': cell C7 holds the error #NAME?" in out
    code, out, err = plan(path, emulator.base_url, *flags, "--skip-invalid")
    assert code == 0, err
    assert re.search(r"to send\s+3\b", out) and re.search(r"invalid\s+3\b", out), out


@pytest.mark.e2e
def test_numbers_and_error_cells_sent_by_run(emulator: EmulatorProcess, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "prompt", "style"])
    sheet.append(["r1", "a fox", 23.31])
    sheet.append(["r2", "an owl", 1.12345])
    sheet.append(["r3", "a bat", "#N/A"])
    sheet["C3"].number_format = "0.00"
    path = tmp_path / "m.xlsx"
    book.save(path)
    edit_sheet(path, "xl/worksheets/sheet1.xml", stored_value("C2", "23.310000000000002"))
    result = run_cli("run", path, "-t", "text-to-image", "--base-url", emulator.base_url,
                     "--state-dir", tmp_path / "state", "--report", tmp_path / "r.parquet")  # fmt: skip
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"{path}:4: column 'style': cell C4 holds the error #N/A" in line
    assert emulator.ledger()["runs"] == []
    result = run_cli("run", path, "-t", "text-to-image", "--base-url", emulator.base_url,
                     "--state-dir", tmp_path / "state", "--report", tmp_path / "r.parquet",
                     "--skip-invalid")  # fmt: skip
    assert result.returncode == 1, result.stderr  # sent what could be; one row rejected
    sent = sorted(
        {i["id"]: i["value"] for i in run["inputs"]}["style"] for run in emulator.ledger()["runs"]
    )
    assert sent == ["1.12", "23.31"]


# -- 12. openpyxl's warnings ----------------------------------------------------------------------

EXTENSIONS = (
    "<extLst>"
    '<ext uri="{78C0D931-6437-407d-A8EE-F0AAD7539E65}" '
    'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
    "<x14:conditionalFormattings/></ext>"
    '<ext uri="{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}" '
    'xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main">'
    '<x14:dataValidations count="0"/></ext>'
    '<ext uri="{3A4CF648-6AED-40f4-86FF-DC5316D8AED3}"/>'
    "</extLst>"
)


def as_excel_writes_it(path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "prompt"])
    sheet.append(["r1", "a cat"])
    book.save(path)
    return edit_sheet(
        path,
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace("</worksheet>", EXTENSIONS + "</worksheet>"),
    )


def test_openpyxl_warnings_are_silenced_only_while_reading(tmp_path: Path) -> None:
    path = as_excel_writes_it(tmp_path / "m.xlsx")
    with pytest.warns(UserWarning, match="extension is not supported and will be removed"):
        sheet = load_workbook(path, read_only=True).worksheets[0]
        list(sheet.iter_rows())  # what openpyxl says when nothing silences it
    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = read(path)
    assert [str(w.message) for w in caught] == []
    assert [i.row_id for i in items] == ["r1"]
    assert warnings.filters == before  # no process-wide change


@pytest.mark.e2e
def test_no_openpyxl_warnings_on_the_terminal(emulator: EmulatorProcess, tmp_path: Path) -> None:
    path = as_excel_writes_it(tmp_path / "m.xlsx")
    code, out, err = plan(path, emulator.base_url)
    assert code == 0, err
    assert "warn" not in err.lower() and "extension" not in (out + err), err


# -- 13. a date-time in the header ----------------------------------------------------------------


@pytest.mark.e2e
def test_a_date_time_header_is_a_column_name(emulator: EmulatorProcess, tmp_path: Path) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id", "prompt", dt.datetime(1973, 5, 20, 9, 15, 2), "reference:imageUrl"])
    sheet.append(["r1", "a cat", "x", "https://x.io/1.png"])
    path = tmp_path / "m.xlsx"
    book.save(path)
    manifest = open_manifest(ManifestOptions(path, technique="t"))
    assert manifest.columns == ("id", "prompt", "1973-05-20 09:15:02", "reference:imageUrl")
    (job,) = manifest.rows()
    assert isinstance(job, Job)
    assert [(i.id, i.type) for i in job.inputs] == [
        ("prompt", "text"), ("1973-05-20 09:15:02", "text"), ("reference", "imageUrl"),
    ]  # fmt: skip
    (job,) = read(path, pass_through=frozenset({"1973-05-20 09:15:02"}))
    assert isinstance(job, Job) and [i.id for i in job.inputs] == ["prompt", "reference"]
    code, out, err = plan(path, emulator.base_url, "--pass-through", "1973-05-20 09:15:02")
    assert code == 0, err
    assert "1 row" in out
