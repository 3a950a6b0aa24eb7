"""Checks on a create body, answering with every field that is wrong (FLORA's ``fields``)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from .catalogue import INPUT_TYPES, TechniqueSpec

Problem = dict[str, str]


def is_http_url(value: str, https_only: bool = False) -> bool:
    try:
        parts = urlsplit(value.strip())
    except ValueError:
        return False
    schemes = ("https",) if https_only else ("http", "https")
    return parts.scheme in schemes and bool(parts.hostname)


def is_private_host(url: str) -> bool:
    """Callbacks may not point into a private network (the notes: "no private hosts")."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def check_create(body: Any, spec: TechniqueSpec) -> tuple[list[dict[str, str]], list[Problem]]:
    """The inputs, normalised to {id, type, value}, and the problems found (none: valid)."""
    if not isinstance(body, dict):
        return [], [{"field": "body", "message": "must be a JSON object"}]
    problems: list[Problem] = []

    def bad(field: str, message: str) -> None:
        problems.append({"field": field, "message": message})

    inputs = body.get("inputs")
    clean: list[dict[str, str]] = []
    if not isinstance(inputs, list):
        bad("inputs", "is required: a list of {id, type, value}")
        inputs = []
    elif not inputs and spec.generic:
        bad("inputs", "must not be empty")
    seen: set[str] = set()
    for n, item in enumerate(inputs):
        where = f"inputs[{n}]"
        if not isinstance(item, dict):
            bad(where, "must be an object with id, type and value")
            continue
        wrong = [f for f in ("id", "type", "value") if not isinstance(item.get(f), str)]
        if wrong:
            bad(where, f"{', '.join(wrong)} must be present and a string")
            continue
        input_id, kind, value = item["id"], item["type"], item["value"]
        if input_id in seen:
            bad(f"{where}.id", f"input '{input_id}' is given more than once")
        seen.add(input_id)
        declared = spec.declared(input_id)
        if kind not in INPUT_TYPES:
            bad(f"{where}.type", f"must be one of {', '.join(INPUT_TYPES)}")
        elif declared is None and not spec.generic:
            bad(f"{where}.id", f"technique {spec.technique_id} has no input '{input_id}'")
        elif declared is not None and declared.type != kind:
            bad(f"{where}.type", f"input '{input_id}' takes {declared.type}, not {kind}")
        if not value.strip():
            bad(f"{where}.value", "must not be empty; leave an optional input out instead")
        elif kind in ("imageUrl", "videoUrl") and not is_http_url(value):
            bad(f"{where}.value", "must be an http(s) URL")
        clean.append({"id": input_id, "type": kind, "value": value})
    for declared in spec.inputs:
        if declared.required and declared.id not in seen:
            bad("inputs", f"required input '{declared.id}' is missing")

    mode = body.get("mode")
    if mode is not None and mode not in ("async", "stream"):
        bad("mode", "must be 'async' or 'stream'")
    callback = body.get("callback_url")
    if callback is not None:
        if not isinstance(callback, str) or not is_http_url(callback, https_only=True):
            bad("callback_url", "must be an https URL")
        elif is_private_host(callback):
            bad("callback_url", "must not point to a private host")
    key = body.get("idempotency_key")
    if key is not None and (not isinstance(key, str) or not key.strip()):
        bad("idempotency_key", "must be a non-empty string")
    return clean, problems
