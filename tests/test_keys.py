import json

from hypothesis import given
from hypothesis import strategies as st

from batchrun.keys import content_digest, idempotency_key, request_body
from batchrun.models import Input

FOX = [Input("prompt", "text", "a red fox"), Input("style", "text", "watercolor")]


def test_known_key_is_pinned() -> None:
    # If this changes, every resumed batch would send its rows again under new keys.
    assert (
        idempotency_key("prompts", "a1", "tech_text2img", FOX, 1)
        == "br1-ff1e2a954cde68a6096db3384e8b533b7ebcf587"
    )


def test_key_ignores_input_order_but_not_content() -> None:
    base = idempotency_key("b", "r", "t", FOX, 1)
    assert idempotency_key("b", "r", "t", list(reversed(FOX)), 1) == base
    assert idempotency_key("b", "r", "t", FOX, 2) != base
    assert idempotency_key("b2", "r", "t", FOX, 1) != base
    assert idempotency_key("b", "r2", "t", FOX, 1) != base
    assert idempotency_key("b", "r", "t2", FOX, 1) != base
    assert idempotency_key("b", "r", "t", FOX[:1], 1) != base


def test_body_carries_the_key_and_is_stable() -> None:
    key = idempotency_key("b", "r", "t", FOX, 1)
    body = request_body(FOX, key, "https://example.com/hook")
    assert body == request_body(FOX, key, "https://example.com/hook")
    data = json.loads(body)
    assert data["idempotency_key"] == key
    assert data["mode"] == "async"
    assert data["callback_url"] == "https://example.com/hook"
    assert data["inputs"][0] == {"id": "prompt", "type": "text", "value": "a red fox"}


@given(st.text(), st.text(), st.lists(st.text(), max_size=4), st.integers(1, 5))
def test_keys_are_deterministic_and_short(batch: str, row: str, values: list[str], n: int) -> None:
    inputs = [Input(f"i{k}", "text", v) for k, v in enumerate(values)]
    key = idempotency_key(batch, row, "t", inputs, n)
    assert key == idempotency_key(batch, row, "t", inputs, n)
    assert key.startswith("br1-") and len(key) == 44
    assert content_digest("t", inputs) == content_digest("t", list(reversed(inputs)))
