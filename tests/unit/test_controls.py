"""Per-model controls, the run's spend and the preflight summary (`themis.core.controls`), the
budget's `release`, and the scripted model's fault options."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.builders import small_spec
from themis.adapters.models.scripted import check_options
from themis.core.budget import Ledger, hold, release
from themis.core.controls import (
    ModelControls,
    model_controls,
    preflight_summary,
    run_spend,
    spend_summary,
)
from themis.core.events import GenerationCompleted, GenerationFailed
from themis.core.planner import compile_run, plan
from themis.core.runtime import Price, RuntimeConfig
from themis.core.state import project

COMPILED = compile_run(small_spec())  # models m1 (fake-1) and m2 (fake-2), shared prompts
TRIALS = list(plan(COMPILED))
M1 = Price(input_per_1k=1.0, output_per_1k=2.0)
M2 = Price(input_per_1k=10.0, output_per_1k=0.0)


def _key(model: str, index: int = 0) -> str:
    return [trial.trial_key for trial in TRIALS if trial.model == model][index]


def test_model_controls_look_up_by_name_then_model_id() -> None:
    runtime = RuntimeConfig(model_prices={"m1": M1, "fake-2": M2}, context_windows={"fake-1": 50})
    assert model_controls(COMPILED.spec, runtime) == {
        "m1": ModelControls(price=M1, context_window=50),
        "m2": ModelControls(price=M2, context_window=None),
    }


def test_spend_prices_each_generation_at_its_own_model_and_skips_reuses() -> None:
    def done(model: str, index: int, **usage: Any) -> GenerationCompleted:
        return GenerationCompleted(at=1.0, trial_key=_key(model, index), text="x", **usage)

    events = [
        done("m1", 0, input_tokens=1000, output_tokens=500),  # 1.0 + 1.0
        done("m2", 0, input_tokens=100, output_tokens=9),  # 1.0
        done("m2", 1, input_tokens=100, cache_hit=True),  # a reuse: not this run's cost
        done("m1", 1),  # no usage reported: unpriced
        GenerationFailed(  # answered, then refused: paid for
            at=1.0,
            trial_key=_key("m2", 2),
            error_kind="cost_limit",
            message="m",
            input_tokens=1000,
            output_tokens=0,
        ),
        GenerationFailed(at=1.0, trial_key=_key("m1", 2), error_kind="server", message="503"),
    ]
    ledger = run_spend(COMPILED, project(events), {"m1": M1, "m2": M2})
    assert ledger.spent == pytest.approx(1.0 + 1.0 + 1.0 + 10.0)
    assert (ledger.priced, ledger.unpriced) == (3, 1)


def test_one_price_for_every_model_needs_no_plan_and_gives_the_same_spend() -> None:
    events = [
        GenerationCompleted(at=1.0, trial_key=_key(m), text="x", input_tokens=500, output_tokens=0)
        for m in ("m1", "m2")
    ]
    same = {"m1": M1, "m2": M1}
    assert run_spend(COMPILED, project(events), same).spent == pytest.approx(1.0)
    summary = spend_summary(COMPILED, project(events), same, limit=3.0)
    assert summary is not None
    assert (summary.spent, summary.priced, summary.unpriced, summary.limit) == (
        pytest.approx(1.0),
        2,
        0,
        3.0,
    )
    assert spend_summary(COMPILED, project(events), {"other": M1}) is None


def test_release_gives_back_a_held_estimate_and_never_goes_below_zero() -> None:
    held = hold(Ledger(spent=1.0), 0.25)
    assert release(held, 0.25) == Ledger(spent=1.0)
    assert release(held, None) == held
    assert release(Ledger(), 5.0) == Ledger()


def test_preflight_summary_counts_distinct_requests_per_model_with_a_window() -> None:
    needs = {trial.trial_key: trial for trial in TRIALS if trial.model == "m1"}
    runtime = RuntimeConfig(context_windows={"m1": 300})
    (row,) = preflight_summary(COMPILED, runtime)
    assert (row.model, row.context_window, row.requests) == ("m1", 300, len(needs))
    assert row.warned == len(needs)  # every request needs max_tokens 256 + a short prompt: > 80%
    assert row.failed == 0
    tight = preflight_summary(COMPILED, RuntimeConfig(context_windows={"m1": 256}))
    assert tight[0].failed == len(needs)
    assert preflight_summary(COMPILED, RuntimeConfig()) == ()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"fail_first_n": 2, "status": 429, "retry_after_s": 1.5}, None),
        ({"hang_s": 30.0, "hang_first_n": 3, "outage_start_s": 1, "outage_end_s": 2}, None),
        ({"fail_first_n": 1.5}, "option 'fail_first_n' must be an integer >= 0, got 1.5"),
        ({"status": 200}, "option 'status' must be an HTTP error status (400..599), got 200"),
        ({"skill": 2}, "option 'skill' is a probability and must be <= 1, got 2"),
        ({"latency_s": 5}, None),
        ({"outage_start_s": 5, "outage_end_s": 1}, "option 'outage_end_s' must not be before"),
        ({"retry_after": 1}, "unknown option 'retry_after'"),
    ],
)
def test_scripted_fault_options_are_checked(options: dict[str, Any], problem: str | None) -> None:
    found = check_options(options)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
