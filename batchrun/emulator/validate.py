"""Create-body validation, answering with the fields that are wrong."""

from __future__ import annotations

from typing import Any

from .catalogue import Spec

INPUT_TYPES = ("text", "imageUrl", "videoUrl")


def validate_create(body: Any, spec: Spec, open_catalogue: bool) -> list[dict[str, str]]:
    if not isinstance(body, dict):
        return [{"field": "body", "message": "must be a JSON object"}]
    problems: list[dict[str, str]] = []

    def bad(field: str, message: str) -> None:
        problems.append({"field": field, "message": message})

    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        bad("inputs", "must be a list of {id, type, value}")
        return problems
    declared = {i: (t, r) for i, t, r in spec.inputs}
    seen: set[str] = set()
    for k, item in enumerate(inputs):
        where = f"inputs[{k}]"
        if not isinstance(item, dict) or not all(
            isinstance(item.get(f), str) for f in ("id", "type", "value")
        ):
            bad(where, "must be an object with string id, type and value")
            continue
        iid, itype, value = item["id"], item["type"], item["value"]
        if itype not in INPUT_TYPES:
            bad(f"{where}.type", f"must be one of {', '.join(INPUT_TYPES)}")
        if iid in seen:
            bad(f"{where}.id", f"input '{iid}' given twice")
        seen.add(iid)
        if declared or not open_catalogue:
            if iid not in declared:
                bad(f"{where}.id", f"unknown input '{iid}' for technique {spec.technique_id}")
            elif declared[iid][0] != itype:
                bad(f"{where}.type", f"input '{iid}' takes {declared[iid][0]}")
        if not value.strip():
            bad(f"{where}.value", "must not be empty; omit optional inputs instead")
        elif itype in ("imageUrl", "videoUrl") and not value.startswith(("http://", "https://")):
            bad(f"{where}.value", "must be an http(s) URL")
    for iid, (_, required) in declared.items():
        if required and iid not in seen:
            bad("inputs", f"required input '{iid}' is missing")
    if body.get("mode") not in (None, "async", "stream"):
        bad("mode", "must be async or stream")
    callback = body.get("callback_url")
    if callback is not None and (
        not isinstance(callback, str) or not callback.startswith("https://")
    ):
        bad("callback_url", "must be an https URL")
    key = body.get("idempotency_key")
    if key is not None and not isinstance(key, str):
        bad("idempotency_key", "must be a string")
    return problems
