"""What the caller asks of a manifest, and which file formats it may be."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ManifestError

#: suffix (lower case) -> reader name
FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
    ".parquet": "parquet",
}


@dataclass(frozen=True)
class ManifestOptions:
    """How to read a manifest.

    ``input_map`` maps a column (full header text or its bare name, the part before ``:``) to an
    input id and an optional type. ``pass_through`` columns go to the report only; ``ignore``
    columns go nowhere.
    """

    path: Path
    technique: str | None = None
    id_column: str = "id"
    sheet: str | None = None
    input_map: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    pass_through: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()
    chunk_rows: int = 5000


def format_of(path: Path) -> str:
    """The reader for ``path``; raises ManifestError for a suffix no reader handles or a file
    that cannot be opened, before any parsing starts."""
    suffix = path.suffix.lower()
    kind = FORMATS.get(suffix)
    if kind is None:
        known = ", ".join(FORMATS)
        raise ManifestError(
            f"{path}: unsupported manifest type '{suffix or '(no suffix)'}'; use one of {known}"
        )
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ManifestError(f"{path}: is a directory, not a manifest file") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return kind
