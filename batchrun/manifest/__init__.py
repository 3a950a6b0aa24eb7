"""Manifests (CSV/TSV, JSONL, XLSX, Parquet) read as a stream of jobs and row problems.

Memory stays flat however long the file: records are read, checked and handed on a chunk at a
time, and repeated ids are found through an on-disk registry (see ``rowids``).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from ..models import Job, RowProblem
from .columns import Layout, build_layout
from .csvfile import CsvSource
from .files import LocalFiles
from .jsonlfile import JsonlSource
from .options import ManifestOptions, format_of
from .parquetfile import ParquetSource
from .rowids import Registry, derived_id, derived_key
from .rows import Draft, RowBuilder
from .source import Source
from .xlsxfile import XlsxSource

__all__ = ["Manifest", "ManifestOptions", "open_manifest"]


class Manifest:
    """A manifest whose header has been read and checked (ManifestError if it is wrong).

    ``columns`` are the columns the report keeps, named exactly as in the header. ``rows()``
    reads the file again on each call and yields, in file order, a Job or a RowProblem per data
    row; it raises ManifestError if the file turns out unreadable partway.
    """

    def __init__(self, options: ManifestOptions) -> None:
        self.options = options
        kind = format_of(options.path)
        self._source = _source(kind, options)
        names, line = self._source.header()
        self._layout: Layout = build_layout(names, line, options, jsonl=kind == "jsonl")
        self.columns: tuple[str, ...] = self._layout.names
        # Local files the rows name (imageUrl/videoUrl values that are paths), filled by rows().
        self.local_files = LocalFiles(options.path.resolve().parent)

    @property
    def input_ids(self) -> frozenset[str]:
        """The input ids the columns feed (JSONL rows in the API's form may add others)."""
        return frozenset(c.input_id for c in self._layout.inputs)

    def rows(self) -> Iterator[Job | RowProblem]:
        self.local_files = LocalFiles(self.options.path.resolve().parent)
        builder = RowBuilder(
            self.options.path, self._layout, self.options.technique, self.local_files
        )
        records = self._source.records()
        size = max(1, self.options.chunk_rows)
        registry = Registry()
        try:
            index = 0
            while drafts := [
                builder.build(index + k, r) for k, r in enumerate(islice(records, size))
            ]:
                index += len(drafts)
                yield from self._settle(drafts, registry)
        finally:
            registry.close()
            close = getattr(records, "close", None)
            if close is not None:
                close()  # release the file now, not when the generator is collected

    def _settle(self, drafts: list[Draft], registry: Registry) -> Iterator[Job | RowProblem]:
        if self._layout.id_pos is None:
            keys = [derived_key(d.technique, d.columns) for d in drafts]
            counts = registry.occurrences(keys)
            for d, key, n in zip(drafts, keys, counts, strict=True):
                yield _finish(d, derived_id(key, n))
            return
        named = [d for d in drafts if d.id_cell is not None]
        firsts = registry.first_lines([(d.id_cell or "", d.line) for d in named])
        repeats = {id(d): first for d, first in zip(named, firsts, strict=True) if first}
        for d in drafts:
            first = repeats.get(id(d))
            if first is None:
                yield _finish(d, d.id_cell)
            else:
                # Fatal: two rows under one id would share one journal entry and one run.
                reason = f"duplicate id '{d.id_cell}' (first on line {first})"
                yield RowProblem(d.index, d.line, None, reason, d.columns, fatal=True)


def _finish(d: Draft, row_id: str | None) -> Job | RowProblem:
    if d.reason is None and row_id:
        return Job(d.index, d.line, row_id, d.technique, d.inputs, d.columns)
    # A draft without a row id always has a reason ("empty id" at least).
    return RowProblem(d.index, d.line, row_id, d.reason or "empty id", d.columns)


def _source(kind: str, options: ManifestOptions) -> Source:
    path = options.path
    if kind == "jsonl":
        return JsonlSource(path)
    if kind == "xlsx":
        return XlsxSource(path, options.sheet)
    if kind == "parquet":
        return ParquetSource(path, options.chunk_rows)
    return CsvSource(path, "\t" if path.suffix.lower() == ".tsv" else ",")


def open_manifest(options: ManifestOptions) -> Manifest:
    return Manifest(options)
