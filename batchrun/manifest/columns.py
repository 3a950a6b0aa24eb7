"""What each manifest column is: the row id, the technique, an input (with its type), a column
only copied to the report, or one to ignore."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ManifestError
from ..models import INPUT_TYPES

TECHNIQUE_COLUMN = "technique_id"


@dataclass(frozen=True, slots=True)
class InputColumn:
    position: int  # index into the row's cells
    name: str  # header text
    input_id: str
    type: str


@dataclass(frozen=True)
class Layout:
    """Roles of a header's columns. ``report`` lists the positions kept for the report."""

    header: tuple[str, ...]
    report: tuple[int, ...]
    id_pos: int | None
    technique_pos: int | None
    inputs: tuple[InputColumn, ...]

    @property
    def report_names(self) -> tuple[str, ...]:
        return tuple(self.header[i] for i in self.report)


def layout(
    path: Path,
    header: Sequence[str],
    id_column: str,
    input_map: Mapping[str, tuple[str, str | None]],
    pass_through: frozenset[str],
    ignore: frozenset[str],
    skip: frozenset[int] = frozenset(),
) -> Layout:
    """``skip``: positions with an empty header and no data (spreadsheet padding)."""
    seen: dict[str, int] = {}
    for pos, name in enumerate(header):
        if pos in skip:
            continue
        if not name.strip():
            raise ManifestError(f"{path}:1: column {pos + 1} has data but no header name")
        if name in seen:
            raise ManifestError(
                f"{path}:1: column '{name}' appears twice (columns {seen[name] + 1} and {pos + 1})"
            )
        seen[name] = pos
    bare = {name.split(":", 1)[0]: name for name in seen}
    for option, names in (("--pass-through", pass_through), ("--ignore", ignore),
                          ("--input", frozenset(input_map))):  # fmt: skip
        for name in names:
            if name not in seen and name not in bare:
                known = ", ".join(seen) or "none"
                raise ManifestError(f"{path}: {option} names column '{name}', which the manifest "
                                    f"does not have (columns: {known})")  # fmt: skip

    def resolve(names: frozenset[str]) -> set[str]:
        return {n if n in seen else bare[n] for n in names}

    ignored, passed = resolve(ignore), resolve(pass_through)
    mapped = {(k if k in seen else bare[k]): v for k, v in input_map.items()}
    inputs, report = [], []
    for name, pos in seen.items():
        if name in ignored:
            continue
        report.append(pos)
        if name in (id_column, TECHNIQUE_COLUMN) or name in passed:
            continue
        base, sep, declared = name.partition(":")
        if name in mapped:
            input_id, type_ = mapped[name]
            type_ = type_ or (declared if declared in INPUT_TYPES else "text")
        elif sep:
            if declared not in INPUT_TYPES:
                raise ManifestError(
                    f"{path}:1: column '{name}' declares type '{declared}'; input types are "
                    f"{', '.join(INPUT_TYPES)} (or use --input / --pass-through for this column)"
                )
            input_id, type_ = base, declared
        else:
            input_id, type_ = name, "text"
        inputs.append(InputColumn(pos, name, input_id, type_))
    ids = [c.input_id for c in inputs]
    for i in set(ids):
        if ids.count(i) > 1:
            cols = ", ".join(c.name for c in inputs if c.input_id == i)
            raise ManifestError(f"{path}:1: columns {cols} all feed input '{i}'")
    return Layout(
        header=tuple(header),
        report=tuple(sorted(report)),
        id_pos=seen.get(id_column) if id_column not in ignored else None,
        technique_pos=seen.get(TECHNIQUE_COLUMN) if TECHNIQUE_COLUMN not in ignored else None,
        inputs=tuple(inputs),
    )
