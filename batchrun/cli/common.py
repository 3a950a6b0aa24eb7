"""Options shared by several commands, and the secret scrubber every printed line goes through."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..api import DEFAULT_BASE_URL
from ..engine.techniques import input_id
from ..models import INPUT_TYPES

F = TypeVar("F", bound=Callable[..., Any])

STATE_DIR_ENV = "BATCHRUN_STATE_DIR"
_secrets: set[str] = set()


def remember_secret(value: str | None) -> None:
    if value and len(value) >= 4:
        _secrets.add(value)


def scrub(text: str) -> str:
    """Belt and braces: no message we print may carry the API key, whatever built it."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


InputMap = dict[str, tuple[str, str | None]]


def parse_inputs(values: Iterable[str]) -> tuple[InputMap, bool]:
    """``--input`` values, as the CLI and ``run_batch(input=[...])`` take them.

    ``COLUMN=INPUT_ID[:TYPE]`` sends COLUMN as input INPUT_ID; a bare ``COLUMN`` sends it under
    its own name (without a ``:TYPE`` annotation). Returns the mapping, and whether any value
    was bare: then the named columns are the only inputs and every other column goes to the
    report only. Raises ValueError naming the bad value."""
    mapping: InputMap = {}
    named = False
    for raw in values:
        if not isinstance(raw, str):
            raise ValueError(f"{raw!r}: expected COLUMN or COLUMN=INPUT_ID[:TYPE], a string")
        column, sep, target = raw.partition("=")
        if not sep:
            if not raw.strip():
                raise ValueError("'': expected COLUMN or COLUMN=INPUT_ID[:TYPE]")
            mapping[raw] = (input_id(raw), None)
            named = True
            continue
        if not column or not target:
            raise ValueError(f"'{raw}': expected COLUMN or COLUMN=INPUT_ID[:TYPE]")
        target_id, _, type_ = target.partition(":")
        if type_ and type_ not in INPUT_TYPES:
            raise ValueError(f"'{raw}': type must be {', '.join(INPUT_TYPES)}")
        mapping[column] = (target_id, type_ or None)
    return mapping, named


def state_dir_option(f: F) -> F:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get(STATE_DIR_ENV, ".batchrun"),
        show_default=".batchrun, or $BATCHRUN_STATE_DIR",
        help="Where the journal, locks and default reports live.",
    )(f)


JOURNAL_ENV = "BATCHRUN_JOURNAL"


def journal_option(f: F) -> F:
    return click.option(
        "--journal",
        metavar="URL",
        envvar=JOURNAL_ENV,
        show_envvar=True,
        help="A postgresql://USER@HOST/DB URL: the journal several hosts share, so that several "
        "`run` and `worker` processes work on one batch together. Default: the SQLite journal "
        "in the state directory; a path names that directory (used as --state-dir).",
    )(f)


def lease_seconds_option(f: F) -> F:
    return click.option(
        "--lease-seconds",
        type=click.FloatRange(min=1),
        default=120.0,
        show_default=True,
        metavar="SECONDS",
        help="With a shared journal: how long rows this process claimed stay its own without a "
        "heartbeat (renewed every third of it); once a dead worker's lease runs out, another "
        "takes its rows over and resends them under the same keys.",
    )(f)


def batch_option(f: F, help: str = "Batch name (default: the manifest's file stem).") -> F:
    return click.option("--batch", "batch", metavar="NAME", help=help)(f)


def api_options(f: F) -> F:
    f = click.option(
        "--api-key",
        envvar="FLORA_API_KEY",
        show_envvar=True,
        metavar="KEY",
        help="FLORA API key; sent only to the --base-url origin, never printed.",
    )(f)
    f = click.option(
        "--base-url",
        envvar="FLORA_BASE_URL",
        show_envvar=True,
        default=DEFAULT_BASE_URL,
        show_default=True,
        metavar="URL",
        help="FLORA API base URL.",
    )(f)
    return f
