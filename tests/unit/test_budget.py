"""Cost arithmetic, the spend fold and the budget guard's decisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from themis.core.budget import (
    COST_LIMIT,
    BudgetGuard,
    Dispatch,
    Ledger,
    charge,
    check_dispatch,
    check_trial,
    generation_cost,
    hold,
    model_setting,
    settle,
    spend,
    trial_cost,
)
from themis.core.events import GenerationCompleted
from themis.core.runtime import Price, RuntimeConfig
from themis.core.spec import ModelSpec

SONNET = Price(input_per_1k=0.003, output_per_1k=0.015)


def generation(
    key: str, tokens: tuple[int, int] | None, cache_hit: bool = False
) -> GenerationCompleted:
    input_tokens, output_tokens = tokens if tokens is not None else (None, None)
    return GenerationCompleted(
        at=1.0,
        trial_key=key,
        text="x",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_hit=cache_hit,
    )


def test_trial_cost_is_per_thousand_tokens() -> None:
    assert trial_cost(SONNET, 1000, 1000) == pytest.approx(0.018)
    assert trial_cost(SONNET, 2500, 400) == pytest.approx(0.0075 + 0.006)
    assert trial_cost(Price(0.0, 0.0), 10**6, 10**6) == 0.0


def test_price_validation() -> None:
    with pytest.raises(ValueError, match="input_per_1k"):
        Price(input_per_1k=-1.0, output_per_1k=0.0)


def test_model_settings_match_the_label_first_then_the_model_id() -> None:
    model = ModelSpec(name="sonnet-t0", model="claude-sonnet")
    assert model_setting({"claude-sonnet": 1, "sonnet-t0": 2}, model) == 2
    assert model_setting({"claude-sonnet": 1}, model) == 1
    assert model_setting({"other": 1}, model) is None


def test_generation_cost() -> None:
    assert generation_cost(generation("a", (1000, 1000)), SONNET) == pytest.approx(0.018)
    assert generation_cost(generation("a", (1000, 1000), cache_hit=True), SONNET) == 0.0
    assert generation_cost(generation("a", None), SONNET) is None
    assert generation_cost(generation("a", (10, 10)), None) is None


def test_spend_is_a_fold_over_completed_generations() -> None:
    prices = {"a": SONNET, "b": None}
    done = [
        generation("a", (1000, 1000)),
        generation("b", (1000, 1000)),
        generation("a", (1000, 1000), cache_hit=True),
        generation("a", None),
    ]
    ledger = spend(done, lambda item: prices[item.trial_key])
    assert ledger.spent == pytest.approx(0.018)
    assert (ledger.priced, ledger.unpriced, ledger.reserved) == (2, 2, 0.0)


@given(
    st.lists(st.tuples(st.integers(0, 10**5), st.integers(0, 10**5)), max_size=30),
    st.integers(0, 30),
)
def test_spend_composes_over_a_split_log(tokens: list[tuple[int, int]], cut: int) -> None:
    done = [generation(str(index), pair) for index, pair in enumerate(tokens)]
    whole = spend(done, lambda _: SONNET)
    resumed = spend(done[cut:], lambda _: SONNET, spend(done[:cut], lambda _: SONNET))
    assert resumed.priced == whole.priced == len(done)
    assert resumed.spent == pytest.approx(whole.spent)


def test_holding_and_settling_moves_money_from_reserved_to_spent() -> None:
    ledger = hold(hold(Ledger(), 0.5), 0.25)
    assert ledger.reserved == 0.75
    ledger = settle(ledger, 0.5, 0.125)
    assert (ledger.reserved, ledger.spent, ledger.priced) == (0.25, 0.125, 1)
    ledger = settle(ledger, None, None)
    assert (ledger.reserved, ledger.unpriced) == (0.25, 1)
    assert hold(ledger, None) is ledger
    assert charge(Ledger(), 0.0).priced == 1


def test_a_trial_over_its_limit_fails_with_cost_limit() -> None:
    guard = BudgetGuard(max_cost_per_trial=0.01)
    assert check_trial(guard, 0.02) == COST_LIMIT == "cost_limit"
    assert check_trial(guard, 0.01) is None  # at the limit is within it
    assert check_trial(guard, None) is None
    assert check_trial(BudgetGuard(), 10**9) is None


def test_the_run_limit_pauses_dispatch_before_it_would_be_exceeded() -> None:
    guard = BudgetGuard(max_cost_per_run=1.0)
    ledger = Ledger(spent=0.6, reserved=0.3)
    assert check_dispatch(guard, ledger, 0.1) is Dispatch.GO
    assert check_dispatch(guard, ledger, 0.11) is Dispatch.PAUSE
    assert check_dispatch(guard, ledger, None) is Dispatch.GO
    assert check_dispatch(guard, Ledger(spent=1.2), None) is Dispatch.PAUSE
    assert check_dispatch(BudgetGuard(), Ledger(spent=10**9), 5.0) is Dispatch.GO
    assert check_dispatch(BudgetGuard(max_cost_per_run=0.0), Ledger(), 0.0) is Dispatch.GO


def test_guard_from_runtime_has_no_hidden_limits() -> None:
    assert BudgetGuard.from_runtime(RuntimeConfig()) == BudgetGuard(None, None)
    runtime = RuntimeConfig(max_cost_per_trial=0.5, max_cost_per_run=20.0)
    assert BudgetGuard.from_runtime(runtime) == BudgetGuard(0.5, 20.0)


@given(
    limit=st.floats(min_value=0, max_value=10),
    costs=st.lists(st.floats(min_value=0, max_value=1), max_size=50),
)
def test_dispatching_only_on_go_never_overspends(limit: float, costs: list[float]) -> None:
    guard = BudgetGuard(max_cost_per_run=limit)
    ledger = Ledger()
    for cost in costs:  # each call's estimate is an upper bound on what it really costs
        if check_dispatch(guard, ledger, cost) is Dispatch.PAUSE:
            break
        ledger = settle(hold(ledger, cost), cost, cost * 0.5)
    assert ledger.spent <= limit + 1e-9
