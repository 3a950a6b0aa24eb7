"""What each header column is for: the row id, the technique, an input (with its type), the
API's own inputs list (JSONL), a column only copied to the report, or one to drop."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ManifestError
from ..models import INPUT_TYPES, OUTPUT_TYPES
from .options import ManifestOptions

TECHNIQUE_COLUMN = "technique_id"
NATIVE_COLUMN = "inputs"  # JSONL only: [{id, type, value}, ...] as the API takes it


@dataclass(frozen=True, slots=True)
class InputColumn:
    position: int
    name: str  # the column as the user knows it (header text without the type annotation)
    input_id: str
    type: str


@dataclass(frozen=True, slots=True)
class Layout:
    width: int  # header cells up to the last named one
    report: tuple[int, ...]  # positions kept for the report, in file order
    names: tuple[str, ...]  # their header texts
    id_pos: int | None
    technique_pos: int | None
    native_pos: int | None
    inputs: tuple[InputColumn, ...]
    unnamed: tuple[int, ...]  # blank header cells between named ones: their cells must be empty


def build_layout(
    header: Sequence[str], line: int, options: ManifestOptions, jsonl: bool = False
) -> Layout:
    where = f"{options.path}:{line}"
    width = len(header)
    while width and not header[width - 1].strip():
        width -= 1  # spreadsheets pad the header with blank cells; they are not columns
    seen: dict[str, int] = {}
    unnamed = []
    for pos, name in enumerate(header[:width]):
        if not name.strip():
            unnamed.append(pos)
        elif name in seen:
            raise ManifestError(
                f"{where}: column '{name}' appears twice (columns {seen[name] + 1} and {pos + 1})"
            )
        else:
            seen[name] = pos
    if not seen:
        raise ManifestError(f"{where}: the header row has no column names")

    resolve = _Resolver(where, seen)
    ignored = resolve.all("--ignore", options.ignore)
    passed = resolve.all("--pass-through", options.pass_through)
    mapped = {resolve.one("--input", k): v for k, v in options.input_map.items()}
    for a, b, names in (("--ignore", "--pass-through", ignored & passed),
                        ("--ignore", "--input", ignored & set(mapped)),
                        ("--pass-through", "--input", passed & set(mapped))):  # fmt: skip
        if names:
            raise ManifestError(f"{where}: column '{min(names)}' is given to both {a} and {b}")

    id_pos = seen.get(options.id_column)
    if id_pos is None and options.id_column != "id":
        raise ManifestError(
            f"{where}: --id-column '{options.id_column}' is not a column "
            f"(columns: {', '.join(seen)})"
        )
    native = NATIVE_COLUMN if jsonl else None
    if native in mapped:
        raise ManifestError(
            f"{where}: '{native}' holds the API's inputs list; it cannot be --input"
        )
    roles = {options.id_column, TECHNIQUE_COLUMN, native} | passed
    inputs = []
    for name, pos in seen.items():
        if name in ignored:
            continue
        if name in mapped:
            inputs.append(_mapped(where, pos, name, *mapped[name]))
        elif name not in roles:
            inputs.append(_annotated(where, pos, name))
    _check_distinct(where, inputs)
    kept = {n: p for n, p in seen.items() if n not in ignored}
    if not inputs and native not in kept:
        raise ManifestError(
            f"{where}: no input columns (every column is the id, technique_id, "
            "--pass-through or --ignore)"
        )
    if TECHNIQUE_COLUMN not in kept and not (options.technique or "").strip():
        raise ManifestError(f"{where}: no technique: pass --technique or add a technique_id column")
    return Layout(
        width=width,
        report=tuple(kept.values()),
        names=tuple(kept),
        id_pos=kept.get(options.id_column),
        technique_pos=kept.get(TECHNIQUE_COLUMN),
        native_pos=kept.get(native) if native else None,
        inputs=tuple(inputs),
        unnamed=tuple(unnamed),
    )


def split_annotation(name: str) -> tuple[str, str | None]:
    """``('ref', 'imageUrl')`` for a header ``ref:imageUrl``; ``(name, None)`` when the text
    after the last colon is not an input type, as in a date-time header ``1973-05-20 09:15:02``
    or ``ratio 16:9``: only a known type makes an annotation."""
    base, sep, declared = name.rpartition(":")
    declared = declared.strip()
    if sep and base.strip() and declared in INPUT_TYPES:
        return base.strip(), declared
    return name, None


def _misspelt_type(declared: str) -> str | None:
    """The API type a suffix names or was probably meant to name (``imageurl``, ``image_url``,
    ``imgUrl``, the output type ``documentUrl``), or None for one that looks like no type
    (``02``, ``9``, ``pdf``, ``notes``)."""
    key = "".join(c for c in declared.lower() if c.isalnum())
    types = {t.lower(): t for t in (*INPUT_TYPES, *OUTPUT_TYPES)}
    close = difflib.get_close_matches(key, types, n=1, cutoff=0.8) if key else []
    return types[close[0]] if close else None


def _annotated(where: str, pos: int, name: str) -> InputColumn:
    base, declared = split_annotation(name)
    if declared is not None:
        return InputColumn(pos, base, base, declared)
    left, sep, suffix = name.rpartition(":")
    if sep and not left.strip() and suffix.strip() in INPUT_TYPES:
        raise ManifestError(
            f"{where}: column '{name}' declares an input type but no name (name:TYPE)"
        )
    meant = _misspelt_type(suffix) if sep else None
    if meant is not None:
        hint = f"did you mean '{meant}'? " if meant in INPUT_TYPES else ""
        raise ManifestError(
            f"{where}: column '{name}': '{suffix.strip()}' is not an input type ({hint}name:TYPE, "
            f"TYPE one of {', '.join(INPUT_TYPES)}); rename it, or use --input or "
            "--pass-through for it"
        )
    return InputColumn(pos, name, name.strip(), "text")


def _mapped(where: str, pos: int, name: str, input_id: str, type_: str | None) -> InputColumn:
    base, declared = split_annotation(name)
    chosen = type_ or declared or "text"
    if chosen not in INPUT_TYPES:
        raise ManifestError(
            f"{where}: --input for column '{name}': type '{chosen}' is not one of "
            f"{', '.join(INPUT_TYPES)}"
        )
    if not input_id.strip():
        raise ManifestError(f"{where}: --input for column '{name}' names no input id")
    return InputColumn(pos, base, input_id.strip(), chosen)


def _check_distinct(where: str, inputs: Iterable[InputColumn]) -> None:
    first: dict[str, InputColumn] = {}
    for col in inputs:
        if col.input_id in first:
            raise ManifestError(
                f"{where}: columns '{first[col.input_id].name}' and '{col.name}' both feed "
                f"input '{col.input_id}'; use --input, --pass-through or --ignore for one"
            )
        first[col.input_id] = col


class _Resolver:
    """Options name a column by its full header text or by its bare name (before ``:TYPE``)."""

    def __init__(self, where: str, seen: dict[str, int]) -> None:
        self.where, self.seen = where, seen
        self.bare: dict[str, list[str]] = {}
        for name in seen:
            self.bare.setdefault(split_annotation(name)[0], []).append(name)

    def one(self, option: str, name: str) -> str:
        if name in self.seen:
            return name
        matches = self.bare.get(name, [])
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ManifestError(
                f"{self.where}: {option} '{name}' matches several columns "
                f"({', '.join(matches)}); give the full header text"
            )
        raise ManifestError(
            f"{self.where}: {option} names column '{name}', which the manifest does not have "
            f"(columns: {', '.join(self.seen)})"
        )

    def all(self, option: str, names: Iterable[str]) -> set[str]:
        return {self.one(option, n) for n in names}
