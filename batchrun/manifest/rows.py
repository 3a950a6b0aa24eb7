"""One record to a draft row: its report cells, id, technique, and inputs or why it cannot run.
Row ids (which need the rows around it) are settled afterwards, in ``rowids``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

from ..errors import ManifestError
from ..models import FILE_PREFIX, INPUT_TYPES, Input
from .cells import ErrorValue
from .columns import NATIVE_COLUMN, Layout
from .files import LocalFiles
from .source import Record

# Scheme and a host; anything further is the server's business. (urlsplit is 10x slower.)
_HTTP_URL = re.compile(r"https?://[^\s/?#@]*@?[^\s/?#@:]", re.IGNORECASE)


@dataclass(slots=True)
class Draft:
    index: int
    line: int
    id_cell: str | None  # stripped; None when empty or there is no id column
    technique: str  # "" when the row has none
    inputs: tuple[Input, ...]
    reason: str | None  # why the row cannot be sent, if it cannot
    columns: tuple[str | None, ...]


class RowBuilder:
    """Turns records into drafts. ``build`` runs once per row, so it favours locals and
    C-level helpers (itemgetter) over small methods."""

    def __init__(
        self, path: Path, layout: Layout, technique: str | None, files: LocalFiles | None = None
    ) -> None:
        self.path, self.layout = path, layout
        self.files = files  # local files as imageUrl/videoUrl values; None: URLs only
        self.default_technique = (technique or "").strip()
        self.blank_report: tuple[str | None, ...] = (None,) * len(layout.report)
        self._report: Callable[[list[str | None]], tuple[str | None, ...]]
        if len(layout.report) > 1:
            self._report = itemgetter(*layout.report)
        else:  # itemgetter of one position returns the cell, not a tuple
            self._report = lambda cells: tuple(cells[i] for i in layout.report)
        self._inputs = [(c.position, c.input_id, c.type, c.name) for c in layout.inputs]

    def build(self, index: int, record: Record) -> Draft:
        line, cells = record
        if isinstance(cells, str):
            return Draft(index, line, None, self.default_technique, (), cells, self.blank_report)
        lay = self.layout
        width = len(cells)
        if width < lay.width:
            cells = cells + [None] * (lay.width - width)
        report = self._report(cells)
        error = None  # a spreadsheet error (#N/A...) in the id or technique cell
        id_cell = cells[lay.id_pos] if lay.id_pos is not None else None
        if isinstance(id_cell, ErrorValue):
            error, id_cell = self._error(lay.id_pos, id_cell), None
        elif id_cell is not None:
            id_cell = id_cell.strip() or None
        technique = cells[lay.technique_pos] if lay.technique_pos is not None else None
        if isinstance(technique, ErrorValue):
            error, technique = error or self._error(lay.technique_pos, technique), None
        technique = (technique and technique.strip()) or self.default_technique
        for pos in lay.unnamed:
            if not _empty(cells[pos]):
                raise ManifestError(
                    f"{self.path}:{line}: column {pos + 1} has a value but no header name; "
                    "name the column in the header"
                )
        reason = self._ragged(cells) if width > lay.width else None
        reason = reason or error
        if reason is None and lay.id_pos is not None and id_cell is None:
            reason = "empty id"
        if reason is None and not technique:
            reason = "no technique: pass --technique or fill the technique_id column"
        inputs: tuple[Input, ...] = ()
        if reason is None:
            found = self._values(cells, index)
            if isinstance(found, str):
                reason = found
            elif not found:
                reason = "row has no input values"
            else:
                inputs = found
        return Draft(index, line, id_cell, technique, inputs, reason, report)

    def _error(self, pos: int | None, value: ErrorValue) -> str:
        names: dict[int | None, str] = dict(zip(self.layout.report, self.layout.names, strict=True))
        return f"column '{names.get(pos, '')}': {error_text(value)}"

    def _ragged(self, cells: list[str | None]) -> str | None:
        used = len(cells)
        while used > self.layout.width and _empty(cells[used - 1]):
            used -= 1  # trailing empty cells are padding, not data
        if used > self.layout.width:
            return f"row has {used} cells, header has {self.layout.width}"
        return None

    def _values(self, cells: list[str | None], index: int = 0) -> tuple[Input, ...] | str:
        native_pos = self.layout.native_pos
        native = cells[native_pos] if native_pos is not None else None
        if native is not None:
            filled = [name for pos, _, _, name in self._inputs if not _empty(cells[pos])]
            if filled:
                return f"row has both '{NATIVE_COLUMN}' and input column '{filled[0]}'"
            return native_inputs(native, self.files, index)
        inputs = []
        for pos, input_id, type_, name in self._inputs:
            value = cells[pos]
            if isinstance(value, ErrorValue):
                return f"column '{name}': {error_text(value)}"
            checked = _checked(input_id, type_, value, f"column '{name}'", self.files, index)
            if isinstance(checked, str):
                return checked
            if checked is not None:
                inputs.append(checked)
        return tuple(inputs)


def native_inputs(
    text: str, files: LocalFiles | None = None, index: int = 0
) -> tuple[Input, ...] | str:
    """The API's own ``inputs`` list (compact JSON text), checked; empty values left out."""
    items = json.loads(text)
    if not isinstance(items, list):
        return f"'{NATIVE_COLUMN}' must be a list of {{id, type, value}} objects"
    inputs: list[Input] = []
    seen: set[str] = set()
    for k, item in enumerate(items):
        where = f"{NATIVE_COLUMN}[{k}]"
        if not isinstance(item, dict) or not all(
            isinstance(item.get(f), str) for f in ("id", "type", "value")
        ):
            return f"{where} must be an object with string id, type and value"
        input_id, type_, value = item["id"].strip(), item["type"], item["value"]
        if not input_id:
            return f"{where}: empty input id"
        if type_ not in INPUT_TYPES:
            return f"{where}: type '{_short(type_)}' is not one of {', '.join(INPUT_TYPES)}"
        if input_id in seen:
            return f"{where}: input '{input_id}' appears twice"
        seen.add(input_id)
        checked = _checked(input_id, type_, value, f"{where} ('{input_id}')", files, index)
        if isinstance(checked, str):
            return checked
        if checked is not None:
            inputs.append(checked)
    return tuple(inputs)


def _checked(
    input_id: str,
    type_: str,
    value: str | None,
    label: str,
    files: LocalFiles | None = None,
    index: int = 0,
) -> Input | str | None:
    """One input value: None when empty (the API rejects empty optional inputs, so they are
    left out), the reason when a URL input holds neither an http(s) URL nor a local file FLORA
    would take, else the Input (a local file's by its content: see ``Input``)."""
    if value is None or not value.strip():
        return None
    if type_ != "text":
        value = value.strip()
        if not is_http_url(value):
            if files is None:
                return f"{label}: '{_short(value)}' is not an http(s) URL"
            found = files.check(value, type_, index)
            if isinstance(found, str):
                return f"{label}: {found}"
            return Input(input_id, type_, FILE_PREFIX + found.sha256, source=value)
    return Input(input_id, type_, value)


def error_text(value: ErrorValue) -> str:
    return f"cell {value.cell} holds the error {value}, not a value (fix or clear the cell)"


def is_http_url(value: str) -> bool:
    return _HTTP_URL.match(value) is not None


def _empty(value: str | None) -> bool:
    return value is None or not value.strip()


def _short(value: str) -> str:
    return value if len(value) <= 60 else value[:57] + "..."
