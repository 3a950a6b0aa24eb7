"""GET /technique-runs: newest first, filtered, paged with a keyset cursor.

The cursor holds the (created_at, run_id) of the last run a page showed, so runs created between
two page fetches sort above it and never shift the pages that follow.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from .asgi import Reply, error_reply, json_reply
from .catalogue import find
from .state import PROJECT_ID, WORKSPACE_ID, RunRecord, Store
from .views import Views

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
STATUSES = ("pending", "running", "completed", "failed")


def encode_cursor(position: tuple[float, str]) -> str:
    raw = json.dumps(list(position), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, run_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise ValueError("not a cursor this server issued") from None
    if isinstance(created_at, bool) or not isinstance(created_at, int | float):
        raise ValueError("not a cursor this server issued")
    if not isinstance(run_id, str):
        raise ValueError("not a cursor this server issued")
    return (float(created_at), run_id)


def _invalid(field: str, message: str) -> Reply:
    return error_reply(
        400,
        "input_validation_error",
        "The query is invalid.",
        [{"field": field, "message": message}],
    )


def list_runs(
    query: Mapping[str, str], store: Store, views: Views, api_base: str, media_base: str
) -> Reply:
    text = query.get("limit")
    try:
        limit = DEFAULT_LIMIT if text is None else int(text)
    except ValueError:
        return _invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    if not 1 <= limit <= MAX_LIMIT:
        return _invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        return _invalid("status", f"must be one of {', '.join(STATUSES)}")
    before = None
    if query.get("cursor"):
        try:
            before = decode_cursor(query["cursor"])
        except ValueError as exc:
            return _invalid("cursor", str(exc))

    technique_id = query.get("technique_id") or None
    if technique_id is not None:
        spec = find(technique_id, store.config.open_catalogue)
        technique_id = spec.technique_id if spec else technique_id
    nobody = query.get("project_id") not in (None, "", PROJECT_ID) or query.get(
        "workspace_id"
    ) not in (None, "", WORKSPACE_ID)
    now = store.now()

    def wanted(rec: RunRecord) -> bool:
        if technique_id is not None and rec.spec.technique_id != technique_id:
            return False
        return status is None or rec.status(now) == status

    page: list[RunRecord] = []
    more = False
    if not nobody:
        for rec in store.newest_first(before):
            if not wanted(rec):
                continue
            if len(page) == limit:
                more = True  # looked one past the page, so the last page says so itself
                break
            page.append(rec)
    if nobody:
        total = 0
    elif technique_id is None and status is None:
        total = len(store.ordered)
    else:
        total = sum(1 for rec in store.ordered if wanted(rec))
    items: list[dict[str, Any]] = [
        views.run(rec, now, api_base, media_base, listed=True) for rec in page
    ]
    meta = {
        "next_cursor": encode_cursor(page[-1].sort_key) if more else None,
        "total_estimate": total,
    }
    return json_reply(200, {"technique_runs": items, "meta": meta})
