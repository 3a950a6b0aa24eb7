"""The shape every format reader has: a header, then records, each read afresh from the file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

#: ``(line, cells)`` with a cell per column (None when empty), or ``(line, reason)`` for a record
#: that cannot be split into cells. Readers never yield blank records.
Record = tuple[int, list[str | None] | str]


class Source(Protocol):
    def header(self) -> tuple[list[str], int]:
        """The header's names and its line; raises ManifestError when there is none."""
        ...

    def records(self) -> Iterator[Record]:
        """The data records after the header, streamed."""
        ...
