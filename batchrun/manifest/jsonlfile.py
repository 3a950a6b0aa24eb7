"""JSONL: one object per line. The columns are every key any line uses, in first-seen order:
exports leave out empty keys and files mix the flat and native forms, so a quick first pass
learns them (keys only; memory stays flat)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ManifestError
from .cells import cell_text
from .columns import NATIVE_COLUMN
from .source import Record


class JsonlSource:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._header: tuple[list[str], int] | None = None

    def header(self) -> tuple[list[str], int]:
        if self._header is None:
            keys: dict[str, None] = {}
            first = 0
            saw_line = False
            for line, obj in self._objects():
                saw_line = True
                if isinstance(obj, dict):
                    first = first or line
                    keys.update(dict.fromkeys(obj))
            if not first:
                what = "no line holds a JSON object" if saw_line else "the file is empty"
                raise ManifestError(f"{self.path}: {what}")
            self._header = list(keys), first
        return self._header

    def records(self) -> Iterator[Record]:
        names, first = self.header()
        position = {name: i for i, name in enumerate(names)}
        for line, obj in self._objects():
            if isinstance(obj, str):
                yield line, obj
                continue
            cells: list[str | None] = [None] * len(names)
            problem = None
            for key, value in obj.items():
                pos = position.get(key)
                if pos is None:
                    problem = f"unknown column '{key}' (columns come from line {first})"
                    break
                text, problem = _value_text(key, value)
                if problem:
                    break
                cells[pos] = text
            yield line, problem or cells

    def _objects(self) -> Iterator[tuple[int, dict[str, Any] | str]]:
        """Each non-blank line, parsed, or why it is not an object."""
        try:
            with open(self.path, "rb") as fh:
                for number, raw in enumerate(fh, start=1):
                    try:
                        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                    except UnicodeDecodeError:
                        raise ManifestError(
                            f"{self.path}:{number}: not UTF-8 text; save the file as UTF-8"
                        ) from None
                    if not text.strip():
                        continue
                    try:
                        obj = json.loads(text)
                    except ValueError as exc:
                        msg = getattr(exc, "msg", str(exc))
                        col = getattr(exc, "colno", None)
                        yield (
                            number,
                            f"not valid JSON ({msg}" + (f" at column {col})" if col else ")"),
                        )
                        continue
                    if isinstance(obj, dict):
                        yield number, obj
                    else:
                        yield number, f"not a JSON object (a {_kind(obj)})"
        except OSError as exc:
            raise ManifestError(f"{self.path}: cannot read: {exc.strerror or exc}") from None


def _value_text(key: str, value: Any) -> tuple[str | None, str | None]:
    """(cell text, problem)."""
    if key == NATIVE_COLUMN:
        if value is None:
            return None, None
        if not isinstance(value, list):
            return None, f"'{NATIVE_COLUMN}' must be a list of {{id, type, value}} objects"
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")), None
    if isinstance(value, dict | list):
        return None, f"column '{key}' holds a nested {_kind(value)}; give it as text"
    if isinstance(value, float) and value != value:  # NaN
        return None, None
    return cell_text(value), None


def _kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else "null"
    )
