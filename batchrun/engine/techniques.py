"""Asking the API about techniques (declared inputs, run_cost) before anything is sent, and
settling which manifest columns are inputs before the manifest is read into the journal."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ..api import DEFAULT_BASE_URL, FloraClient
from ..errors import ApiError, ConfigError, TransportError
from ..manifest import open_manifest
from ..models import INPUT_TYPES, Technique
from .retry import call

if TYPE_CHECKING:
    from .runner import RunOptions

MAX_ASKED = 20  # a manifest naming more techniques than this is checked by its creates
ATTEMPTS = 4  # about 3.5 s of backoff before an unreachable API is called a configuration error
TECHNIQUE_COLUMN = "technique_id"
NATIVE_COLUMN = "inputs"  # JSONL rows in the API's own form
JSONL = (".jsonl", ".ndjson")
API_PATH = urlsplit(DEFAULT_BASE_URL).path  # /api/v1


async def fetch_techniques(client: FloraClient, ids: Sequence[str]) -> dict[str, Technique | None]:
    """Each technique, or None where the API would not describe it (an error other than 404:
    the creates will tell). A refused key, and a technique or API that is not there (404), are
    ConfigErrors: nothing has been sent. An unreachable API raises TransportError for the
    caller to judge."""
    found: dict[str, Technique | None] = {}
    for tid in ids[:MAX_ASKED]:
        try:
            # Retried like any read: one dropped connection must not end the batch at its start.
            found[tid] = await call(partial(client.get_technique, tid), ATTEMPTS)
        except ApiError as exc:
            if exc.status in (401, 403):
                raise ConfigError(
                    f"the API refused the API key: {exc.describe()}; check FLORA_API_KEY or "
                    "--api-key"
                ) from None
            if exc.status == 404:
                raise ConfigError(not_found(client.base_url, tid, exc)) from None
            found[tid] = None
    return found


def not_found(base_url: str, technique: str, exc: ApiError) -> str:
    """Why a technique's 404 stops the batch, naming the URL tried. A base URL without the
    API's path is the likelier culprit than the technique: then that is what it says."""
    url = f"{base_url.rstrip('/')}/techniques/{quote(technique, safe='')}"
    tried = f"GET {url} answered {exc.status} {exc.code}"
    if exc.request_id:
        tried += f" [request-id {exc.request_id}]"
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/")
    if not path.endswith(API_PATH):
        better = f"{parts.scheme}://{parts.netloc}{path}{API_PATH}"
        return (
            f"no FLORA API at {base_url} ({tried}): the base URL's path lacks {API_PATH}; try "
            f"--base-url {better} (or FLORA_BASE_URL; FLORA's own is {DEFAULT_BASE_URL})"
        )
    return (
        f"technique '{technique}' not found ({tried}); check --technique or the manifest's "
        f"{TECHNIQUE_COLUMN} column (an id like tech_... or a slug like text-to-image)"
    )


def column_problems(technique: Technique, input_ids: set[str], manifest: str) -> list[str]:
    """Columns that are no input of the technique, and required inputs with no column."""
    if not technique.inputs:
        return []
    declared = {i.id for i in technique.inputs}
    names = ", ".join(sorted(declared))
    out = [
        f"{manifest}: column '{c}' is not an input of technique '{technique.technique_id}' "
        f"(its inputs: {names}); map it with --input, or use --pass-through / --ignore"
        for c in sorted(input_ids - declared)
    ]
    out += [
        f"{manifest}: technique '{technique.technique_id}' requires input '{i.id}' and no column "
        "provides it"
        for i in technique.inputs
        if i.required and i.id not in input_ids
    ]
    return out


# -- which columns are inputs ----------------------------------------------------------------


def input_id(column: str) -> str:
    """The input a column feeds unless --input maps it: its name, without a ``:TYPE``."""
    base, sep, declared = column.rpartition(":")
    if sep and base.strip() and declared.strip() in INPUT_TYPES:
        return base.strip()
    return column.strip()


def _named(column: str, names: Iterable[str]) -> bool:
    """An option names a column by its full header text or by its name without ``:TYPE``."""
    return any(n == column or n == input_id(column) for n in names)


@dataclasses.dataclass
class Settled:
    """What settling the columns decided, for the plan and the run's notices."""

    options: RunOptions
    passed: list[str] = dataclasses.field(default_factory=list)  # columns sent to the report only
    technique: Technique | None = None  # the --technique, when it was asked about
    notices: list[str] = dataclasses.field(default_factory=list)
    unreachable: str | None = None  # why the API could not be asked (strict=False only)


