"""Manifests: CSV/TSV, JSONL, XLSX and Parquet, read as a stream of jobs and row problems.

Memory stays flat however long the file: rows are read, validated and handed on in chunks, and
repeated ids are found through an on-disk registry rather than a set in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from ..keys import canonical_json
from ..models import INPUT_TYPES, Input, Job, RowProblem
from .columns import Layout, layout
from .readers import NATIVE, CsvReader, JsonlReader, ParquetReader, Record, XlsxReader, check_format
from .rowids import Registry

__all__ = ["Manifest", "ManifestOptions", "open_manifest"]


@dataclass(frozen=True)
class ManifestOptions:
    path: Path
    technique: str | None = None
    id_column: str = "id"
    sheet: str | None = None
    input_map: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    pass_through: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()
    chunk_rows: int = 5000


class Manifest:
    def __init__(self, options: ManifestOptions) -> None:
        self.options = options
        path = options.path
        suffix = check_format(path)
        self._jsonl: JsonlReader | None = None
        self._reader: CsvReader | XlsxReader | ParquetReader | None = None
        if suffix in (".jsonl", ".ndjson"):
            self._jsonl = JsonlReader(path)
            header = self._jsonl.header()
        else:
            if suffix == ".xlsx":
                self._reader = XlsxReader(path, options.sheet)
            elif suffix == ".parquet":
                self._reader = ParquetReader(path, options.chunk_rows)
            else:
                self._reader = CsvReader(path, "\t" if suffix == ".tsv" else ",")
            header = self._reader.header()
        unnamed = frozenset(i for i, name in enumerate(header) if not name.strip())
        passed = options.pass_through | ({NATIVE} if self._jsonl and NATIVE in header else set())
        self.layout: Layout = layout(
            path, header, options.id_column, options.input_map, frozenset(passed),
            options.ignore, unnamed,
        )  # fmt: skip
        self._unnamed = unnamed
        self._native_pos = header.index(NATIVE) if self._jsonl and NATIVE in header else None

    @property
    def columns(self) -> tuple[str, ...]:
        """The manifest's columns as the report keeps them."""
        return self.layout.report_names

    @property
    def input_ids(self) -> frozenset[str]:
        return frozenset(c.input_id for c in self.layout.inputs)

    def _records(self) -> Iterator[Record]:
        if self._jsonl is not None:
            return self._jsonl.records(list(self.layout.header))
        assert self._reader is not None
        return self._reader.records()

    def rows(self) -> Iterator[Job | RowProblem]:
        registry = Registry()
        try:
            records = self._records()
            index = 0
            while chunk := list(islice(records, self.options.chunk_rows)):
                items = [
                    self._item(index + k, line, cells) for k, (line, cells) in enumerate(chunk)
                ]
                index += len(items)
                yield from self._identify(items, registry)
        finally:
            registry.close()

    # -- one row ---------------------------------------------------------------------------

    def _item(self, index: int, line: int, cells: list[str | None] | str) -> Job | RowProblem:
        lay = self.layout
        if isinstance(cells, str):
            return RowProblem(index, line, None, cells)
        report = tuple(cells[i] if i < len(cells) else None for i in lay.report)
        extra = [i for i in range(len(lay.header), len(cells)) if cells[i] is not None]
        row_id = _strip(cells, lay.id_pos)

        def problem(reason: str) -> RowProblem:
            return RowProblem(index, line, row_id or None, reason, report)

        if extra:
            return problem(f"row has {len(cells)} cells, the header has {len(lay.header)}")
        stray = [i for i in self._unnamed if i < len(cells) and (cells[i] or "").strip()]
        if stray:
            return problem(f"cell in column {stray[0] + 1} has a value but no header name")
        if lay.id_pos is not None and not row_id:
            return problem(f"empty id (column '{self.options.id_column}')")
        technique = _strip(cells, lay.technique_pos) or (self.options.technique or "").strip()
        if not technique:
            return problem("no technique: pass --technique or fill the technique_id column")
        native = _strip(cells, self._native_pos)
        inputs = self._native(native) if native else self._flat(cells)
        if isinstance(inputs, str):
            return problem(inputs)
        if not inputs:
            return problem("row has no input values")
        return Job(index, line, row_id or "", technique, inputs, report)

    def _flat(self, cells: list[str | None]) -> tuple[Input, ...] | str:
        inputs = []
        for col in self.layout.inputs:
            value = cells[col.position] if col.position < len(cells) else None
            if value is None or not value.strip():
                continue  # an empty optional input is omitted, never sent empty
            if col.type != "text" and not _is_url(value):
                return f"column '{col.name}': '{_short(value)}' is not an http(s) URL"
            inputs.append(Input(col.input_id, col.type, value))
        return tuple(inputs)

    @staticmethod
    def _native(text: str) -> tuple[Input, ...] | str:
        try:
            items = json.loads(text)
        except ValueError:
            return "'inputs' is not valid JSON"
        if not isinstance(items, list):
            return "'inputs' must be a list of {id, type, value} objects"
        inputs, seen = [], set()
        for k, item in enumerate(items):
            if not isinstance(item, dict) or not all(
                isinstance(item.get(f), str) for f in ("id", "type", "value")
            ):
                return f"inputs[{k}] must be an object with string id, type and value"
            if item["type"] not in INPUT_TYPES:
                return f"inputs[{k}]: type '{item['type']}' is not one of {', '.join(INPUT_TYPES)}"
            if item["id"] in seen:
                return f"inputs[{k}]: input '{item['id']}' appears twice"
            seen.add(item["id"])
            if not item["value"].strip():
                continue
            if item["type"] != "text" and not _is_url(item["value"]):
                return f"inputs[{k}]: '{_short(item['value'])}' is not an http(s) URL"
            inputs.append(Input(item["id"], item["type"], item["value"]))
        return tuple(inputs)

    # -- ids ---------------------------------------------------------------------------------

    def _identify(
        self, items: list[Job | RowProblem], registry: Registry
    ) -> Iterator[Job | RowProblem]:
        if self.layout.id_pos is None:
            yield from self._derive(items, registry)
            return
        named = [(k, it) for k, it in enumerate(items) if it.row_id]
        firsts = registry.first_lines([(it.row_id or "", it.line) for _, it in named])
        dupes = {k: first for (k, _), first in zip(named, firsts, strict=True) if first is not None}
        for k, it in enumerate(items):
            if k in dupes:
                yield RowProblem(it.index, it.line, None,
                                 f"duplicate id '{it.row_id}' (first on line {dupes[k]})",
                                 it.columns, fatal=True)  # fmt: skip
            else:
                yield it

    def _derive(
        self, items: list[Job | RowProblem], registry: Registry
    ) -> Iterator[Job | RowProblem]:
        """No id column: the id is the row's content plus its occurrence, so identical rows
        stay distinct and an edited row is a new row."""
        keys = [_content_key(it) for it in items]
        counts = registry.occurrences(keys)
        for it, key, n in zip(items, keys, counts, strict=True):
            row_id = f"auto-{key}-{n}"
            if isinstance(it, Job):
                yield Job(it.index, it.line, row_id, it.technique_id, it.inputs, it.columns)
            else:
                yield RowProblem(it.index, it.line, row_id, it.reason, it.columns, it.fatal)


def _content_key(item: Job | RowProblem) -> str:
    technique = item.technique_id if isinstance(item, Job) else ""
    payload: list[Any] = [technique, list(item.columns)]
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


def _strip(cells: list[str | None], pos: int | None) -> str | None:
    if pos is None or pos >= len(cells) or cells[pos] is None:
        return None
    return (cells[pos] or "").strip() or None


def _is_url(value: str) -> bool:
    v = value.strip().lower()
    return v.startswith(("http://", "https://")) and len(v) > 8


def _short(value: str) -> str:
    return value if len(value) <= 40 else value[:37] + "..."


def open_manifest(options: ManifestOptions) -> Manifest:
    return Manifest(options)
