"""How runs fail: FLORA's ``error_code``s by tier, drawn at a configured rate, or forced by a trigger.

The tiers are those of FLORA's batch guidance (``flora-api-notes.md``, "Failed runs"):

- ``retry_now``: transient, send again;
- ``retry_later``: the provider is under load, back off first;
- ``change_input``: it will fail the same way again;
- ``not_retryable``: billing, access, cancellation.

``moderated`` is the trap the notes describe: a moderation refusal that arrives as
``GPU_PROVIDER_ERROR`` (a ``retry_now`` code) with a safety message. It has its own share of the
mix because a client must read the message to tell it from a real provider error.

Triggers, in the value of any text input (the first one found wins)::

    FAIL             always fails, with the reference's example code ``provider_error``
    FAIL:CODE        always fails with CODE (FAIL:MODERATED: the GPU_PROVIDER_ERROR refusal)
    FAIL<n>          the first n runs created with this exact input text fail (provider_error)
    FAIL<n>:CODE     the first n runs created with this exact input text fail with CODE,
                     later ones complete (counted per text, across idempotency keys)

A trigger overrides the random failure rate for its run. A code outside the tiers is answered as
given, with a generic message; ``ACCESS_*`` and ``*_ENTITLEMENT_REQUIRED`` count as not_retryable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TIER_NAMES = ("retry_now", "retry_later", "change_input", "not_retryable")
MIX_NAMES = (*TIER_NAMES, "moderated")

# Realistic defaults: a few percent of runs fail, most of them transient.
DEFAULT_FAIL_RATE = 0.03
DEFAULT_FAIL_MIX: dict[str, float] = {
    "retry_now": 0.70,
    "retry_later": 0.12,
    "moderated": 0.08,
    "change_input": 0.06,
    "not_retryable": 0.04,
}

# code -> message. Messages of retry_* codes never speak of safety, moderation, refusals or
# policies: a client reads those words as change_input, whatever the code.
_RETRY_NOW = {
    "GENERATION_PROVIDER_TIMEOUT": "The generation provider timed out.",
    "GPU_PROVIDER_ERROR": "The GPU provider returned an error.",
    "GENERATION_GENERIC_ERROR": "The generation failed.",
    "SERVER_ERROR": "An internal server error occurred.",
    "GENERATION_PREGENERATION_FAILED": "Preparing the generation failed.",
    "GENERATION_MAP_AFTER_REQUEST_FAILED": "Reading the provider's result failed.",
    "GENERATION_FAILED_TO_START": "The generation failed to start.",
    "GENERATION_FAILED_TO_UPLOAD": "Uploading the generated file failed.",
    "GENERATION_FAILED_TO_UPDATE": "Updating the generation failed.",
    "GENERATION_FAILED_TO_GET": "Fetching the generation failed.",
    "GENERATION_POSTGENERATION_FAILED": "Processing the generated output failed.",
}
_RETRY_LATER = {
    "GENERATION_DOWNSTREAM_SERVICE_ERROR": "A downstream service is unavailable.",
    "GENERATION_INVALID_PROVIDER_RESPONSE": "The provider returned an invalid response.",
    "GENERATION_NO_RESULT": "The provider returned no result.",
    "GENERATION_MODAL_POLL_ERROR": "Polling the provider failed.",
    "GENERATION_PROVIDER_FAILED_TO_GET_STATUS": "The provider did not report the job's status.",
    "GENERATION_QUEUE_TOO_LARGE": "The provider's queue is too large; try again later.",
    "GENERATION_QUEUE_NOT_MOVING": "The provider's queue is not moving; try again later.",
    "GENERATION_CIRCUIT_BREAKER_OPEN": "The provider is temporarily unavailable.",
    "AUDIO_GENERATION_ERROR": "The audio generation failed.",
}
_CHANGE_INPUT = {
    "GENERATION_PROMPT_MODERATED": "The prompt was flagged by moderation.",
    "LLM_REFUSAL": "The model refused to answer this request.",
    "GENERATION_INPUT_VALIDATION": "An input is not valid for this technique.",
    "GENERATION_MAP_BEFORE_REQUEST_FAILED": "The inputs could not be prepared for the provider.",
    "GENERATION_INVALID_PARAMS": "The generation parameters are not valid.",
    "GENERATION_INVALID_URL": "An input URL could not be fetched.",
    "GENERATION_ENDPOINT_NOT_FOUND": "The provider endpoint for this technique was not found.",
    "GENERATION_PROVIDER_NOT_SUPPORTED": "The provider does not support this request.",
}
_NOT_RETRYABLE = {
    "BILLING_NOT_ENOUGH_CREDITS": "Not enough credits to run this technique.",
    "BILLING_CREDITS_LIMIT_EXCEEDED": "The workspace's credit limit was exceeded.",
    "BILLING_WOULD_EXCEED_LIMIT": "This run would exceed the workspace's credit limit.",
    "BILLING_FAILED_TO_RESERVE_CREDITS": "Credits could not be reserved for this run.",
    "GENERATION_NOT_PAID": "The generation was not paid for.",
    "GENERATION_CANCELLED": "The generation was cancelled.",
    # Stand-ins for the families the notes name (every ACCESS_*, every *_ENTITLEMENT_REQUIRED).
    "ACCESS_DENIED": "The API key has no access to this technique.",
    "MODEL_ENTITLEMENT_REQUIRED": "The workspace's plan does not include this model.",
}
TIERS: dict[str, dict[str, str]] = {
    "retry_now": _RETRY_NOW,
    "retry_later": _RETRY_LATER,
    "change_input": _CHANGE_INPUT,
    "not_retryable": _NOT_RETRYABLE,
}
# The reference's own example: in none of the tiers. What a plain FAIL trigger gives.
PROVIDER_ERROR = ("provider_error", "The provider failed to complete the generation.")
MODERATED_CODE = "GPU_PROVIDER_ERROR"
SAFETY_CATEGORIES = ("sexual", "violence", "hate", "self-harm", "harassment", "illicit")

_TRIGGER = re.compile(r"FAIL(\d*)(?::([A-Za-z][A-Za-z0-9_]*))?")


def moderated_message(category: str) -> str:
    return (
        "Your request was rejected by the safety system. If you believe this is an error, "
        f"contact support. safety_violations=[{category}]"
    )


def tier_of(code: str) -> str | None:
    """The tier a code belongs to, families included; None for codes in none (provider_error)."""
    for tier, codes in TIERS.items():
        if code in codes:
            return tier
    if code.startswith("ACCESS_") or code.endswith("_ENTITLEMENT_REQUIRED"):
        return "not_retryable"
    return None


def message_of(code: str) -> str:
    tier = tier_of(code)
    if tier is not None and code in TIERS[tier]:
        return TIERS[tier][code]
    if code == PROVIDER_ERROR[0]:
        return PROVIDER_ERROR[1]
    return f"The run failed ({code})."


@dataclass(frozen=True, slots=True)
class Failure:
    code: str
    message: str
    tier: str | None  # a MIX_NAMES entry ("moderated" included), None for codes in no tier
    source: str  # "drawn" (the fail rate) or "trigger" (a FAIL marker in an input)


@dataclass(frozen=True, slots=True)
class Trigger:
    text: str  # the input value it was found in: FAIL<n> counts runs per exact text
    count: int | None  # FAIL<n>: n; None: always
    code: str | None  # None: provider_error; "MODERATED": the safety refusal


def find_trigger(inputs: list[dict[str, str]]) -> Trigger | None:
    for item in inputs:
        if item["type"] != "text":
            continue
        match = _TRIGGER.search(item["value"])
        if match is not None:
            count = int(match.group(1)) if match.group(1) else None
            return Trigger(item["value"], count, match.group(2))
    return None


def parse_mix(value: Any) -> dict[str, float]:
    """Shares of failures by tier: ``"retry_now=70,moderated=8"`` or a mapping; normalised to 1.

    Tiers left out get no share. Shares are weights: only their ratios matter.
    """
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for part in value.split(","):
            if not part.strip():
                continue
            name, sep, number = part.partition("=")
            if not sep:
                raise ValueError(f"fail mix entry {part.strip()!r} is not tier=share")
            try:
                pairs[name.strip()] = float(number)
            except ValueError:
                raise ValueError(f"fail mix share {number.strip()!r} is not a number") from None
    elif isinstance(value, Mapping):
        pairs = dict(value)
    else:
        raise ValueError("fail mix must be 'tier=share,...' or an object of shares")
    unknown = sorted(set(pairs) - set(MIX_NAMES))
    if unknown:
        raise ValueError(f"unknown fail mix tier(s) {unknown}; choose from {', '.join(MIX_NAMES)}")
    shares: dict[str, float] = {}
    for name in MIX_NAMES:
        share = pairs.get(name, 0.0)
        if isinstance(share, bool) or not isinstance(share, int | float) or not share >= 0:
            raise ValueError(f"fail mix share of {name} must be a non-negative number")
        shares[name] = float(share)
    total = sum(shares.values())
    if total <= 0 or total == float("inf"):
        raise ValueError("fail mix needs at least one tier with a positive share")
    return {name: round(share / total, 12) for name, share in shares.items()}


def format_mix(mix: Mapping[str, float]) -> str:
    return ",".join(f"{name}={mix[name]:g}" for name in MIX_NAMES if mix.get(name))
