"""Idempotency keys and content digests.

The key is a pure, versioned function of what identifies one attempt at one row, so that a resend
after any crash carries the very key the first send carried. Changing this function changes every
key, and a resumed batch would then pay for its rows again: ``tests/test_keys.py`` pins a known key.

Version 1::

    "br1-" + sha256(canonical JSON of
        {"v": 1, "batch": batch, "row": row_id, "technique": technique_id,
         "inputs": [[id, type, value], ...] sorted by input id, "attempt": attempt}
    ).hexdigest()[:40]

Canonical JSON: UTF-8, keys sorted, no whitespace, non-ASCII kept as is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from .models import Input

KEY_VERSION = 1
KEY_PREFIX = f"br{KEY_VERSION}-"


# One encoder for every call: building one per call cost more than the encoding itself.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


def canonical_inputs(inputs: Iterable[Input]) -> list[list[str]]:
    return sorted([i.id, i.type, i.value] for i in inputs)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def idempotency_key(
    batch: str, row_id: str, technique_id: str, inputs: Iterable[Input], attempt: int
) -> str:
    payload = {
        "v": KEY_VERSION,
        "batch": batch,
        "row": row_id,
        "technique": technique_id,
        "inputs": canonical_inputs(inputs),
        "attempt": attempt,
    }
    return KEY_PREFIX + _sha256(canonical_json(payload))[:40]


def content_digest(technique_id: str, inputs: Iterable[Input]) -> str:
    """What a row asks for: an edit that changes it makes the row run again."""
    return _sha256(canonical_json([technique_id, canonical_inputs(inputs)]))[:32]


def request_body(
    inputs: Iterable[Input], key: str, callback_url: str | None = None, mode: str = "async"
) -> bytes:
    """The create body. Built once, stored in the journal, resent byte for byte."""
    body: dict[str, Any] = {"inputs": [i.as_dict() for i in inputs], "mode": mode}
    if callback_url:
        body["callback_url"] = callback_url
    body["idempotency_key"] = key
    return _COMPACT.encode(body).encode("utf-8")
