"""Options shared by several commands, and the secret scrubber every printed line goes through."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..api import DEFAULT_BASE_URL

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


def state_dir_option(f: F) -> F:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get(STATE_DIR_ENV, ".batchrun"),
        show_default=".batchrun, or $BATCHRUN_STATE_DIR",
        help="Where the journal, locks and default reports live.",
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
