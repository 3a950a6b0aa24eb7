"""FLORA's tiers of a failed run's ``error_code``: what to do next.

- ``retry_now``: transient; send again at once.
- ``retry_later``: the provider is under load; send again after a back-off.
- ``change_input``: fails the same way again; only a changed row can succeed.
- ``not_retryable``: billing, access, cancellation; sending again cannot help.
- ``unknown``: a code in no tier (the reference's own ``provider_error`` among them): not retried.

A refusal hides behind transient codes (``GPU_PROVIDER_ERROR`` with "rejected by the safety
system"): a message that speaks of safety, moderation, a refusal or a policy is ``change_input``
whatever the code, so no retry pays for the same refusal again.
"""

from __future__ import annotations

import re

RETRY_NOW = "retry_now"
RETRY_LATER = "retry_later"
CHANGE_INPUT = "change_input"
NOT_RETRYABLE = "not_retryable"
UNKNOWN = "unknown"
TIERS = (RETRY_NOW, RETRY_LATER, CHANGE_INPUT, NOT_RETRYABLE, UNKNOWN)
RETRYABLE = (RETRY_NOW, RETRY_LATER)

_CODES = {
    RETRY_NOW: (
        "GENERATION_PROVIDER_TIMEOUT", "GPU_PROVIDER_ERROR", "GENERATION_GENERIC_ERROR",
        "SERVER_ERROR", "GENERATION_PREGENERATION_FAILED", "GENERATION_MAP_AFTER_REQUEST_FAILED",
        "GENERATION_FAILED_TO_START", "GENERATION_FAILED_TO_UPLOAD", "GENERATION_FAILED_TO_UPDATE",
        "GENERATION_FAILED_TO_GET", "GENERATION_POSTGENERATION_FAILED",
    ),
    RETRY_LATER: (
        "GENERATION_DOWNSTREAM_SERVICE_ERROR", "GENERATION_INVALID_PROVIDER_RESPONSE",
        "GENERATION_NO_RESULT", "GENERATION_MODAL_POLL_ERROR",
        "GENERATION_PROVIDER_FAILED_TO_GET_STATUS", "GENERATION_QUEUE_TOO_LARGE",
        "GENERATION_QUEUE_NOT_MOVING", "GENERATION_CIRCUIT_BREAKER_OPEN", "AUDIO_GENERATION_ERROR",
    ),
    CHANGE_INPUT: (
        "GENERATION_PROMPT_MODERATED", "LLM_REFUSAL", "GENERATION_INPUT_VALIDATION",
        "GENERATION_MAP_BEFORE_REQUEST_FAILED", "GENERATION_INVALID_PARAMS",
        "GENERATION_INVALID_URL", "GENERATION_ENDPOINT_NOT_FOUND",
        "GENERATION_PROVIDER_NOT_SUPPORTED",
        # the API's own answers to a create that cannot succeed as sent
        "input_validation_error", "invalid_json",
    ),
    NOT_RETRYABLE: (
        "BILLING_NOT_ENOUGH_CREDITS", "BILLING_CREDITS_LIMIT_EXCEEDED",
        "BILLING_WOULD_EXCEED_LIMIT", "BILLING_FAILED_TO_RESERVE_CREDITS", "GENERATION_NOT_PAID",
        "GENERATION_CANCELLED",
    ),
}  # fmt: skip
_BY_CODE = {code: tier for tier, codes in _CODES.items() for code in codes}
_REFUSAL = re.compile(r"safety|moderat|refus|polic|content.?filter|nsfw", re.IGNORECASE)


def tier_of(code: str | None, message: str | None = None) -> str:
    """The tier of a failed run's code and message."""
    code = (code or "").strip()
    tier = _BY_CODE.get(code)
    if tier is None:
        if code.startswith("ACCESS_") or code.endswith("_ENTITLEMENT_REQUIRED"):
            tier = NOT_RETRYABLE
        else:
            tier = UNKNOWN
    if tier in (*RETRYABLE, UNKNOWN) and message and _REFUSAL.search(message):
        return CHANGE_INPUT
    return tier