async def settle_columns(
    opts: RunOptions, client: FloraClient | None = None, ask: bool = True, strict: bool = True
) -> Settled:
    """Decide which columns are inputs before the manifest is read, and check --technique.

    - A bare ``--input COLUMN`` (``named_inputs``) names the inputs: every other column goes to
      the report only.
    - When every row runs ``--technique`` (no technique_id column) and the API describes it with
      its inputs, columns it does not take go to the report only, with one notice naming them;
      a technique or API answering 404 is a ConfigError, before anything is read or sent.
      ``ask=False`` (no API key, as in a plan without one) skips this. An unreachable API is
      a ConfigError, or with ``strict=False`` (a plan) a note in ``unreachable``.

    Returns the options with ``auto_pass_through`` set."""
    manifest = open_manifest(opts.manifest_options())
    columns, mapped = manifest.columns, opts.input_map
    native = opts.manifest.suffix.lower() in JSONL and NATIVE_COLUMN in columns
    roles = {opts.id_column, TECHNIQUE_COLUMN, *([NATIVE_COLUMN] if native else [])}
    candidates = [c for c in columns if c not in roles and not _named(c, opts.pass_through)]
    settled = Settled(opts)
    passed: list[str] = []
    if opts.named_inputs:
        passed = [c for c in candidates if not _named(c, mapped)]
        if passed:
            settled.notices.append(
                f"--input names the inputs: {_few(passed)} {_go(passed)} to the report only"
            )
    technique = (opts.technique or "").strip()
    if ask and technique and TECHNIQUE_COLUMN not in columns:
        try:
            found = await _ask(opts, client, technique)
        except TransportError as exc:
            if strict:
                raise ConfigError(f"cannot reach the API at {opts.base_url}: {exc}") from None
            settled.unreachable = str(exc)
            found = {}
        tech = settled.technique = found.get(technique)
        if tech is not None and tech.inputs:
            declared = {i.id for i in tech.inputs}
            extra = [
                c for c in candidates
                if c not in passed and not _named(c, mapped) and input_id(c) not in declared
            ]  # fmt: skip
            if extra:
                settled.notices.append(
                    f"technique '{technique}' takes {', '.join(sorted(declared))}: "
                    f"{_few(extra)} {_go(extra)} to the report only (not sent)"
                )
                passed += extra
            sent = {v[0] for v in _mapped_ids(columns, mapped)}
            sent |= {input_id(c) for c in candidates if c not in passed and not _named(c, mapped)}
            _check_inputs(tech, technique, sent, mapped, native)
    settled.passed = passed
    settled.options = dataclasses.replace(opts, auto_pass_through=frozenset(passed))
    return settled


async def _ask(
    opts: RunOptions, client: FloraClient | None, technique: str
) -> dict[str, Technique | None]:
    """The technique, through the batch's client or, without one (a plan), a client of its own."""
    if client is not None:
        return await fetch_techniques(client, [technique])
    async with FloraClient(opts.base_url, opts.api_key, transport=opts.transport) as own:
        return await fetch_techniques(own, [technique])


def _mapped_ids(
    columns: Sequence[str], mapped: Mapping[str, tuple[str, str | None]]
) -> list[tuple[str, str]]:
    """(input id, column) for each column --input maps."""
    out = []
    for c in columns:
        for name, (target, _) in mapped.items():
            if name == c or name == input_id(c):
                out.append((target, c))
    return out


def _check_inputs(
    tech: Technique,
    technique: str,
    sent: set[str],
    mapped: Mapping[str, tuple[str, str | None]],
    native: bool,
) -> None:
    declared = {i.id for i in tech.inputs}
    names = ", ".join(sorted(declared))
    for name, (target, _) in sorted(mapped.items()):
        if target not in declared:
            raise ConfigError(
                f"--input {name}: technique '{technique}' has no input '{target}' (its inputs: "
                f"{names})"
            )
    if native:
        return  # JSONL rows in the API's form bring their own inputs
    missing = [i.id for i in tech.inputs if i.required and i.id not in sent]
    if missing:
        raise ConfigError(
            f"technique '{technique}' requires input '{missing[0]}' and no column provides it "
            f"(its inputs: {names}); name a column for it with --input COLUMN={missing[0]}"
        )


def _few(columns: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(f"'{c}'" for c in columns[:limit])
    more = f" and {len(columns) - limit} more" if len(columns) > limit else ""
    word = "column" if len(columns) == 1 else "columns"
    return f"{len(columns)} {word} ({shown}{more})"


def _go(columns: Sequence[str]) -> str:
    return "goes" if len(columns) == 1 else "go"
