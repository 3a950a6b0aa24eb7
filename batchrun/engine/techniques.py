"""Asking the API about techniques (declared inputs, run_cost) before anything is sent."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from ..api import FloraClient
from ..errors import ApiError, ConfigError
from ..models import Technique
from .retry import call

MAX_ASKED = 20  # a manifest naming more techniques than this is checked by its creates
ATTEMPTS = 4  # about 3.5 s of backoff before an unreachable API is called a configuration error


async def fetch_techniques(client: FloraClient, ids: Sequence[str]) -> dict[str, Technique | None]:
    """Each technique, or None where the API would not describe it (no such endpoint on this
    server, or no such technique: the creates will tell). A refused key is a ConfigError; an
    unreachable API raises TransportError for the caller to judge."""
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
            found[tid] = None
    return found


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
