"""Error tiers, the re-send policy, and a budget that no order of events can overrun."""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from batchrun.engine.budget import Budget
from batchrun.engine.resend import ResendPolicy
from batchrun.models import Run
from batchrun.tiers import CHANGE_INPUT, NOT_RETRYABLE, RETRY_LATER, RETRY_NOW, UNKNOWN, tier_of


def test_codes_fall_into_floras_tiers() -> None:
    assert tier_of("GENERATION_PROVIDER_TIMEOUT") == RETRY_NOW
    assert tier_of("GENERATION_QUEUE_TOO_LARGE") == RETRY_LATER
    assert tier_of("GENERATION_PROMPT_MODERATED") == CHANGE_INPUT
    assert tier_of("BILLING_NOT_ENOUGH_CREDITS") == NOT_RETRYABLE
    assert tier_of("ACCESS_DENIED") == tier_of("VIDEO_ENTITLEMENT_REQUIRED") == NOT_RETRYABLE
    assert tier_of("provider_error") == tier_of(None) == UNKNOWN


def test_a_refusal_behind_a_transient_code_is_change_input() -> None:
    message = "Your request was rejected by the safety system. safety_violations=[sexual]"
    assert tier_of("GPU_PROVIDER_ERROR", message) == CHANGE_INPUT
    assert tier_of("GENERATION_NO_RESULT", "content policy violation") == CHANGE_INPUT
    assert tier_of("GPU_PROVIDER_ERROR", "CUDA out of memory") == RETRY_NOW
    assert tier_of("BILLING_NOT_ENOUGH_CREDITS", "policy: no credits") == NOT_RETRYABLE


def failed(code: str, message: str = "") -> Run:
    return Run("r", "failed", error_code=code, error_message=message)


def test_resends_by_tier_with_a_growing_back_off() -> None:
    policy = ResendPolicy(retries=2, backoff=30.0, jitter=lambda: 1.0)
    assert policy.when(failed("SERVER_ERROR"), 0, now=100.0) == 100.0
    assert policy.when(failed("GENERATION_CIRCUIT_BREAKER_OPEN"), 0, now=100.0) == 130.0
    assert policy.when(failed("GENERATION_CIRCUIT_BREAKER_OPEN"), 1, now=100.0) == 160.0
    assert policy.when(failed("SERVER_ERROR"), 2, now=100.0) is None  # used up
    assert policy.when(failed("LLM_REFUSAL"), 0, now=100.0) is None
    assert policy.when(failed("GENERATION_CANCELLED"), 0, now=100.0) is None
    assert policy.when(failed("something_new"), 0, now=100.0) is None
    assert policy.when(failed("GPU_PROVIDER_ERROR", "rejected by the safety system"), 0, 1) is None
    assert policy.when(Run("r", "completed"), 0, now=1.0) is None
    resends = policy.resends([("a", failed("SERVER_ERROR"), 0), ("b", failed("LLM_REFUSAL"), 0)], 5)
    assert resends is not None and resends.at == {"a": 5} and resends.limit == 2


def test_the_budget_counts_a_run_at_the_larger_of_quote_and_estimate() -> None:
    budget = Budget(0.10, estimate=0.02)
    assert budget.allowance() == 5
    budget.sending(["a"])
    budget.quoted("a", 0.03)  # dearer than the estimate: later runs reserve that much
    assert budget.committed() == 0.03 and budget.allowance() == 2
    budget.settled("a", 0.03)
    assert budget.charged == 0.03 and budget.allowance() == 2
    budget.sending(["b"])
    budget.released("b")  # refused before any run existed
    assert budget.committed() == 0.03


def test_a_final_cost_above_its_quote_makes_later_reserves_larger() -> None:
    budget = Budget(1.0, estimate=0.1)
    budget.sending(["a"])
    budget.quoted("a", 0.1)
    budget.settled("a", 0.2)  # charged twice the quote
    assert budget.per_run() == 0.4  # the dearest seen, times the drift seen
    assert budget.allowance() == 2


def test_without_any_estimate_one_run_at_a_time() -> None:
    budget = Budget(1.0, estimate=None)
    assert budget.allowance() == 1
    budget.sending(["a"])
    assert budget.allowance() == 0
    budget.settled("a", 0.25)
    assert budget.allowance() == 3


def test_a_resumed_budget_counts_what_the_journal_left_open() -> None:
    budget = Budget(0.10, estimate=0.02, charged=0.04, open_quotes={"a": 0.02, "b": None})
    assert abs(budget.committed() - 0.08) < 1e-9 and budget.allowance() == 1


Event = tuple[str, int, float]


@settings(max_examples=300, deadline=None)
@given(
    max_cost=st.sampled_from([0.0, 0.05, 0.1, 0.3, 1.0]),
    estimate=st.sampled_from([0.01, 0.02, 0.05]),
    known_estimate=st.booleans(),
    script=st.lists(
        st.tuples(
            st.sampled_from(["send", "answer", "finish", "late", "cost", "fail", "refuse"]),
            st.integers(0, 30),
            st.floats(0.0, 1.0),
        ),
        max_size=300,
    ),
)
@example(  # found in CI: a vanishing cost once made the allowance infinite
    max_cost=0.05,
    estimate=0.01,
    known_estimate=False,
    script=[("send", 0, 0.0), ("finish", 0, 2.2250738585072014e-308), ("send", 0, 0.0)],
)
def test_no_order_of_events_passes_the_budget(
    max_cost: float, estimate: float, known_estimate: bool, script: list[Event]
) -> None:
    """A fake engine sends only what the budget allows; runs are answered, finish, fail, get
    late costs and are sent again in any order. The server never charges more than the budget,
    as long as a run's cost is within its quote and the technique's price."""
    budget = Budget(max_cost, estimate if known_estimate else None)
    charged = 0.0  # what the server charges
    state: dict[int, str] = {}  # row -> sent, quoted, late (completed, cost not reported)
    quotes: dict[int, float] = {}
    for action, row, x in script:
        key = str(row)
        now = state.get(row)
        if action == "send" and now is None and budget.allowance() > 0:
            budget.sending([key])
            state[row] = "sent"
        elif action == "answer" and now == "sent":
            quotes[row] = estimate * (0.5 + x / 2)
            budget.quoted(key, quotes[row])
            state[row] = "quoted"
        elif action == "finish" and now in ("sent", "quoted"):
            cost = quotes.get(row, estimate) * x
            charged += cost
            budget.settled(key, cost)
            del state[row]  # may be sent again (a new attempt)
        elif action == "late" and now in ("sent", "quoted"):
            state[row] = "late"
        elif action == "cost" and now == "late":
            cost = quotes.get(row, estimate) * x
            charged += cost
            budget.settled(key, cost)
            del state[row]
        elif action == "fail" and now in ("sent", "quoted"):
            budget.settled(key, 0.0)  # failed runs are refunded
            del state[row]
        elif action == "refuse" and now == "sent":
            budget.released(key)
            del state[row]
        if known_estimate:
            assert charged <= max_cost + 1e-9
    # Whatever is still open is charged in full at the end: still within the budget.
    open_cost = sum(quotes.get(r, estimate) for r in state)
    if known_estimate:
        assert charged + open_cost <= max_cost + 1e-9
