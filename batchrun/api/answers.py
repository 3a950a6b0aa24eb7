"""FLORA's answers read into models: runs, techniques and errors, in every reading the notes list
(``run_id`` or ``runId``, seconds or milliseconds, a run id where a server may have put one)."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

from ..errors import ApiError
from ..models import Output, Run, Technique, TechniqueInput

_MS_THRESHOLD = 1e11  # epoch seconds stay below this until the year 5138; milliseconds do not


def timestamp(value: Any) -> float | None:
    """API timestamps are numbers: epoch seconds or, in some readings, milliseconds."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value <= 0:
            return None
        return value / 1000.0 if value > _MS_THRESHOLD else float(value)
    if isinstance(value, str) and value:
        try:
            return timestamp(float(value))
        except ValueError:
            pass
        try:
            from datetime import datetime

            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _number(value: Any) -> float | None:
    """A finite number, from a number or a numeric string; anything else is no number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_run(data: Mapping[str, Any]) -> Run:
    run_id = (
        data.get("run_id") or data.get("runId") or data.get("technique_run_id") or data.get("id")
    )
    if not run_id:
        raise ValueError("run has no run_id")
    technique = data.get("technique")
    technique_id = technique.get("technique_id") if isinstance(technique, dict) else None
    outputs = tuple(
        Output(
            str(o.get("output_id") or o.get("outputId") or ""),
            str(o.get("type") or ""),
            str(o.get("url") or ""),
        )
        for o in data.get("outputs") or ()
        if isinstance(o, dict)
    )
    return Run(
        run_id=str(run_id),
        status=str(data.get("status") or "pending"),
        progress=_number(data.get("progress")),
        charged_cost=_number(data.get("charged_cost", data.get("chargedCost"))),
        created_at=timestamp(data.get("created_at", data.get("createdAt"))),
        started_at=timestamp(data.get("started_at", data.get("startedAt"))),
        completed_at=timestamp(data.get("completed_at", data.get("completedAt"))),
        error_code=_text(data.get("error_code", data.get("errorCode"))),
        error_message=_text(data.get("error_message", data.get("errorMessage"))),
        outputs=outputs,
        poll_url=_text(data.get("poll_url", data.get("pollUrl"))),
        technique_id=_text(technique_id or data.get("technique_id")),
    )


def parse_technique(data: Mapping[str, Any], requested: str) -> Technique:
    inputs = tuple(
        TechniqueInput(
            id=str(i.get("id")),
            type=str(i.get("type") or "text"),
            name=_text(i.get("name")),
            required=i.get("required") if isinstance(i.get("required"), bool) else None,
        )
        for i in data.get("inputs") or ()
        if isinstance(i, dict) and i.get("id")
    )
    return Technique(
        technique_id=str(data.get("technique_id") or data.get("id") or requested),
        name=_text(data.get("name")),
        inputs=inputs,
        run_cost=_number(data.get("run_cost", data.get("runCost"))),
        raw=dict(data),
    )


def _retry_after(headers: Mapping[str, str], now: float) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        import email.utils  # an HTTP date here is rare; the module costs 10 ms to import

        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(0.0, email.utils.mktime_tz(parsed) - now)


_RUN_ID_KEYS = ("run_id", "runId", "technique_run_id")
ITEM_ID_KEYS = (*_RUN_ID_KEYS, "id")


def _named_run(body: Any) -> str | None:
    """A run id an error answer carries, wherever a server may have put it."""
    if not isinstance(body, dict):
        return None
    found = body.get("error")
    err: dict[str, Any] = found if isinstance(found, dict) else {}
    places: list[tuple[Any, tuple[str, ...]]] = [
        (p, _RUN_ID_KEYS) for p in (body, err, err.get("details"), err.get("data"))
    ]
    places += [(p, (*_RUN_ID_KEYS, "id")) for p in (body.get("run"), err.get("run"))]
    for place, keys in places:
        if isinstance(place, dict):
            for key in keys:
                value = place.get(key)
                if isinstance(value, str) and value:
                    return value
    return None


def api_error(response: httpx.Response) -> ApiError:
    code, message, fields = f"http_{response.status_code}", response.reason_phrase, []
    try:
        body = response.json()
        err = body.get("error")
    except (ValueError, AttributeError):
        body = err = None
    if isinstance(err, dict):
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
        fields = [f for f in err.get("fields") or () if isinstance(f, dict)]
    elif isinstance(err, str):
        message = err
    elif not message:
        message = response.text[:200]
    should = response.headers.get("x-should-retry")
    return ApiError(
        status=response.status_code,
        code=code,
        message=message,
        request_id=response.headers.get("request-id") or response.headers.get("x-request-id"),
        fields=fields,
        retry_after=_retry_after(response.headers, time.time()),
        should_retry=None if should is None else should.strip().lower() == "true",
        run_id=_named_run(body),
    )


def invalid_answer(response: httpx.Response, message: str) -> ApiError:
    """An answer that does not mean what the API says it should (read as a duplicate by the
    submitter: never a reason to send again)."""
    return ApiError(
        response.status_code,
        "invalid_response",
        message,
        request_id=response.headers.get("request-id"),
    )
